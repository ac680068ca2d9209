"""Reads of notifications: a user's own feed only.

A notification whose channel the user may no longer read (removed from a private channel, say)
is left out of the feed and of the unread count: its excerpt is the channel's text."""
from django.db.models import Q

from messaging.policies import readable_channels
from messaging.serializers import iso, sender_json
from mythline_site.errors import Invalid
from notifications.models import Notification

DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def feed(user):
    """The user's notifications they may still see, newest first."""
    visible = Q(channel__isnull=True) | Q(channel_id__in=readable_channels(user).values("pk"))
    return Notification.objects.filter(visible, user_id=user.pk)


def unread_count(user) -> int:
    return feed(user).filter(read_at__isnull=True).count()


def notification_json(n: Notification) -> dict:
    """For a notification fetched with select_related('story', 'channel', 'actor') (or built in memory
    with them set)."""
    return {"id": n.id, "kind": n.kind, "story": n.story.slug if n.story_id else None,
            "channel": n.channel.name if n.channel_id else None,
            "message_id": str(n.message_id) if n.message_id else None,
            "actor": sender_json(n.actor) if n.actor_id else None, "excerpt": n.excerpt,
            "created_at": iso(n.created_at), "read_at": iso(n.read_at)}


def parse_flag(value, name: str) -> bool:
    if value in (None, "", "0", "false", False):
        return False
    if value in ("1", "true", True):
        return True
    raise Invalid(f"'{name}' must be 1 or 0.", details={name: "must be 1 or 0"})


def parse_positive(value, name: str, *, default=None, maximum=None):
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise Invalid(f"'{name}' must be a positive integer.", details={name: "must be a positive integer"})
    value = int(value)
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" at most {maximum}" if maximum else ""
        raise Invalid(f"'{name}' must be a positive integer{bound}.",
                      details={name: f"must be a positive integer{bound}"})
    return value


def page(user, *, unread_only: bool = False, before: int | None = None, limit: int = DEFAULT_LIMIT) -> dict:
    """{"results": newest first, "unread": the unread count, "next_before": the id to page on, or None}."""
    rows = feed(user).select_related("story", "channel", "actor")
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    if before is not None:
        rows = rows.filter(id__lt=before)
    rows = list(rows.order_by("-id")[:limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {"results": [notification_json(n) for n in rows], "unread": unread_count(user),
            "next_before": rows[-1].id if more else None}
