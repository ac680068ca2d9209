"""Mythline settings: everything comes from the environment, with embedded defaults.

Unset DATABASE_URL -> a SQLite file in WAL mode; unset REDIS_URL -> in-process channel layer,
cache and presence. Setting both runs many server processes against Postgres and Redis.
"""
import ipaddress
import os
import secrets
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mythline_site.origins import check_allowed_origins

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MYTHLINE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

# --- Secret key (docs/deploy.md, "Secret key") ------------------------------------------------
# This key is public (it is in the source): it may sign nothing outside DEBUG.
DEVELOPMENT_SECRET_KEY = "dev-insecure-mythline-key-change-me-in-production-0123456789"
# Embedded: one machine, SQLite and no Redis (`make run`, a fresh clone), or the test runner
# (pytest sets PYTEST_VERSION for its run; the test database may be Postgres). There, without a
# SECRET_KEY, a random key is made once in var/secret_key (mode 0600) and reused.
MYTHLINE_EMBEDDED = (not os.environ.get("REDIS_URL", "").strip()
                     and (os.environ.get("DATABASE_URL") or "sqlite:").startswith("sqlite:")
                     ) or bool(os.environ.get("PYTEST_VERSION"))
SECRET_KEY_FILE = VAR_DIR / "secret_key"


def embedded_secret_key(path: Path) -> str:
    """The key in `path`, made once (random, mode 0600) if it is missing. Concurrent first starts
    (runserver and its reloader, the crew) agree: the file appears whole, by a hard link, or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(64) + "\n")
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # a key readable by others is no secret
    key = path.read_text().strip()
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} holds no usable secret key (under 50 characters): delete it "
                                   "and start again to make a new one, or set SECRET_KEY.")
    return key


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY.strip():
    SECRET_KEY = ""
    if MYTHLINE_EMBEDDED:
        SECRET_KEY = embedded_secret_key(SECRET_KEY_FILE)
    elif DEBUG:
        SECRET_KEY = DEVELOPMENT_SECRET_KEY
if not DEBUG and SECRET_KEY in ("", DEVELOPMENT_SECRET_KEY):
    raise ImproperlyConfigured(
        ("SECRET_KEY is the development key, which is published in the source"
         if SECRET_KEY else "SECRET_KEY is not set")
        + ": set SECRET_KEY to a long random string, the same on every host (for instance the output"
        " of `python -c 'import secrets; print(secrets.token_urlsafe(64))'`), or DEBUG=1 for"
        " development. See docs/deploy.md.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
# Development (embedded or DEBUG) trusts the dev server's origins; production trusts none by default
# (same-origin requests and sockets need no entry), since these also admit cookie WebSockets.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000"
                                if (MYTHLINE_EMBEDDED or DEBUG) else "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "stories",
    "messaging",
    "presence",
    "agents",
    "audit",  # the audit log of rights (docs/deploy.md, "Audit log")
    "bible",  # the story bible (docs/protocol.md, "Story bible")
    "outline",  # a story's outline of scenes (docs/protocol.md, "The outline")
    "exports",  # a document or the whole story as Markdown, plain text or EPUB (docs/export.md)
    "suggestions",  # changes proposed to a document, decided by people (docs/protocol.md, "Suggestions")
    "comments",  # comment threads anchored to passages of a document (docs/protocol.md, "Comments")
    "writers",  # a story's writers' room: the crew that serves it (docs/crew.md)
    "versions",  # named revisions of a document, compare and restore (docs/versions.md)
    "search",  # full-text search over the messages a user may read (docs/protocol.md, "Search")
    "notifications",  # mentions, replies and decisions as a per-user feed (docs/protocol.md, "Notifications")
    "webhooks",  # signed deliveries of an agent's inbox and mentions (docs/protocol.md, "Webhooks")
    "streaming",  # messages written in chunks, stored once complete (docs/protocol.md, "Streaming messages")
    "mythline_site",  # its management commands: `serve` (docs/deploy.md)
]

MIDDLEWARE = [
    "mythline_site.middleware.RequestSizeLimitMiddleware",
    "mythline_site.middleware.RejectNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mythline_site.csp.ContentSecurityPolicyMiddleware",
    "mythline_site.middleware.ApiErrorEnvelopeMiddleware",
]

ROOT_URLCONF = "mythline_site.urls"
APPEND_SLASH = False
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "mythline_site.asgi.application"

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'mythline.sqlite3'}"
# CONN_HEALTH_CHECKS: a connection that broke (the database restarted) is never handed out again:
# the pool checks each one on checkout, so requests after an outage reconnect by themselves; during
# it, API requests answer 503 `unavailable` with Retry-After (mythline_site/errors.py).
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue on the busy
        # timeout instead of failing with "database is locked" when a read lock upgrades.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # pytest-django would otherwise use a shared-cache in-memory database, whose table locks
    # fail at once instead of waiting: tests must see the same locking as production.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A connection pool (psycopg_pool) instead of a new connection per request: under ASGI,
    # persistent connections (CONN_MAX_AGE) are per thread and leak; the pool is shared.
    # The session time zone is set at connect, so Django need not SET it on every checkout.
    DATABASES["default"]["OPTIONS"] = {
        "pool": {"min_size": 1, "max_size": int(os.environ.get("MYTHLINE_DB_POOL_SIZE", 20)), "timeout": 10},
        "options": "-c TimeZone=UTC",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache (throttles), presence --------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
REDIS_URLS = [u.strip() for u in REDIS_URL.split(",") if u.strip()]
MYTHLINE_REDIS_PREFIX = os.environ.get("MYTHLINE_REDIS_PREFIX", "mythline")

# Which channels_redis layer carries events when REDIS_URL is set: `core` (lists in Redis, per-channel
# capacity and expiry) or `pubsub` (Redis PUBLISH/SUBSCRIBE: one publish per group_send, fanned out
# in each process; no capacity, nothing kept for a disconnected process). See docs/benchmarks.md.
MYTHLINE_CHANNEL_LAYER = os.environ.get("MYTHLINE_CHANNEL_LAYER", "core").strip().lower() or "core"
if MYTHLINE_CHANNEL_LAYER not in ("core", "pubsub"):
    raise ValueError(f"MYTHLINE_CHANNEL_LAYER must be 'core' or 'pubsub', not {MYTHLINE_CHANNEL_LAYER!r}")

if REDIS_URLS:
    # redis-py's default socket_timeout breaks the layer's blocking reads, and its pool stops at
    # 100 connections (channels_redis#422): set both explicitly.
    _layer_hosts = [{"address": u, "socket_timeout": None, "max_connections": 1000} for u in REDIS_URLS]
    if MYTHLINE_CHANNEL_LAYER == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": _layer_hosts, "prefix": f"{MYTHLINE_REDIS_PREFIX}:asgi"},
            }
        }
    else:
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": _layer_hosts,
                    "prefix": f"{MYTHLINE_REDIS_PREFIX}:asgi",
                    "capacity": 1000,
                    "expiry": 60,
                    "group_expiry": 86400,
                },
            }
        }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URLS[0],
            "KEY_PREFIX": MYTHLINE_REDIS_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "mythline"}}

# --- Auth and security ----------------------------------------------------------------------
# Exactly what the sign-up page promises (accounts/views.py PASSWORD_RULES): at least 8 characters,
# not too common, not all digits, not too like the username. Sign-up, the admin's user and password
# forms, password changes and `createsuperuser` all apply them.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in limits (accounts/limits.py, docs/deploy.md "Sign-in limits"): (count, window seconds).
# Failed sign-ins (and old-password checks) per (account, client address) pair, per client address,
# and per account: a high ceiling against guessing spread over many addresses, which a browser
# holding the account's device cookie passes. The site's and the admin's pages count together.
# Sign-up attempts per client address; password-reset requests (when enabled) per address and per
# e-mail address. A window opens at the first event and locks nothing beyond its end. A count of 0
# turns that limit off.
_signin_window = int(os.environ.get("MYTHLINE_SIGNIN_WINDOW_SECONDS", 900))
MYTHLINE_SIGNIN_LIMITS = {
    "pair": (int(os.environ.get("MYTHLINE_SIGNIN_ACCOUNT_ADDRESS_FAILURES", 5)), _signin_window),
    "address": (int(os.environ.get("MYTHLINE_SIGNIN_ADDRESS_FAILURES", 20)), _signin_window),
    "account": (int(os.environ.get("MYTHLINE_SIGNIN_ACCOUNT_FAILURES", 100)), _signin_window),
    "signup": (int(os.environ.get("MYTHLINE_SIGNUPS_PER_ADDRESS", 10)),
               int(os.environ.get("MYTHLINE_SIGNUP_WINDOW_SECONDS", 3600))),
    "reset": (5, 3600),
    "reset-email": (3, 3600),
}
# /accounts/password_reset/ and the pages after it: off (404) unless MYTHLINE_PASSWORD_RESET=1, which
# also needs a working EMAIL_BACKEND (docs/deploy.md "Sign-in limits").
MYTHLINE_PASSWORD_RESET = env_bool("MYTHLINE_PASSWORD_RESET", False)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# MYTHLINE_HTTPS=1: the site is served over HTTPS only (docs/deploy.md, "HTTPS"). Cookies go over
# HTTPS only, browsers are told to use nothing else for MYTHLINE_HSTS_SECONDS, plain-HTTP requests
# are redirected (except the health check and metrics, which balancers and scrapers call on the
# host directly). X-Forwarded-Proto: https marks a request as secure only with
# MYTHLINE_PROXY_SSL_HEADER=1: set it only behind a proxy that sets that header on every request.
MYTHLINE_HTTPS = env_bool("MYTHLINE_HTTPS", False)
if MYTHLINE_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = int(os.environ.get("MYTHLINE_HSTS_SECONDS", 31536000))  # one year
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MYTHLINE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("MYTHLINE_HSTS_PRELOAD", False)
    if env_bool("MYTHLINE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS preload is a promise to browser vendors that is slow to undo: opt-in with
# MYTHLINE_HSTS_PRELOAD=1, and `check --deploy` does not nag about it otherwise.
SILENCED_SYSTEM_CHECKS = [] if env_bool("MYTHLINE_HSTS_PRELOAD", False) else ["security.W021"]
# Browser origins (scheme://host[:port]) whose cookie-authenticated WebSockets are accepted, on top
# of the socket's own origin (docs/protocol.md 6.1): CSRF_TRUSTED_ORIGINS plus these.
MYTHLINE_WS_ALLOWED_ORIGINS = env_list("MYTHLINE_WS_ALLOWED_ORIGINS", "")
check_allowed_origins("MYTHLINE_WS_ALLOWED_ORIGINS", MYTHLINE_WS_ALLOWED_ORIGINS)  # a bad entry stops the start
# GET /metrics: for clients at these addresses (IPs or networks, comma-separated; empty: none) or
# with `Authorization: Bearer <MYTHLINE_METRICS_TOKEN>`; anyone else gets 404.
MYTHLINE_METRICS_ALLOW = env_list("MYTHLINE_METRICS_ALLOW", "127.0.0.1,::1")
for _net in MYTHLINE_METRICS_ALLOW:
    try:
        ipaddress.ip_network(_net, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"MYTHLINE_METRICS_ALLOW: {_net!r} is not an IP address or network "
                                   "(for instance 10.0.0.0/8 or 127.0.0.1)") from None
MYTHLINE_METRICS_TOKEN = os.environ.get("MYTHLINE_METRICS_TOKEN", "").strip()
# HTML pages get a Content-Security-Policy without inline scripts (mythline_site/csp.py); these
# paths ship inline scripts of their own and are left alone.
MYTHLINE_CSP_EXEMPT = ("/admin/", "/api/docs")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start without it
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Limits ---------------------------------------------------------------------------------
# A whole request body; bigger ones get 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("MYTHLINE_MAX_REQUEST_BYTES", 256 * 1024))
MYTHLINE_MAX_PAYLOAD_BYTES = int(os.environ.get("MYTHLINE_MAX_PAYLOAD_BYTES", 64 * 1024))
# A batch post (POST .../messages/batch) holds at most this many messages, all to one channel; its
# body is limited like any request's (MYTHLINE_MAX_REQUEST_BYTES).
MYTHLINE_BATCH_MAX_MESSAGES = int(os.environ.get("MYTHLINE_BATCH_MAX_MESSAGES", 100))
MYTHLINE_HEARTBEAT_SECONDS = float(os.environ.get("MYTHLINE_HEARTBEAT_SECONDS", 15))
# A connection silent for this many heartbeat intervals is dropped from presence.
MYTHLINE_PRESENCE_EXPIRY_FACTOR = float(os.environ.get("MYTHLINE_PRESENCE_EXPIRY_FACTOR", 2))
# Presence changes within this window go out as one presence.diff frame.
MYTHLINE_PRESENCE_COALESCE_SECONDS = float(os.environ.get("MYTHLINE_PRESENCE_COALESCE_SECONDS", 0.1))
# Per-sender rates, as "N/period" with period s, m or h, plus a burst allowance (GCRA).
MYTHLINE_RATES = {
    "post": (os.environ.get("MYTHLINE_POST_RATE", "10/s"), int(os.environ.get("MYTHLINE_POST_BURST", 60))),
    "write": (os.environ.get("MYTHLINE_WRITE_RATE", "5/s"), int(os.environ.get("MYTHLINE_WRITE_BURST", 30))),
    "read": (os.environ.get("MYTHLINE_READ_RATE", "50/s"), int(os.environ.get("MYTHLINE_READ_BURST", 300))),
}
# WebSocket limits: frame size (larger closes with 1009), inbound frames per socket (over: error
# frames, then close 1008 after this many rejects), unsent bytes before a non-reading client is
# closed with 4008.
MYTHLINE_WS_MAX_FRAME_BYTES = int(os.environ.get("MYTHLINE_WS_MAX_FRAME_BYTES", 256 * 1024))
MYTHLINE_WS_FRAME_RATE = float(os.environ.get("MYTHLINE_WS_FRAME_RATE", 30))
MYTHLINE_WS_FRAME_BURST = int(os.environ.get("MYTHLINE_WS_FRAME_BURST", 120))
MYTHLINE_WS_FLOOD_CLOSE_AFTER = int(os.environ.get("MYTHLINE_WS_FLOOD_CLOSE_AFTER", 50))
MYTHLINE_WS_SEND_BUFFER_BYTES = int(os.environ.get("MYTHLINE_WS_SEND_BUFFER_BYTES", 2 * 1024 * 1024))
# During a replay (a whole page written at once) a socket over the send buffer gets this long to
# drain before it is closed as a slow consumer.
MYTHLINE_WS_SEND_DRAIN_SECONDS = float(os.environ.get("MYTHLINE_WS_SEND_DRAIN_SECONDS", 2))
# Events a socket or SSE stream may have waiting before it is closed as a slow consumer (4008).
MYTHLINE_WS_INBOX_EVENTS = int(os.environ.get("MYTHLINE_WS_INBOX_EVENTS", 1000))
# Re-join channel-layer groups on a heartbeat this often (default: half the layer's group_expiry).
MYTHLINE_WS_GROUP_REFRESH_SECONDS = (float(os.environ["MYTHLINE_WS_GROUP_REFRESH_SECONDS"])
                                     if os.environ.get("MYTHLINE_WS_GROUP_REFRESH_SECONDS") else None)
MYTHLINE_SSE_KEEPALIVE_SECONDS = float(os.environ.get("MYTHLINE_SSE_KEEPALIVE_SECONDS", 15))
# Per-user caps, counted across every server process (messaging/connections.py): open sockets (one
# more is closed with 4429), open SSE streams (one more answers 429), and topics per socket (one
# more subscribe answers `rate_limited`).
MYTHLINE_MAX_SOCKETS_PER_USER = int(os.environ.get("MYTHLINE_MAX_SOCKETS_PER_USER", 32))
MYTHLINE_MAX_SSE_PER_USER = int(os.environ.get("MYTHLINE_MAX_SSE_PER_USER", 16))
MYTHLINE_MAX_SUBSCRIPTIONS_PER_SOCKET = int(os.environ.get("MYTHLINE_MAX_SUBSCRIPTIONS_PER_SOCKET", 256))
MYTHLINE_LEASE_KEY_PREFIX = os.environ.get("MYTHLINE_LEASE_KEY_PREFIX", f"{MYTHLINE_REDIS_PREFIX}:leases")
# Co-editing: a change may insert at most this many characters; a document holds at most
# MYTHLINE_DOC_MAX_CHARS; a snapshot of the text is kept every MYTHLINE_DOC_SNAPSHOT_EVERY revisions.
MYTHLINE_DOC_MAX_INSERT_CHARS = int(os.environ.get("MYTHLINE_DOC_MAX_INSERT_CHARS", 64 * 1024))
MYTHLINE_DOC_MAX_CHARS = int(os.environ.get("MYTHLINE_DOC_MAX_CHARS", 2_000_000))
MYTHLINE_DOC_SNAPSHOT_EVERY = int(os.environ.get("MYTHLINE_DOC_SNAPSHOT_EVERY", 100))
# Bounds on the cost of co-editing (docs/coediting.md, "Limits"): edits in one REST/MCP edit,
# changed ranges in one doc.push, how many revisions behind a REST edit's base_revision may be,
# documents (forks included) and forks per story.
MYTHLINE_DOC_MAX_EDITS = int(os.environ.get("MYTHLINE_DOC_MAX_EDITS", 1000))
MYTHLINE_DOC_MAX_PUSH_CHANGES = int(os.environ.get("MYTHLINE_DOC_MAX_PUSH_CHANGES", 10_000))
MYTHLINE_DOC_MAX_LAG = int(os.environ.get("MYTHLINE_DOC_MAX_LAG", 500))
MYTHLINE_STORY_MAX_DOCUMENTS = int(os.environ.get("MYTHLINE_STORY_MAX_DOCUMENTS", 50))
MYTHLINE_STORY_MAX_FORKS = int(os.environ.get("MYTHLINE_STORY_MAX_FORKS", 20))
# The story bible (docs/protocol.md, "Story bible"): entries per story, progressions per entry,
# and the size of an entry's name, aliases, description, fields and field values.
MYTHLINE_BIBLE_MAX_ENTRIES = int(os.environ.get("MYTHLINE_BIBLE_MAX_ENTRIES", 2000))
MYTHLINE_BIBLE_MAX_PROGRESSIONS = int(os.environ.get("MYTHLINE_BIBLE_MAX_PROGRESSIONS", 50))
MYTHLINE_BIBLE_MAX_NAME_CHARS = int(os.environ.get("MYTHLINE_BIBLE_MAX_NAME_CHARS", 120))
MYTHLINE_BIBLE_MAX_ALIASES = int(os.environ.get("MYTHLINE_BIBLE_MAX_ALIASES", 20))
# Characters of all names and aliases of one story's entries: bounds the pattern mentions compile.
MYTHLINE_BIBLE_MAX_TERM_CHARS = int(os.environ.get("MYTHLINE_BIBLE_MAX_TERM_CHARS", 100_000))
MYTHLINE_BIBLE_MAX_DESCRIPTION_CHARS = int(os.environ.get("MYTHLINE_BIBLE_MAX_DESCRIPTION_CHARS", 20_000))
MYTHLINE_BIBLE_MAX_FIELDS = int(os.environ.get("MYTHLINE_BIBLE_MAX_FIELDS", 30))
MYTHLINE_BIBLE_MAX_FIELD_CHARS = int(os.environ.get("MYTHLINE_BIBLE_MAX_FIELD_CHARS", 2000))
# An entry with all its progressions (what one `bible.entry.*` event and one list row carry).
MYTHLINE_BIBLE_MAX_ENTRY_CHARS = int(os.environ.get("MYTHLINE_BIBLE_MAX_ENTRY_CHARS", 100_000))
# The outline (docs/protocol.md, "The outline"): scenes per story, beats per scene.
MYTHLINE_OUTLINE_MAX_SCENES = int(os.environ.get("MYTHLINE_OUTLINE_MAX_SCENES", 500))
MYTHLINE_OUTLINE_MAX_BEATS = int(os.environ.get("MYTHLINE_OUTLINE_MAX_BEATS", 50))
# The writers' room (docs/crew.md): stories with a crew on this server (each crew is eight agents
# with a socket each in the crew worker).
MYTHLINE_CREW_MAX_STORIES = int(os.environ.get("MYTHLINE_CREW_MAX_STORIES", 100))
# Suggestions (docs/protocol.md, "Suggestions"): open ones per document.
MYTHLINE_DOC_MAX_SUGGESTIONS = int(os.environ.get("MYTHLINE_DOC_MAX_SUGGESTIONS", 200))
# Comments on a passage (docs/protocol.md, "Comments"): threads per document, comments per thread.
MYTHLINE_DOC_MAX_COMMENT_THREADS = int(os.environ.get("MYTHLINE_DOC_MAX_COMMENT_THREADS", 500))
MYTHLINE_COMMENT_MAX_PER_THREAD = int(os.environ.get("MYTHLINE_COMMENT_MAX_PER_THREAD", 200))
# Webhooks (docs/protocol.md, "Webhooks"; sent by `manage.py run_webhooks`). An attempt's timeout;
# the delay before retry n is BACKOFF * 2**(n-1) (at most MAX_BACKOFF) +-JITTER of it; a delivery is
# dead after MAX_ATTEMPTS; a webhook is disabled after DISABLE_AFTER_FAILURES failed attempts in a
# row, once the first of them is DISABLE_AFTER_SECONDS old. http:// URLs only with ALLOW_INSECURE
# (default: DEBUG); hosts that resolve to private, loopback, link-local or reserved addresses only
# with ALLOW_PRIVATE (never in production: that is a server-side request forgery hole).
MYTHLINE_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("MYTHLINE_WEBHOOK_TIMEOUT_SECONDS", 5))
MYTHLINE_WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("MYTHLINE_WEBHOOK_MAX_ATTEMPTS", 10))
MYTHLINE_WEBHOOK_BACKOFF_SECONDS = float(os.environ.get("MYTHLINE_WEBHOOK_BACKOFF_SECONDS", 10))
MYTHLINE_WEBHOOK_MAX_BACKOFF_SECONDS = float(os.environ.get("MYTHLINE_WEBHOOK_MAX_BACKOFF_SECONDS", 3600))
MYTHLINE_WEBHOOK_JITTER = float(os.environ.get("MYTHLINE_WEBHOOK_JITTER", 0.2))
MYTHLINE_WEBHOOK_DISABLE_AFTER_FAILURES = int(os.environ.get("MYTHLINE_WEBHOOK_DISABLE_AFTER_FAILURES", 20))
MYTHLINE_WEBHOOK_DISABLE_AFTER_SECONDS = float(os.environ.get("MYTHLINE_WEBHOOK_DISABLE_AFTER_SECONDS", 3600))
MYTHLINE_WEBHOOK_POLL_SECONDS = float(os.environ.get("MYTHLINE_WEBHOOK_POLL_SECONDS", 1))
MYTHLINE_WEBHOOK_BATCH = int(os.environ.get("MYTHLINE_WEBHOOK_BATCH", 50))
MYTHLINE_WEBHOOK_CONCURRENCY = int(os.environ.get("MYTHLINE_WEBHOOK_CONCURRENCY", 8))
MYTHLINE_WEBHOOK_MAX_RESPONSE_BYTES = int(os.environ.get("MYTHLINE_WEBHOOK_MAX_RESPONSE_BYTES", 4096))
MYTHLINE_WEBHOOK_ALLOW_INSECURE = env_bool("MYTHLINE_WEBHOOK_ALLOW_INSECURE", DEBUG)
MYTHLINE_WEBHOOK_ALLOW_PRIVATE = env_bool("MYTHLINE_WEBHOOK_ALLOW_PRIVATE", False)
# Delivered and dead deliveries are kept this many days in the log (pruned by the worker; 0: forever).
MYTHLINE_WEBHOOK_KEEP_DAYS = float(os.environ.get("MYTHLINE_WEBHOOK_KEEP_DAYS", 7))
# After a rotation the previous secret still signs (a second signature) for this long, unless the
# rotation asks otherwise: a receiver switches secrets without refusing a delivery.
MYTHLINE_WEBHOOK_SECRET_GRACE_SECONDS = max(0, min(7 * 86400, int(float(
    os.environ.get("MYTHLINE_WEBHOOK_SECRET_GRACE_SECONDS", 86400)))))  # 0 to a week
# The CA certificates receivers' TLS certificates are checked against (a PEM file; default: certifi's).
MYTHLINE_WEBHOOK_CA_BUNDLE = os.environ.get("MYTHLINE_WEBHOOK_CA_BUNDLE", "").strip()
# Streaming messages (docs/protocol.md, "Streaming messages"): a stream without an append for this
# long is cancelled; open streams per sender.
MYTHLINE_STREAM_IDLE_SECONDS = float(os.environ.get("MYTHLINE_STREAM_IDLE_SECONDS", 300))
MYTHLINE_STREAM_MAX_OPEN = int(os.environ.get("MYTHLINE_STREAM_MAX_OPEN", 5))
MYTHLINE_RATE_KEY_PREFIX = "rl"  # cache keys of the rate limiter
MYTHLINE_ARCHIVE_SWEEP_SECONDS = float(os.environ.get("MYTHLINE_ARCHIVE_SWEEP_SECONDS", 30))
# Each server process moves long-lived objects out of the garbage collector's full scans this
# often (0: never), and collects everything once this often (mythline_site/housekeeping.py).
MYTHLINE_GC_FREEZE_SECONDS = float(os.environ.get("MYTHLINE_GC_FREEZE_SECONDS", 30))
MYTHLINE_GC_FULL_SECONDS = float(os.environ.get("MYTHLINE_GC_FULL_SECONDS", 900))
# Message policies run, in order, before a message is stored; each may raise a MythlineError.
MYTHLINE_MESSAGE_POLICIES = [
    "messaging.policies.payload_size_policy",
    "messaging.loops.duplicate_payload_policy",
    "messaging.loops.similar_payload_policy",
    "messaging.loops.agent_reply_depth_policy",
]
# Loop prevention (messaging/loops.py), for agents only: the same payload twice, or
# MYTHLINE_LOOP_MAX_SIMILAR near-identical ones, within the window; more than
# MYTHLINE_LOOP_MAX_AGENT_DEPTH agent messages in a row up a reply chain. 0 turns a check off.
MYTHLINE_LOOP_WINDOW_SECONDS = float(os.environ.get("MYTHLINE_LOOP_WINDOW_SECONDS", 300))
MYTHLINE_LOOP_MAX_SIMILAR = int(os.environ.get("MYTHLINE_LOOP_MAX_SIMILAR", 3))
MYTHLINE_LOOP_MAX_AGENT_DEPTH = int(os.environ.get("MYTHLINE_LOOP_MAX_AGENT_DEPTH", 8))
MYTHLINE_LOOP_SCAN_LIMIT = int(os.environ.get("MYTHLINE_LOOP_SCAN_LIMIT", 50))
# Progress reports differ only in their numbers: not near-duplicates (exact repeats still are).
MYTHLINE_LOOP_SIMILAR_EXEMPT_TYPES = env_list("MYTHLINE_LOOP_SIMILAR_EXEMPT_TYPES", "task_update")

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["mythline_site.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": ["mythline_site.throttling.SenderRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mythline_site.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Mythline API",
    "DESCRIPTION": "Humans and AI agents writing stories together. See README.md and docs/.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"BibleKindEnum": "bible.models.BibleEntry.Kind",  # not the channels' `kind`
                            "SceneStatusEnum": "outline.services.STATUSES",  # nor the agents' `status`
                            "CrewRoleEnum": "writers.roles.NAMES",  # not the participants' `role`
                            "ParticipantRoleEnum": "stories.services.ASSIGNABLE_ROLES"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {"mythline": {"level": os.environ.get("MYTHLINE_LOG_LEVEL", "INFO")}},
}
