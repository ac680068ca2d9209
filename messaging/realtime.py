"""One channel subscription's delivery logic, shared by the WebSocket consumer and SSE.

Frames go out through `send(frame_text, seq)`; a frame is the WebSocket `message` frame, encoded
once (live frames come encoded from the publisher).

The channel layer is a fast path, not a store: it may drop events (capacity, expiry, a restart).
A `ChannelFeed` tracks the last seq it accounted for; a live event beyond the next expected seq
makes it fetch the missing ones from the database first, so the client sees every seq once, in
order: replay and live meet without a gap or a duplicate.

Subscribing is always: join the group, then read `last_seq` (so anything committed later is
published after the join), then replay from the database up to that seq.
"""
from dataclasses import dataclass, field

from channels.db import database_sync_to_async

from messaging.events import dumps
from messaging.models import Message, MessageRecipient
from messaging.policies import ChannelAccess, access_channel
from messaging.serializers import message_json
from mythline_site import metrics
from mythline_site.errors import Invalid

REPLAY_PAGE = 500
# A feed that falls this far behind is not backfilled message by message: the client is told to
# resume with `after` (it reconnects or resubscribes), as after any other overflow.
MAX_BACKFILL = 5000


def parse_topic(topic) -> tuple[str, str, str | None]:
    """'channel:story/name' -> ('channel', story, name); 'story:slug' -> ('story', slug, None)."""
    if not isinstance(topic, str) or ":" not in topic:
        raise Invalid("topic must look like 'channel:<story>/<channel>', 'story:<story>' or 'doc:<story>/<doc>'.",
                      details={"topic": "malformed"})
    kind, _, rest = topic.partition(":")
    if kind == "story" and rest and "/" not in rest:
        return kind, rest, None
    if kind in ("channel", "doc"):
        story, _, name = rest.partition("/")
        if story and name and "/" not in name:
            return kind, story, name
    raise Invalid("topic must look like 'channel:<story>/<channel>', 'story:<story>' or 'doc:<story>/<doc>'.",
                  details={"topic": "malformed"})


@dataclass
class ChannelFeed:
    topic: str
    access: ChannelAccess
    user: object
    types: frozenset | None = None
    last_seq: int = 0  # every seq up to here is accounted for (sent, or filtered out)
    replay_prefix: str = field(init=False)
    live_prefix: str = field(init=False)

    def __post_init__(self):
        self.replay_prefix = '{"type":"message","topic":' + dumps(self.topic) + ',"replay":true,"message":'
        self.live_prefix = '{"type":"message","topic":' + dumps(self.topic) + ',"message":'

    @property
    def channel(self):
        return self.access.channel

    @property
    def group(self) -> str:
        return self.channel.group_name

    # --- filters ------------------------------------------------------------------------------
    def wants(self, *, msg_type, audience_kind, sender_id, recipient_ids) -> bool:
        if self.types is not None and msg_type not in self.types:
            return False
        user = self.user
        if audience_kind == Message.Audience.ALL or sender_id == user.pk or self.access.is_story_owner:
            return True
        if audience_kind == Message.Audience.AGENTS:
            return user.is_agent
        if audience_kind == Message.Audience.HUMANS:
            return not user.is_agent
        return user.pk in recipient_ids

    def _frames_from_rows(self, rows, recipients, prefix) -> list[tuple[int, str]]:
        frames = []
        slug, name = self.channel.story.slug, self.channel.name
        for m in rows:
            if self.wants(msg_type=m.msg_type, audience_kind=m.audience_kind, sender_id=m.sender_id,
                          recipient_ids=recipients.get(m.pk, ())):
                frames.append((m.seq, prefix + dumps(message_json(m, story_slug=slug, channel_name=name)) + "}"))
        return frames

    # --- database (sync; call through database_sync_to_async) ------------------------------------
    def fetch_range(self, after: int, upto: int | None, prefix: str, limit: int = REPLAY_PAGE):
        """Frames for seq in (after, upto], at most `limit` rows; returns (frames, last seq covered)."""
        qs = Message.objects.filter(channel_id=self.channel.pk, seq__gt=after).select_related("sender")
        if upto is not None:
            qs = qs.filter(seq__lte=upto)
        rows = list(qs.order_by("seq")[:limit])
        if not rows:
            return [], (upto if upto is not None else after)
        listed = [m.pk for m in rows if m.audience_kind == Message.Audience.USERS]
        recipients = {}
        if listed:
            for mid, uid in MessageRecipient.objects.filter(message_id__in=listed).values_list("message_id", "user_id"):
                recipients.setdefault(mid, set()).add(uid)
        covered = rows[-1].seq if len(rows) == limit or upto is None else upto
        return self._frames_from_rows(rows, recipients, prefix), covered

    def current_last_seq(self) -> int:
        return type(self.channel).objects.filter(pk=self.channel.pk).values_list("last_seq", flat=True).first() or 0

    # --- async steps --------------------------------------------------------------------------
    async def send_range(self, after: int, upto: int, send, *, replay: bool) -> None:
        """Send every message in (after, upto] from the database, page by page: as `replay` frames
        after a subscribe, as plain live frames when filling a gap the channel layer left."""
        prefix = self.replay_prefix if replay else self.live_prefix
        cursor = after
        while cursor < upto:
            frames, covered = await database_sync_to_async(self.fetch_range)(cursor, upto, prefix)
            for seq, frame in frames:
                await send(frame, seq)
            metrics.MESSAGES_DELIVERED.inc(len(frames))
            cursor = covered
        self.last_seq = max(self.last_seq, upto)

    async def on_live(self, event: dict, send) -> bool:
        """Handle a `message.created` event; False when the feed fell too far behind to catch up."""
        seq = event["seq"]
        if seq <= self.last_seq:
            return True  # already replayed or backfilled
        if seq > self.last_seq + 1:
            if seq - self.last_seq > MAX_BACKFILL:
                return False
            metrics.GAPS_BACKFILLED.inc()
            await self.send_range(self.last_seq, seq - 1, send, replay=False)
        if self.wants(msg_type=event["msg_type"], audience_kind=event["audience_kind"], sender_id=event["sender_id"],
                      recipient_ids=event["recipient_ids"]):
            await send(event["frame"], seq)
            metrics.MESSAGES_DELIVERED.inc()
        self.last_seq = seq
        return True


def open_channel_feed(user, story: str, channel: str, *, topic: str, types=None) -> ChannelFeed:
    """Check access (sync) and build a feed; the caller joins the group, then reads last_seq."""
    access = access_channel(user, story, channel)
    return ChannelFeed(topic=topic, access=access, user=user, types=frozenset(types) if types else None)
