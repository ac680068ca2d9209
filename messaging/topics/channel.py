"""`channel:<story>/<channel>`: a channel's messages (replay, then live, gapless), typing, and on
a presence channel its members' presence. Client frames: `publish`, `typing`, `ack`.

`ChannelFeed` is the delivery logic of one channel subscription, shared by the socket and SSE
(messaging/sse.py). Frames go out through `send(frame_text, seq)`; a frame is the `message` frame,
encoded once (live frames come encoded from the publisher).

The channel layer is a fast path, not a store: it may drop events (capacity, expiry, a restart).
A feed tracks the last seq it accounted for; a live event beyond the next expected seq makes it
fetch the missing ones from the database first, so the client sees every seq once, in order:
replay and live meet without a gap or a duplicate.

Subscribing is always: check access, join the group, then read `last_seq` (so anything committed
later is published after the join), then replay from the database up to that seq.
"""
import time
from dataclasses import dataclass, field

from channels.db import database_sync_to_async

from messaging import frames, services
from messaging.fanout import group_send
from messaging.models import Channel, Message, MessageRecipient
from messaging.policies import ChannelAccess, access_channel
from messaging.relations import views_for
from messaging.serializers import message_json, sender_json
from messaging.topics import LATER, Topic, integer, parse_topic
from mythline_site import metrics
from mythline_site.errors import Archived, Forbidden, Invalid, MythlineError
from mythline_site.throttling import TokenBucket, check_rate
from presence.services import Room, connection_meta, room_state
from streaming import live as streams

REPLAY_PAGE = 500
# A feed that falls this far behind is not backfilled message by message: the client is told to
# resume with `after` (it reconnects or resubscribes), as after any other overflow.
MAX_BACKFILL = 5000
TYPING_TTL_SECONDS = 6
TYPING_REPEAT_INTERVAL = 1.0  # a repeated start (still typing) is forwarded at most once a second
TYPING_RATE, TYPING_BURST = 1.0, 4  # typing frames forwarded per socket and topic: 1/s, bursts of 4


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
        self.replay_prefix = frames.message_prefix(self.topic, replay=True)
        self.live_prefix = frames.message_prefix(self.topic, replay=False)

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
        slug, name = self.channel.story.slug, self.channel.name
        wanted = [m for m in rows if self.wants(msg_type=m.msg_type, audience_kind=m.audience_kind,
                                                sender_id=m.sender_id, recipient_ids=recipients.get(m.pk, ()))]
        views = views_for(wanted, self.user)  # each message as it is now: its edits, deletion, reactions
        return [(m.seq, prefix + frames.dumps(message_json(m, story_slug=slug, channel_name=name, view=views[m.pk]))
                 + "}") for m in wanted]

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

    def recheck(self) -> bool:
        """May the user still read the channel? Keeps the fresh rights (write, archived) when so."""
        try:
            self.access = access_channel(self.user, self.channel.story.slug, self.channel.name)
        except MythlineError:
            return False
        return True

    # --- async steps --------------------------------------------------------------------------
    async def send_range(self, after: int, upto: int, send, *, replay: bool) -> None:
        """Send every message in (after, upto] from the database, page by page: as `replay` frames
        after a subscribe, as plain live frames when filling a gap the channel layer left."""
        prefix = self.replay_prefix if replay else self.live_prefix
        cursor = after
        while cursor < upto:
            page, covered = await database_sync_to_async(self.fetch_range)(cursor, upto, prefix)
            for seq, frame in page:
                await send(frame, seq)
            metrics.MESSAGES_DELIVERED.inc(len(page))
            cursor = covered
        self.last_seq = max(self.last_seq, upto)

    def next_live(self, event: dict):
        """A `message.created` event that needs no database: the next seq, or one already accounted
        for. Returns its frame when this subscriber sees it, else None (and accounts for its seq);
        LATER, changing nothing, when seqs are missing before it (`on_live` backfills them)."""
        seq = event["seq"]
        if seq <= self.last_seq:
            return None  # already replayed or backfilled
        if seq != self.last_seq + 1:
            return LATER
        self.last_seq = seq
        if self.wants(msg_type=event["msg_type"], audience_kind=event["audience_kind"], sender_id=event["sender_id"],
                      recipient_ids=event["recipient_ids"]):
            return event["frame"]
        return None

    async def on_live(self, event: dict, send) -> bool:
        """Handle a `message.created` event; False when the feed fell too far behind to catch up."""
        seq = event["seq"]
        if seq > self.last_seq + 1:
            if seq - self.last_seq > MAX_BACKFILL:
                return False
            metrics.GAPS_BACKFILLED.inc()
            await self.send_range(self.last_seq, seq - 1, send, replay=False)
        frame = self.next_live(event)
        if frame is not None:
            await send(frame, seq)
            metrics.MESSAGES_DELIVERED.inc()
        return True

    async def start(self, fanout, inbox, after: int | None) -> int:
        """Join the group, then read last_seq: whatever commits after the read is published after
        the join. Returns last_seq; the feed accounts from `after` (or from now)."""
        await fanout.join(self.group, inbox)
        try:
            last_seq = await database_sync_to_async(self.current_last_seq)()
        except BaseException:
            await fanout.leave(self.group, inbox)  # not started: the caller will not leave for us
            raise
        self.last_seq = last_seq if after is None else min(after, last_seq)
        return last_seq


def open_channel_feed(user, story: str, channel: str, *, topic: str, types=None) -> ChannelFeed:
    """Check read access (sync) and build a feed; then `start` it."""
    access = access_channel(user, story, channel)
    return ChannelFeed(topic=topic, access=access, user=user, types=frozenset(types) if types else None)


def check_replay_rate(user, after) -> None:
    """Opening a subscription or stream that replays history costs a read."""
    if after is not None:
        check_rate("read", f"u{user.pk}")


# --- the socket's channel topic -----------------------------------------------------------------

class ChannelTopic(Topic):
    kind = "channel"

    def __init__(self, feed: ChannelFeed):
        super().__init__(feed.topic, feed.channel.story.slug, feed.channel.story_id)
        self.feed = feed
        self.channel_id = feed.channel.pk
        self.room = Room.of(feed.channel) if feed.channel.kind == Channel.Kind.PRESENCE else None
        self.typing_on = False
        self.typing_started_at: float | None = None
        self.typing_bucket = TokenBucket(TYPING_RATE, TYPING_BURST)
        self.streams = streams.StreamSnapshot()  # what the subscribe's stream snapshot sent

    @property
    def group(self) -> str:
        return self.feed.group

    def recheck(self, user) -> bool:
        return self.feed.recheck()

    def check_post(self) -> None:
        """Typing is for those who may post here (as known since the last rights change)."""
        access = self.feed.access
        if not access.can_post:
            raise Forbidden("You may not post in this channel, so you do not type in it either.")
        if access.channel.is_archived:
            raise Archived(f"Channel '{access.channel.name}' is archived and read-only.")

    async def on_event(self, conn, event: dict) -> None:
        kind = event["type"]
        if kind == "message.created":
            if not await self.feed.on_live(event, conn.send_feed_frame):
                # Too far behind to backfill here: the client resumes with `after` on a new socket.
                metrics.SLOW_CLIENTS_CLOSED.inc()
                await conn.shut_slow()
        elif kind == "typing.event":
            if event["user_id"] != conn.user.pk:
                await conn.send_frame(event["frame"])
        elif kind == "presence.diff":
            await conn.send_frame(event["frame"])
        elif kind == "stream.event":  # streaming/live.py
            if self.streams.admits(event) and streams.wants(self.feed, event):
                await conn.send_frame(event["frame"])

    def live_frame(self, event: dict):
        return self.feed.next_live(event) if event["type"] == "message.created" else LATER

    async def close(self, conn) -> None:
        await super().close(conn)
        tracked = conn.presence.pop(self.topic, None)
        if tracked is not None:
            await conn.hub.remove(tracked[0], conn.conn_id)


async def subscribe(conn, frame: dict, ref, topic: str, story: str, name: str) -> ChannelTopic:
    after = integer(frame, "after")
    types = frame.get("types")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise Invalid("'types' must be a list of msg_type names.", details={"types": "invalid"})

    def open_feed():
        check_replay_rate(conn.user, after)
        return open_channel_feed(conn.user, story, name, topic=topic, types=types)

    feed = await database_sync_to_async(open_feed)()
    sub = ChannelTopic(feed)
    last_seq = await feed.start(conn.fanout, conn.inbox, after)
    conn.add_sub(sub)
    await conn.reply(frames.subscribed(topic, last_seq=last_seq), ref)
    if sub.room is not None:
        meta = connection_meta(conn.user, state=conn.state)
        conn.presence[topic] = (sub.room, meta)
        await conn.hub.touch(sub.room, conn.conn_id, meta)
        state = await room_state(sub.room.id, sub.room.story_id)
        await conn.send_frame(frames.dumps(frames.presence_state(topic, state)))
    if after is not None and after < last_seq:
        await feed.send_range(after, last_seq, conn.send_replay_frame, replay=True)
    # The open streams, with their text so far (streaming/live.py).
    started, sub.streams = await database_sync_to_async(streams.snapshot)(feed)
    for frame in started:
        await conn.send_frame(frames.dumps(frame))
    return sub


# --- client frames ----------------------------------------------------------------------------------

def channel_topic_of(frame: dict, what: str) -> tuple[str, str]:
    kind, story, name = parse_topic(frame.get("topic"))
    if kind != "channel":
        raise Invalid(f"{what} a 'channel:<story>/<channel>' topic.", details={"topic": "not a channel"})
    return story, name


async def on_publish(conn, frame, ref):
    story, name = channel_topic_of(frame, "Publish to")
    data = {k: v for k, v in frame.items() if k not in ("type", "topic", "ref")}
    result = await database_sync_to_async(services.message_publish)(sender=conn.user, story=story, channel=name,
                                                                      data=data, via="ws")
    await conn.reply(frames.published(frame["topic"], result.data["id"], result.data["seq"], result.created), ref)


async def on_ack(conn, frame, ref):
    story, name = channel_topic_of(frame, "Ack")
    seq = integer(frame, "seq", default=...)

    def ack():
        access = access_channel(conn.user, story, name)
        return services.cursor_ack(channel=access.channel, user=conn.user, seq=seq)

    read_seq = await database_sync_to_async(ack)()
    await conn.reply(frames.acked(frame["topic"], read_seq), ref)


async def on_typing(conn, frame, ref):
    topic = frame.get("topic")
    sub = conn.sub_for(topic)
    if not isinstance(sub, ChannelTopic):
        raise Invalid("Subscribe to the channel topic before sending typing.", details={"topic": "not subscribed"})
    typing = frame.get("typing", True)
    if not isinstance(typing, bool):
        raise Invalid("'typing' must be true or false.", details={"typing": "must be a boolean"})
    sub.check_post()
    now = time.monotonic()
    # What readers hear from one socket is bounded: a repeated start (clients repeat it while
    # typing) at most once a second, a stop only after a start, and all of it within a bucket.
    if typing and sub.typing_on and now - sub.typing_started_at < TYPING_REPEAT_INTERVAL:
        return
    if not typing and not sub.typing_on:
        return
    if sub.typing_bucket.take():
        return
    if typing:
        sub.typing_started_at = now
    sub.typing_on = typing
    if topic in conn.presence:  # on a presence channel, typing is part of the member's entry
        room, meta = conn.presence[topic]
        meta["t"] = time.time() + TYPING_TTL_SECONDS if typing else 0
        await conn.hub.touch(room, conn.conn_id, meta)
    out = frames.typing(topic, sender_json(conn.user), typing, TYPING_TTL_SECONDS)
    await group_send(sub.group, {"type": "typing.event", "topic": topic, "user_id": conn.user.pk,
                                 "frame": frames.dumps(out)})


FRAMES = {"publish": on_publish, "ack": on_ack, "typing": on_typing}
