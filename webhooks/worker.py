"""The webhook worker: claims due deliveries, sends them signed, records what happened.

`deliver_due()` is one round; `manage.py run_webhooks` runs rounds until SIGTERM. Each round:

1. Claim (one short transaction): up to `limit` due deliveries of active webhooks, soonest first
   (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers share the work; SQLite
   serializes write transactions). Claiming counts the attempt and pushes `next_attempt_at` past
   the attempt's timeout: a worker that dies mid-attempt leaves the delivery to be taken again
   later. Delivery is at least once; the receiver dedups on `webhook-id`, the message id.
2. Send, in threads (MYTHLINE_WEBHOOK_CONCURRENCY), no database access: the host is resolved and
   its addresses checked at this moment and the request goes to the checked address
   (webhooks/addresses.py); a short timeout, no redirects followed, no proxies, at most
   MYTHLINE_WEBHOOK_MAX_RESPONSE_BYTES of the answer read.
3. Record, each in its own transaction: a 2xx is delivered and resets the webhook's failures;
   anything else is retried after an exponential backoff with jitter, dead after
   MYTHLINE_WEBHOOK_MAX_ATTEMPTS; the webhook is disabled (with a "webhook.disabled" notification to
   the agent) after MYTHLINE_WEBHOOK_DISABLE_AFTER_FAILURES failed attempts in a row, once the first
   of them is MYTHLINE_WEBHOOK_DISABLE_AFTER_SECONDS old (a burst of messages to an endpoint that
   is down for a minute does not disable it).
"""
import base64
import hashlib
import hmac
import logging
import random
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from messaging import relations
from messaging.policies import message_visible_to
from notifications.services import notify
from webhooks.addresses import Refused, resolve, url_error
from webhooks.models import Delivery, Webhook
from webhooks.services import secret_key

logger = logging.getLogger("mythline.webhooks")
USER_AGENT = "Mythline-Webhooks/1"
DUE = (Delivery.Status.PENDING, Delivery.Status.FAILED)
MAX_ERROR_CHARS = 500


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The Standard Webhooks signature: "v1," + base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"."""
    digest = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def backoff(attempts: int) -> float:
    """Seconds before the next attempt, after `attempts` failed ones: exponential, capped, jittered."""
    base = settings.MYTHLINE_WEBHOOK_BACKOFF_SECONDS * 2 ** (max(1, attempts) - 1)
    delay = min(settings.MYTHLINE_WEBHOOK_MAX_BACKOFF_SECONDS, base)
    jitter = settings.MYTHLINE_WEBHOOK_JITTER
    return delay * (1 + random.uniform(-jitter, jitter)) if jitter > 0 else delay


@dataclass
class Attempt:
    delivery: Delivery
    url: str
    # The current secret first; the one it replaced too, while a rotation's grace lasts. Never in a repr.
    secrets: list[str] = field(repr=False)
    status_code: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def claim(now, limit: int) -> list[Delivery]:
    """Take up to `limit` due deliveries of active webhooks for this worker (see the module's docstring)."""
    lease = timedelta(seconds=settings.MYTHLINE_WEBHOOK_TIMEOUT_SECONDS * 3 + 60)
    with transaction.atomic():
        due = (Delivery.objects.filter(status__in=DUE, next_attempt_at__lte=now, webhook__status=Webhook.Status.ACTIVE)
               .order_by("next_attempt_at", "id"))
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        ids = list(due.values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        Delivery.objects.filter(pk__in=ids).update(attempts=F("attempts") + 1, last_attempt_at=now,
                                                   next_attempt_at=now + lease)
    return list(Delivery.objects.select_related("webhook__agent", "message").filter(pk__in=ids)
                .order_by("next_attempt_at", "id"))


def send(attempt: Attempt) -> Attempt:
    """One HTTP attempt (no database access: runs in a thread). Sets status_code or error."""
    delivery = attempt.delivery
    try:
        error = url_error(attempt.url)
        if error:
            raise Refused(f"the URL {error}")
        parts = urlsplit(attempt.url)
        host, scheme = parts.hostname, parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        address = resolve(host, port)[0]  # checked now: no rebinding between the check and the connection
        pinned = f"[{address}]" if ":" in address else address
        target = urlunsplit((scheme, f"{pinned}:{port}", parts.path or "/", parts.query, ""))
        timestamp = int(time.time())
        headers = {
            "host": parts.netloc.rsplit("@", 1)[-1],
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",  # the answer is read raw (and capped), never decompressed
            "webhook-id": str(delivery.message_id),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(secret, str(delivery.message_id), timestamp, delivery.body)
                                          for secret in attempt.secrets),
        }
        timeout = settings.MYTHLINE_WEBHOOK_TIMEOUT_SECONDS
        deadline = time.monotonic() + timeout * 2
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        bundle = settings.MYTHLINE_WEBHOOK_CA_BUNDLE
        verify = ssl.create_default_context(cafile=bundle) if bundle else True
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=verify) as client:
            with client.stream("POST", target, content=delivery.body.encode(), headers=headers,
                               extensions=extensions) as response:
                attempt.status_code = response.status_code
                text, cap = b"", settings.MYTHLINE_WEBHOOK_MAX_RESPONSE_BYTES
                for chunk in response.iter_raw():
                    text += chunk[:cap - len(text)]
                    if len(text) >= cap or time.monotonic() > deadline:
                        break
        if not attempt.ok:
            excerpt = " ".join(text.decode("utf-8", "replace").split())[:200]
            what = " (redirects are not followed)" if 300 <= attempt.status_code < 400 else ""
            attempt.error = f"HTTP {attempt.status_code}{what}" + (f": {excerpt}" if excerpt else "")
    except Refused as exc:
        attempt.error = f"refused: {exc}"
    except httpx.TimeoutException:
        attempt.error = f"timed out after {settings.MYTHLINE_WEBHOOK_TIMEOUT_SECONDS:g} s"
    except (httpx.HTTPError, OSError, ValueError) as exc:
        attempt.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - one odd receiver must not lose the round's other results
        logger.exception("webhook attempt for delivery %s failed unexpectedly", delivery.pk)
        attempt.status_code, attempt.error = None, f"internal error: {type(exc).__name__}"
    attempt.error = attempt.error[:MAX_ERROR_CHARS]
    return attempt


def record(attempt: Attempt, now) -> None:
    """Store what the attempt came to; count it against the webhook (see the module's docstring)."""
    delivery = attempt.delivery
    with transaction.atomic():
        if attempt.ok:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Delivery.Status.DELIVERED, delivered_at=now, last_status_code=attempt.status_code,
                last_error="")
            Webhook.objects.filter(pk=delivery.webhook_id, failures__gt=0).update(failures=0, failing_since=None)
            return
        dead = delivery.attempts >= settings.MYTHLINE_WEBHOOK_MAX_ATTEMPTS
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.DEAD if dead else Delivery.Status.FAILED, last_status_code=attempt.status_code,
            last_error=attempt.error, next_attempt_at=now if dead else now + timedelta(seconds=backoff(delivery.attempts)))
        webhook = Webhook.objects.select_for_update().select_related("agent").filter(pk=delivery.webhook_id).first()
        if webhook is None:
            return
        webhook.failures += 1
        webhook.failing_since = webhook.failing_since or now
        fields = ["failures", "failing_since"]
        if (webhook.status == Webhook.Status.ACTIVE
                and webhook.failures >= settings.MYTHLINE_WEBHOOK_DISABLE_AFTER_FAILURES
                and (now - webhook.failing_since).total_seconds() >= settings.MYTHLINE_WEBHOOK_DISABLE_AFTER_SECONDS):
            webhook.status, webhook.disabled_at = Webhook.Status.DISABLED, now
            webhook.disabled_reason = (f"Disabled after {webhook.failures} failed deliveries in a row "
                                       f"(the last: {attempt.error})")[:500]
            fields += ["status", "disabled_at", "disabled_reason"]
            logger.warning("webhook of %s disabled: %s", webhook.agent.username, webhook.disabled_reason)
            notify(user=webhook.agent, kind="webhook.disabled", excerpt=webhook.disabled_reason[:200])
        webhook.save(update_fields=[*fields, "updated_at"])


def give_up(delivery: Delivery, now, why: str, *, forget: bool = False) -> None:
    fields = {"body": ""} if forget else {}
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.DEAD, last_error=why[:MAX_ERROR_CHARS],
                                                   next_attempt_at=now, **fields)


def deliver_due(now=None, limit: int | None = None) -> list[Attempt]:
    """One round: claim, send, record. `now` drives the schedule (tests pass it: no sleeping);
    the signature's timestamp is always the real time of sending. Returns the attempts made."""
    now = now or timezone.now()
    limit = limit or settings.MYTHLINE_WEBHOOK_BATCH
    attempts = []
    for delivery in claim(now, limit):
        # Checked again when sent: the agent may have lost the right to read it since it was posted.
        if not message_visible_to(delivery.message, delivery.webhook.agent):
            give_up(delivery, now, "not sent: the agent may no longer read this message")
            continue
        if relations.deletion_of(delivery.message) is not None:
            # A deletion wins over a delivery still waiting: its text is not sent, and its frozen body
            # is emptied (the agent hears of the deletion itself, a message of its inbox too).
            give_up(delivery, now, "not sent: the message was deleted", forget=True)
            continue
        attempts.append(Attempt(delivery=delivery, url=delivery.webhook.url,
                                secrets=delivery.webhook.signing_secrets(now)))
    if not attempts:
        return []
    workers = max(1, min(settings.MYTHLINE_WEBHOOK_CONCURRENCY, len(attempts)))
    if workers == 1:
        done = [send(a) for a in attempts]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook") as pool:
            done = list(pool.map(send, attempts))
    for attempt in done:
        record(attempt, now)
    return done


def prune(now=None) -> int:
    """Delete delivered and dead deliveries older than MYTHLINE_WEBHOOK_KEEP_DAYS (their bodies are
    copies of messages the log keeps anyway); answer how many. The worker runs it now and then."""
    days = settings.MYTHLINE_WEBHOOK_KEEP_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = Delivery.objects.filter(status__in=(Delivery.Status.DELIVERED, Delivery.Status.DEAD),
                                         created_at__lt=cutoff).delete()
    return deleted
