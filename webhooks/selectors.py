"""Reads of webhooks."""
from messaging.selectors import parse_int
from webhooks.models import Delivery, Webhook

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def deliveries(webhook: Webhook, *, limit=None) -> list[Delivery]:
    """The webhook's deliveries, newest first (`limit` clamped to MAX_LIMIT; not a number: 400 `invalid`)."""
    limit = min(parse_int(limit, "limit", minimum=1, default=DEFAULT_LIMIT), MAX_LIMIT)
    return list(Delivery.objects.filter(webhook=webhook).order_by("-created_at", "-id")[:limit])
