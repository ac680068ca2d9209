"""Reads for channels and messages, with access and audience applied in the query."""
import base64
import binascii
import json
import uuid

from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from messaging.models import Channel, Membership, Message, ReadCursor
from messaging.relations import views_for
from messaging.policies import ChannelAccess, audience_q, message_visible_to, readable_channels
from messaging.serializers import message_json, message_json_full
from mythline_site.errors import Invalid, NotFound
from stories.models import Story

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def parse_int(value, name, *, minimum=0, default=None):
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Invalid(f"'{name}' must be an integer.", details={name: "must be an integer"}) from None
    if number < minimum:
        raise Invalid(f"'{name}' must be at least {minimum}.", details={name: f"must be at least {minimum}"})
    return number


def parse_limit(value) -> int:
    return min(parse_int(value, "limit", minimum=1, default=DEFAULT_LIMIT), MAX_LIMIT)


def reader_q(user) -> Q:
    """Messages `user` may see by audience, the story owner's exemption included."""
    return audience_q(user) | Q(story__owner_id=user.pk)


def messages_page(access: ChannelAccess, user, *, after=None, before=None, limit=DEFAULT_LIMIT,
                  msg_types=None) -> dict:
    """A page of a channel's log: ascending from seq > after, or descending from seq < before."""
    channel = access.channel
    qs = Message.objects.filter(channel=channel).select_related("sender")
    if not access.is_story_owner:
        qs = qs.filter(audience_q(user))
    if msg_types:
        qs = qs.filter(msg_type__in=msg_types)
    page = {}
    if before is not None:
        rows = list(qs.filter(seq__lt=before).order_by("-seq")[:limit])
        page["next_before"] = rows[-1].seq if len(rows) == limit else None
        page["next_after"] = rows[0].seq if rows else before - 1
    else:
        after = after or 0
        rows = list(qs.filter(seq__gt=after).order_by("seq")[:limit])
        page["next_after"] = rows[-1].seq if rows else after
    slug, name = channel.story.slug, channel.name
    last_seq = max([channel.last_seq, *(m.seq for m in rows)])
    views = views_for(rows, user)
    return {"results": [message_json(m, story_slug=slug, channel_name=name, view=views[m.pk]) for m in rows],
            **page, "last_seq": last_seq}


def message_for_reader(user, message_id) -> Message:
    try:
        pk = uuid.UUID(str(message_id))
    except ValueError:
        raise NotFound("No such message.") from None
    message = Message.objects.select_related("story", "channel", "sender").filter(pk=pk).first()
    if message is None or not message_visible_to(message, user):
        raise NotFound("No such message.")
    return message


def message_detail(user, message_id) -> dict:
    """One message with its aggregated view (edits, deletion, reactions), for a reader who may read it."""
    message = message_for_reader(user, message_id)
    return message_json_full(message, view=views_for([message], user)[message.pk])


def thread_for_reader(user, message_id) -> dict:
    """The whole reply tree of a message, from its root, oldest first; unreadable ones left out."""
    message = message_for_reader(user, message_id)
    root_id = message.thread_root_id or message.pk
    channel_ids = readable_channels(user, story=message.story).values("pk")
    rows = (Message.objects.select_related("story", "channel", "sender")
            .filter(Q(pk=root_id) | Q(thread_root_id=root_id))
            .filter(channel_id__in=channel_ids).filter(reader_q(user))
            .order_by("created_at", "channel_id", "seq"))
    rows = list(rows)
    views = views_for(rows, user)
    return {"root": str(root_id), "results": [message_json_full(m, view=views[m.pk]) for m in rows]}


# --- Activity: every readable message across channels ----------------------------------------
# The cursor is the reader's seq per channel (base64 JSON), not a time or a global id: a seq is
# visible only after every lower seq of its channel committed, so no message is ever skipped,
# whatever the commit order across channels and processes.

def encode_activity_cursor(positions: dict[int, int]) -> str:
    raw = json.dumps({str(k): v for k, v in sorted(positions.items())}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_activity_cursor(cursor: str | None) -> dict[int, int]:
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        return {int(k): int(v) for k, v in data.items()}
    except (ValueError, binascii.Error, AttributeError, TypeError):
        raise Invalid("'after' is not a cursor this API gave out.", details={"after": "invalid cursor"}) from None


def activity_page(user, *, story: Story | None, after: str | None, limit: int) -> dict:
    positions = decode_activity_cursor(after)
    channel_ids = list(readable_channels(user, story=story).values_list("pk", flat=True))
    fresh = [c for c in channel_ids if positions.get(c, 0) == 0]
    where = Q(channel_id__in=fresh) if fresh else Q(pk__in=[])
    for c in channel_ids:
        if positions.get(c, 0) > 0:
            where |= Q(channel_id=c, seq__gt=positions[c])
    rows = list(Message.objects.select_related("story", "channel", "sender").filter(where).filter(reader_q(user))
                .order_by("created_at", "channel_id", "seq")[:limit])
    for m in rows:
        positions[m.channel_id] = max(positions.get(m.channel_id, 0), m.seq)
    views = views_for(rows, user)
    return {"results": [message_json_full(m, view=views[m.pk]) for m in rows],
            "next_after": encode_activity_cursor(positions)}


# --- Channels ---------------------------------------------------------------------------------

def channels_for_reader(user, story: Story):
    return (readable_channels(user, story=story).select_related("story", "created_by", "inbox_agent")
            .order_by("name"))


def channel_members(channel: Channel):
    return Membership.objects.filter(channel=channel).select_related("user").order_by("joined_at", "id")


def inbox_rows(user) -> list[dict]:
    """Per readable channel: last_seq, the caller's read cursor, and unread messages for the caller
    (after the cursor, visible to the caller, not sent by the caller)."""
    read_seq = Coalesce(Subquery(ReadCursor.objects.filter(channel_id=OuterRef("pk"), user_id=user.pk)
                                 .values("seq")[:1]), Value(0))
    unread = (Message.objects.filter(channel_id=OuterRef("pk"), seq__gt=OuterRef("read_seq"))
              .exclude(sender_id=user.pk).filter(reader_q(user))
              .order_by().values("channel_id").annotate(n=Count("pk")).values("n"))
    rows = (readable_channels(user).select_related("story")
            .annotate(read_seq=read_seq)
            .annotate(unread=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)))
            .order_by("story__slug", "name"))
    return [{"story": c.story.slug, "channel": c.name, "kind": c.kind, "last_seq": c.last_seq,
             "read_seq": c.read_seq, "unread": c.unread, "archived": c.archived_at is not None} for c in rows]
