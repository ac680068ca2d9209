"""Production settings that cannot be got wrong (docs/deploy.md): each case starts real processes
(`manage.py`, Daphne) with the environment an operator would give them."""
import os
import re
import secrets
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
DEV_KEY = "dev-insecure-mythline-key-change-me-in-production-0123456789"

# The production environment of docs/deploy.md ("Production environment"), with made-up hosts:
# `check --deploy` only reads settings, it connects to nothing.
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": None,  # a fresh random key per run, as the docs say to make one
    "ALLOWED_HOSTS": "mythline.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://mythline.example.org",
    "MYTHLINE_HTTPS": "1",
    "DATABASE_URL": "postgres://mythline:password@db.example.invalid:5432/mythline",
    "REDIS_URL": "redis://redis.example.invalid:6379/0",
    "MYTHLINE_METRICS_TOKEN": "a-long-random-scrape-token",
}


def operator_env(tmp_path, **values) -> dict:
    """The environment of a process started by hand, outside the test runner: none of this
    session's settings leak in (PYTEST_VERSION marks the test runner, which is embedded)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_VERSION", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DEBUG", "ALLOWED_HOSTS",
                        "CSRF_TRUSTED_ORIGINS") and not k.startswith("MYTHLINE_")}
    env.update(DJANGO_SETTINGS_MODULE="mythline_site.settings", MYTHLINE_VAR_DIR=str(tmp_path / "var"),
               PYTHONUNBUFFERED="1")
    env.update({k: v for k, v in values.items() if v is not None})
    return env


def manage(env, *args, timeout=120):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def python(env, code, timeout=60):
    return subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_check_deploy_is_silent_in_the_documented_production_environment(tmp_path):
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for name in PRODUCTION_ENV:
        assert f"`{name}`" in docs, f"{name} is not documented in docs/deploy.md"
    env = operator_env(tmp_path, **{**PRODUCTION_ENV, "SECRET_KEY": secrets.token_urlsafe(64)})
    r = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == ""
    assert re.fullmatch(r"System check identified no issues \(\d+ silenced\)\.\n", r.stdout), r.stdout
    assert not (tmp_path / "var" / "secret_key").exists()  # the given key is used, no file made


def test_without_https_check_deploy_names_what_is_missing(tmp_path):
    """The same environment without MYTHLINE_HTTPS=1: each missing HTTPS setting is a warning."""
    env = operator_env(tmp_path, **{**PRODUCTION_ENV, "SECRET_KEY": secrets.token_urlsafe(64), "MYTHLINE_HTTPS": "0"})
    r = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert r.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in r.stderr, warning


@pytest.mark.parametrize("extra", [
    {"DATABASE_URL": "postgres://mythline:password@db.example.invalid:5432/mythline"},
    {"REDIS_URL": "redis://redis.example.invalid:6379/0"},
    {"DATABASE_URL": "postgres://mythline:password@db.example.invalid:5432/mythline", "SECRET_KEY": DEV_KEY},
    {"SECRET_KEY": DEV_KEY},  # the published key is refused even on one machine
    {"REDIS_URL": "redis://redis.example.invalid:6379/0", "SECRET_KEY": "   "},  # blank is unset
])
def test_refuses_to_start_without_a_real_secret_key(tmp_path, extra):
    env = operator_env(tmp_path, DEBUG="0", **extra)
    r = manage(env, "check")
    assert r.returncode != 0
    assert "ImproperlyConfigured" in r.stderr
    reason = "the development key" if extra.get("SECRET_KEY") == DEV_KEY else "SECRET_KEY is not set"
    assert reason in r.stderr and "set SECRET_KEY to a long random string" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "var" / "secret_key").exists()


def test_daphne_refuses_to_serve_without_a_key(tmp_path):
    """What an operator sees: the server process exits at once, naming the setting."""
    env = operator_env(tmp_path, DEBUG="0", DATABASE_URL="postgres://mythline:pw@db.example.invalid:5432/mythline")
    r = subprocess.run([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "mythline_site.asgi:application"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "SECRET_KEY is not set" in r.stderr


def test_embedded_key_is_made_once_private_and_reused(tmp_path):
    """`make run` (no DATABASE_URL, no REDIS_URL, no SECRET_KEY): a random key in var/secret_key,
    mode 0600, the same after a restart, so what was signed before (sessions) is still valid."""
    env = operator_env(tmp_path)
    key_file = tmp_path / "var" / "secret_key"
    # Several processes starting at once on a fresh checkout (runserver, its reloader, the crew)
    # end up with one key.
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: python(env, "from django.core import signing; print(signing.dumps('kept'))"),
                             range(4)))
    assert all(r.returncode == 0 for r in runs), [r.stderr[-1000:] for r in runs]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 50 and key != DEV_KEY
    assert [p.name for p in key_file.parent.iterdir() if p.name.startswith(".secret_key")] == []
    signed = runs[0].stdout.strip()

    # A restart: the same key, so the old signature verifies.
    r = python(env, f"from django.conf import settings; from django.core import signing\n"
                    f"print(signing.loads({signed!r}), settings.SECRET_KEY == {key!r})")
    assert r.stdout.split() == ["kept", "True"], r.stderr[-2000:]

    # A key file left readable by others is made private again.
    key_file.chmod(0o644)
    assert python(env, "").returncode == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.read_text().strip() == key

    # Another machine (another var/) has its own key: the signature does not carry over.
    other = operator_env(tmp_path / "other")
    r = python(other, f"from django.core import signing\nsigning.loads({signed!r})")
    assert r.returncode != 0 and "BadSignature" in r.stderr


def test_a_bad_metrics_allow_list_refuses_to_start(tmp_path):
    r = manage(operator_env(tmp_path, MYTHLINE_METRICS_ALLOW="10.0.0.0/8,prometheus.internal"), "check")
    assert r.returncode != 0 and "MYTHLINE_METRICS_ALLOW: 'prometheus.internal'" in r.stderr


def test_a_bad_websocket_origin_refuses_to_start(tmp_path):
    """An entry without a scheme (or with a path) would match no socket: it stops the start instead."""
    for bad in ("app.example.org", "https://app.example.org/room", "ftp://app.example.org", "https://*"):
        r = manage(operator_env(tmp_path, MYTHLINE_WS_ALLOWED_ORIGINS=f"https://ok.example.org,{bad}"), "check")
        assert r.returncode != 0 and "ImproperlyConfigured" in r.stderr, bad
        assert f"MYTHLINE_WS_ALLOWED_ORIGINS: {bad!r} is not an origin" in r.stderr, r.stderr[-1000:]
    good = "https://app.example.org,https://*.example.org,http://localhost:5173"
    r = python(operator_env(tmp_path, MYTHLINE_WS_ALLOWED_ORIGINS=good),
               "from django.conf import settings; print(settings.MYTHLINE_WS_ALLOWED_ORIGINS)")
    assert r.returncode == 0 and r.stdout.strip() == str(good.split(",")), r.stderr[-1000:]


def test_production_trusts_no_extra_origin_and_no_forwarded_scheme_by_default(tmp_path):
    """Outside the embedded setup and DEBUG, CSRF_TRUSTED_ORIGINS is empty unless set (the dev
    server's origins would admit cookie WebSockets from any local page), and X-Forwarded-Proto is
    trusted only with MYTHLINE_PROXY_SSL_HEADER=1."""
    show = ("from django.conf import settings\n"
            "print(settings.CSRF_TRUSTED_ORIGINS, getattr(settings, 'SECURE_PROXY_SSL_HEADER', None))")
    production = {**PRODUCTION_ENV, "SECRET_KEY": secrets.token_urlsafe(64)}
    del production["CSRF_TRUSTED_ORIGINS"]
    r = python(operator_env(tmp_path, **production), show)
    assert r.stdout.strip() == "[] None", r.stderr[-2000:]
    r = python(operator_env(tmp_path, **production, MYTHLINE_PROXY_SSL_HEADER="1"), show)
    assert r.stdout.strip() == "[] ('HTTP_X_FORWARDED_PROTO', 'https')", r.stderr[-2000:]
    dev = "['http://127.0.0.1:8000', 'http://localhost:8000'] None"
    assert python(operator_env(tmp_path), show).stdout.strip() == dev  # `make run`: embedded
    assert python(operator_env(tmp_path, **{**production, "DEBUG": "1", "MYTHLINE_HTTPS": "0"}), show).stdout.strip() == dev
    # check --deploy stays silent with the header on, too.
    r = manage(operator_env(tmp_path, **{**PRODUCTION_ENV, "SECRET_KEY": secrets.token_urlsafe(64)},
                            MYTHLINE_PROXY_SSL_HEADER="1"), "check", "--deploy", "--fail-level", "WARNING")
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_a_client_cannot_claim_https_unless_the_proxy_header_is_enabled():
    """MYTHLINE_HTTPS=1 without MYTHLINE_PROXY_SSL_HEADER: a client's own X-Forwarded-Proto over
    plain HTTP is ignored (redirected to HTTPS, no HSTS); `serve`'s uvicorn takes the scheme from
    that header only from FORWARDED_ALLOW_IPS."""
    with LiveServer(env={"MYTHLINE_HTTPS": "1", "MYTHLINE_HSTS_SECONDS": "600"}) as live:
        r = httpx.get(live.base + "/accounts/login/", headers={"X-Forwarded-Proto": "https"})
        assert r.status_code == 301 and r.headers["location"].startswith("https://")
        assert "strict-transport-security" not in r.headers


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_https_switch_on_a_live_server():
    """MYTHLINE_HTTPS=1 behind a TLS proxy that sets X-Forwarded-Proto (MYTHLINE_PROXY_SSL_HEADER=1,
    the proxy simulated by sending the header as it would): plain HTTP is redirected, HTTPS answers
    carry HSTS and only Secure cookies; the health check and metrics stay reachable over plain HTTP
    for balancers and scrapers on the host."""
    with LiveServer(env={"MYTHLINE_HTTPS": "1", "MYTHLINE_HSTS_SECONDS": "600", "MYTHLINE_PROXY_SSL_HEADER": "1"}) as live:
        r = httpx.get(live.base + "/accounts/login/")
        assert r.status_code == 301 and r.headers["location"] == f"https://127.0.0.1:{live.port}/accounts/login/"
        r = httpx.get(live.base + "/accounts/login/", headers={"X-Forwarded-Proto": "https"})
        assert r.status_code == 200
        assert r.headers["strict-transport-security"] == "max-age=600; includeSubDomains"
        cookies = r.headers.get_list("set-cookie")
        assert cookies and all("; Secure" in c for c in cookies), cookies
        assert httpx.get(live.base + "/healthz").status_code == 200
        assert httpx.get(live.base + "/metrics").status_code == 200
