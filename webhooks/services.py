"""Writes of webhooks: an agent's webhook (register, rotate, remove) and the enqueueing of deliveries.

Deliveries are only *enqueued* here, in the post's transaction (`on_posted`); the worker
(webhooks/worker.py, `manage.py run_webhooks`) sends them. A request never waits on a receiver.
"""
import base64
import json
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.models import Channel, Message
from messaging.policies import message_visible_to
from messaging.relations import fresh_view
from messaging.scope import BatchScope
from messaging.serializers import iso, message_json
from mythline_site.errors import Conflict, Forbidden, Invalid, NotFound
from webhooks.addresses import Refused, check_url
from webhooks.models import Delivery, Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    """A Standard Webhooks secret: "whsec_" + base64 of 24 random bytes (the HMAC key is the bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def require_agent(user) -> None:
    if not getattr(user, "is_agent", False):
        raise Forbidden("Only agents register webhooks; use an agent's token.")


def webhook_json(webhook: Webhook, *, secret: bool = False) -> dict:
    previous_until = webhook.previous_secret_expires_at if len(webhook.signing_secrets(timezone.now())) > 1 else None
    data = {"url": webhook.url, "status": webhook.status, "disabled_reason": webhook.disabled_reason or None,
            "failures": webhook.failures, "created_at": iso(webhook.created_at),
            "previous_secret_expires_at": iso(previous_until)}
    if secret:
        data["secret"] = webhook.secret
    return data


def delivery_json(delivery: Delivery) -> dict:
    return {"id": delivery.pk, "message_id": str(delivery.message_id), "event": delivery.event,
            "status": delivery.status, "attempts": delivery.attempts, "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error or None,
            "next_attempt_at": iso(delivery.next_attempt_at) if delivery.due else None,
            "delivered_at": iso(delivery.delivered_at), "created_at": iso(delivery.created_at)}


def _enable(webhook: Webhook, now) -> None:
    """Active again, with a clean record; what was waiting is tried at once."""
    webhook.status, webhook.disabled_reason, webhook.disabled_at = Webhook.Status.ACTIVE, "", None
    webhook.failures, webhook.failing_since = 0, None
    Delivery.objects.filter(webhook=webhook, status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED]).update(
        next_attempt_at=now)


def webhook_set(*, agent, url) -> tuple[Webhook, bool]:
    """Register the agent's webhook, or change its URL; either way it is (again) active, its
    failures forgotten. Returns (webhook, created); a new one has a new secret. The URL is checked
    (its host resolved) before any transaction opens: no lock waits on DNS."""
    require_agent(agent)
    try:
        check_url(url)
    except Refused as exc:
        raise Invalid("This URL cannot receive webhooks.", details={"url": str(exc)}) from None
    for _ in range(2):  # two first PUTs at once: the one that loses the insert updates the other's
        try:
            with transaction.atomic():
                webhook = Webhook.objects.select_for_update().filter(agent=agent).first()
                created = webhook is None
                if created:
                    webhook = Webhook(agent=agent, secret=new_secret())
                else:
                    _enable(webhook, timezone.now())
                webhook.url = url
                webhook.save()
                return webhook, created
        except IntegrityError:
            continue
    raise Conflict("Your webhook changed meanwhile; try again.")


def webhook_get(agent) -> Webhook:
    require_agent(agent)
    webhook = Webhook.objects.filter(agent=agent).first()
    if webhook is None:
        raise NotFound("You have no webhook; register one with PUT /api/agents/me/webhook.")
    return webhook


MAX_SECRET_GRACE_SECONDS = 7 * 86400


@transaction.atomic
def webhook_rotate(*, agent, grace_seconds=None) -> Webhook:
    """A new secret; every attempt from now on is signed with it and, for `grace_seconds` (default
    MYTHLINE_WEBHOOK_SECRET_GRACE_SECONDS, at most a week; 0: not at all, as after a leak), also
    with the secret it replaces: a second signature in the same header, so that a receiver that
    still checks the old secret keeps accepting deliveries while it switches (Standard Webhooks).
    Rotating again within the grace replaces that previous secret with the one just replaced."""
    if grace_seconds is None:
        grace_seconds = settings.MYTHLINE_WEBHOOK_SECRET_GRACE_SECONDS
    elif isinstance(grace_seconds, bool) or not isinstance(grace_seconds, int) \
            or not 0 <= grace_seconds <= MAX_SECRET_GRACE_SECONDS:
        raise Invalid(f"'grace_seconds' must be an integer from 0 to {MAX_SECRET_GRACE_SECONDS}.",
                      details={"grace_seconds": f"an integer from 0 to {MAX_SECRET_GRACE_SECONDS}"})
    webhook = Webhook.objects.select_for_update().get(pk=webhook_get(agent).pk)
    if grace_seconds > 0:
        webhook.previous_secret = webhook.secret
        webhook.previous_secret_expires_at = timezone.now() + timedelta(seconds=grace_seconds)
    else:
        webhook.previous_secret, webhook.previous_secret_expires_at = "", None
    webhook.secret = new_secret()
    webhook.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return webhook


def webhook_delete(*, agent) -> None:
    """Remove the webhook and its delivery log (204 whether there was one or not)."""
    require_agent(agent)
    Webhook.objects.filter(agent=agent).delete()


@transaction.atomic
def webhook_enable(webhook: Webhook) -> None:
    """Re-enable a disabled webhook (the admin's action; the agent PUTs its URL again)."""
    _enable(webhook, timezone.now())
    webhook.save()


def delivery_body(message, channel) -> str:
    """The JSON body of a message's delivery, as sent (and signed) at every attempt: the message
    as reads show it, with its aggregated view as it was when posted."""
    slug = channel.story.slug
    data = message_json(message, story_slug=slug, channel_name=channel.name, view=fresh_view())
    return json.dumps({"type": Delivery.EVENT, "timestamp": iso(message.created_at),
                       "data": {"story": slug, "channel": channel.name, "message": data}},
                      separators=(",", ":"), ensure_ascii=False)


# Inside `one_batch()`: each inbox agent's active webhook as looked up (None: none), each
# visibility answer, and the deliveries, inserted together on the way out.
_batch = BatchScope("webhooks_batch", lambda deliveries: Delivery.objects.bulk_create(deliveries, ignore_conflicts=True))


def one_batch():
    """Within (in the transaction that stores a batch of messages): `on_posted` looks each inbox
    agent's active webhook up once, and the deliveries are inserted together on the way out (not
    when the block raises: its transaction rolls back; without those made inside a savepoint that
    rolled back). Nested: the outermost one inserts."""
    return _batch.open()


def _active_webhook(agent_id: int, batch: dict | None) -> Webhook | None:
    webhooks = batch.setdefault("webhooks", {}) if batch is not None else None
    if webhooks is not None and agent_id in webhooks:
        return webhooks[agent_id]
    webhook = Webhook.objects.select_related("agent").filter(agent_id=agent_id, status=Webhook.Status.ACTIVE).first()
    if webhooks is not None:
        webhooks[agent_id] = webhook
    return webhook


def _visible(message, agent, batch: dict | None) -> bool:
    """`message_visible_to`; in a batch, once per channel and audience kind (the same answer for
    every message of it), except for a list of users (each message its own recipients)."""
    if batch is None or message.audience_kind == Message.Audience.USERS:
        return message_visible_to(message, agent)
    visible = batch.setdefault("visible", {})
    key = (agent.pk, message.channel_id, message.audience_kind)
    if key not in visible:
        visible[key] = message_visible_to(message, agent)
    return visible[key]


def writes_on_post(channel) -> bool:
    """Whether `on_posted` may write (or read) anything for a post into `channel`: only into an
    agent's inbox. messaging's one-statement post asks it (`_plain`)."""
    return channel.kind == Channel.Kind.INBOX and channel.inbox_agent_id is not None


def on_posted(message, channel) -> None:
    """Called by messaging.services._insert in the post's transaction, once the message is stored:
    a message in an agent's inbox becomes a pending delivery to the agent's active webhook, if the
    agent may read it (its story, the message's audience). Posts in other channels cost nothing;
    an inbox whose agent has no active webhook costs one indexed query (per batch, in `one_batch()`)."""
    if not writes_on_post(channel):
        return
    if message.sender_id == channel.inbox_agent_id:
        return  # the agent's own post: nothing to tell it
    batch = _batch.state()
    webhook = _active_webhook(channel.inbox_agent_id, batch)
    if webhook is None:
        return
    if not _visible(message, webhook.agent, batch):
        return
    delivery = Delivery(webhook=webhook, message=message, body=delivery_body(message, channel),
                        next_attempt_at=timezone.now())
    if not _batch.add(delivery):
        Delivery.objects.bulk_create([delivery], ignore_conflicts=True)
