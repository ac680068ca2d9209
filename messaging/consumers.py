"""`/ws/`: one socket per client, many topic subscriptions (SPEC 7).

Client frames are JSON objects with a `type` and an optional `ref`, echoed on every reply. A bad
frame gets an `error` frame and the socket stays open; a frame over the size limit closes the
socket with 1009; a client that floods frames gets `rate_limited` errors and is then closed with
1008; a client that stops reading is closed with 4008 once its unsent bytes pass a bound.

Close codes: 4401 unauthenticated, 4403 cookie socket from a foreign origin (at the handshake),
4008 slow consumer (resume with `after`), 1008 frame flood, 1009 frame too large.
"""
import asyncio
import json
import logging
import time

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.consumer import get_handler_name
from channels.layers import get_channel_layer
from django.conf import settings

from messaging import services
from messaging.events import dumps, story_group
from messaging.fanout import Inbox, get_fanout, group_send, subscriber_id
from messaging.models import Channel
from messaging.policies import access_channel
from messaging.realtime import ChannelFeed, open_channel_feed, parse_topic
from messaging.serializers import sender_json
from mythline_site import metrics
from mythline_site.errors import Conflict, Forbidden, Invalid, MythlineError, NotFound, RateLimited
from mythline_site.throttling import check_rate
from mythline_site.transport import close_with_protocol_code, pending_bytes
from presence.services import Room, connection_meta, get_hub, room_state
from stories.documents import changes_after, committed_revision, document_push, document_push_known_stale, note_committed
from stories.models import Document
from stories.policies import access_story

logger = logging.getLogger("mythline.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_SLOW_CONSUMER = 4008
CLOSE_FLOOD = 1008
CLOSE_TOO_LARGE = 1009
PRESENCE_STATES = ("active", "idle", "away")
TYPING_TTL_SECONDS = 6


class FrameBucket:
    """Inbound frames per socket: a token bucket (steady rate plus burst)."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a frame may pass; else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


CURSOR_INTERVAL = 0.05


class DocSub:
    def __init__(self, topic, doc, access):
        self.topic, self.doc, self.access = topic, doc, access
        self.last_revision = 0
        self.pending_cursor = None
        self.cursor_sent_at = 0.0
        self.cursor_scheduled = False

    @property
    def group(self):
        return self.doc.group_name

    def can_write(self) -> bool:
        return self.access.can_write

    def current(self):
        self.doc.refresh_from_db(fields=["text", "revision"])
        return self.doc.revision, self.doc.text


def open_doc_sub(user, story, name, topic) -> DocSub:
    access = access_story(user, story)
    doc = Document.objects.select_related("story").filter(story=access.story, name=name).first()
    if doc is None:
        raise NotFound(f"No document '{name}' in story '{story}'.")
    return DocSub(topic, doc, access)


class StorySub:
    def __init__(self, topic, story, user):
        self.topic, self.story, self.user = topic, story, user

    @property
    def group(self):
        return story_group(self.story.pk)


class RealtimeConsumer(AsyncWebsocketConsumer):
    """A socket's frames and its topics' events are handled one at a time (`self.turn`).

    The socket does not hold a channel of its own in the channel layer: its events come from the
    process's `Fanout` (one layer membership per group and process) through `self.inbox`, read by
    one long-lived task. `self.channel_name` is only this socket's unique id (presence, cursors).
    """

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.channel_layer = get_channel_layer()
        self.channel_name = subscriber_id("ws")
        self.base_send = send
        self.inbox = Inbox()
        self.fanout = get_fanout()
        self.turn = asyncio.Lock()
        events = asyncio.get_running_loop().create_task(self.handle_events())
        try:
            while True:
                message = await receive()
                async with self.turn:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            events.cancel()
            if getattr(self, "counted", False):  # the server dropped us without a disconnect
                await self.disconnect(None)

    async def handle_events(self):
        try:
            while True:
                event = await self.inbox.get()
                async with self.turn:
                    if event is None:  # fell MYTHLINE_WS_INBOX_EVENTS behind: resume with `after`
                        logger.info("closing slow client %s: inbox overflowed", self.user.username)
                        await self.shut(CLOSE_SLOW_CONSUMER)
                        return
                    await self.dispatch(event)
                    while self.inbox.events:  # a burst: handled in one turn
                        await self.dispatch(self.inbox.events.popleft())
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a handler: close this socket rather than let it go silent
            logger.exception("event handling failed on %s", self.channel_name)
            await self.shut(1011)

    async def connect(self):
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.subs: dict[str, ChannelFeed | StorySub] = {}
        self.bucket = FrameBucket(settings.MYTHLINE_WS_FRAME_RATE, settings.MYTHLINE_WS_FRAME_BURST)
        self.rejected = 0
        self.closing = False
        self.typing_sent: dict[str, float] = {}
        self.presence: dict[str, tuple] = {}  # presence topic -> (Room, this connection's meta)
        self.state = "active"
        self.hub = get_hub()
        # Daphne shows its unsent bytes (we bound them); uvicorn's send waits for the drain instead.
        self.buffer_visible = pending_bytes(self.base_send) is not None
        metrics.SOCKETS_OPEN.inc()
        self.counted = True
        await self.send_frame(dumps({"type": "welcome", "user": sender_json(user),
                                     "heartbeat_seconds": settings.MYTHLINE_HEARTBEAT_SECONDS,
                                     "max_frame_bytes": settings.MYTHLINE_WS_MAX_FRAME_BYTES}))

    async def disconnect(self, code):
        if not getattr(self, "counted", False):
            return
        self.counted = False
        metrics.SOCKETS_OPEN.dec()
        for topic in list(self.subs):
            await self.unsubscribe(topic)

    async def dispatch(self, message):
        """Channels closes stale DB connections (a hop to a worker thread) before every handler;
        on a busy socket that hop was a third of the server's CPU. Our handlers reach the
        database only through database_sync_to_async, which does that clean-up itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- sending ------------------------------------------------------------------------------
    async def send_frame(self, text: str) -> None:
        """Every frame to the client goes out here (straight to the server's send: this runs once
        per subscriber per message)."""
        if self.closing:
            return
        if self.buffer_visible:
            pending = pending_bytes(self.base_send)
            if pending is not None and pending > settings.MYTHLINE_WS_SEND_BUFFER_BYTES:
                metrics.SLOW_CLIENTS_CLOSED.inc()
                logger.info("closing slow client %s: %d bytes unsent", self.user.username, pending)
                await self.shut(CLOSE_SLOW_CONSUMER)
                return
        await self.base_send({"type": "websocket.send", "text": text})

    async def send_replay_frame(self, text: str, seq: int) -> None:
        """A replay writes a whole page without yielding, so the frames pile up in the server's
        buffer before any reach the socket: past the bound, give the client up to
        MYTHLINE_WS_SEND_DRAIN_SECONDS to take them in before judging it slow. (Live frames come
        one event at a time, with the server writing in between: there a full buffer means a
        client that does not read.)"""
        deadline = time.monotonic() + settings.MYTHLINE_WS_SEND_DRAIN_SECONDS
        pending = pending_bytes(self.base_send)
        while pending is not None and pending > settings.MYTHLINE_WS_SEND_BUFFER_BYTES and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            pending = pending_bytes(self.base_send)
        await self.send_frame(text)

    async def send_feed_frame(self, text: str, seq: int) -> None:
        await self.send_frame(text)

    async def shut(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        if code < 3000 and close_with_protocol_code(self.base_send, code, reason):
            return
        await self.close(code=code)

    async def reply(self, frame: dict, ref) -> None:
        if ref is not None:
            frame["ref"] = ref
        await self.send_frame(dumps(frame))

    async def send_error(self, error: MythlineError, ref=None, **extra) -> None:
        metrics.ERRORS.labels(error.code, "ws").inc()
        frame = {"type": "error", "code": error.code, "message": error.message}
        if error.details is not None:
            frame["details"] = error.details
        await self.reply({**frame, **extra}, ref)

    # --- receiving ----------------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None):
        if self.closing or not hasattr(self, "subs"):
            return
        raw = text_data if text_data is not None else bytes_data
        limit = settings.MYTHLINE_WS_MAX_FRAME_BYTES
        if len(raw) > limit or (isinstance(raw, str) and len(raw) * 4 > limit and len(raw.encode()) > limit):
            await self.shut(CLOSE_TOO_LARGE, "frame too large")
            return
        wait = self.bucket.take()
        if wait:
            self.rejected += 1
            if self.rejected > settings.MYTHLINE_WS_FLOOD_CLOSE_AFTER:
                await self.shut(CLOSE_FLOOD, "too many frames")
                return
            await self.send_error(RateLimited("Too many frames; slow down.", retry_after=wait))
            return
        try:
            frame = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            await self.send_error(Invalid("The frame is not valid JSON."))
            return
        if not isinstance(frame, dict):
            await self.send_error(Invalid("A frame must be a JSON object with a 'type'."))
            return
        ref = frame.get("ref")
        if ref is not None and not isinstance(ref, str):
            await self.send_error(Invalid("'ref' must be a string.", details={"ref": "must be a string"}))
            return
        handler = self.HANDLERS.get(frame.get("type"))
        if handler is None:
            await self.send_error(Invalid(f"Unknown frame type {frame.get('type')!r}.",
                                          details={"type": f"one of {', '.join(sorted(self.HANDLERS))}"}), ref)
            return
        try:
            await handler(self, frame, ref)
        except MythlineError as error:
            await self.send_error(error, ref, **({"topic": frame["topic"]} if isinstance(frame.get("topic"), str) else {}))

    # --- frame handlers -----------------------------------------------------------------------
    async def on_subscribe(self, frame, ref):
        topic = frame.get("topic")
        kind, story, name = parse_topic(topic)
        after = frame.get("after")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            raise Invalid("'after' must be a non-negative integer.", details={"after": "invalid"})
        types = frame.get("types")
        if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
            raise Invalid("'types' must be a list of msg_type names.", details={"types": "invalid"})
        if topic in self.subs:
            await self.unsubscribe(topic)
        if kind == "story":
            access = await database_sync_to_async(access_story)(self.user, story)
            sub = StorySub(topic, access.story, self.user)
            await self.fanout.join(sub.group, self.inbox)
            self.subs[topic] = sub
            metrics.SUBSCRIPTIONS.inc()
            await self.reply({"type": "subscribed", "topic": topic}, ref)
            return
        if kind == "doc":
            sub = await database_sync_to_async(open_doc_sub)(self.user, story, name, topic)
            await self.fanout.join(sub.group, self.inbox)
            self.subs[topic] = sub
            metrics.SUBSCRIPTIONS.inc()
            revision, text = await database_sync_to_async(sub.current)()
            sub.last_revision = revision
            await self.reply({"type": "subscribed", "topic": topic, "revision": revision}, ref)
            await self.send_frame(dumps({"type": "doc.state", "topic": topic, "revision": revision, "text": text}))
            return
        feed = await database_sync_to_async(open_channel_feed)(self.user, story, name, topic=topic, types=types)
        # Join first, then read last_seq: whatever commits after the read is published after the join.
        await self.fanout.join(feed.group, self.inbox)
        self.subs[topic] = feed
        metrics.SUBSCRIPTIONS.inc()
        last_seq = await database_sync_to_async(feed.current_last_seq)()
        feed.last_seq = last_seq if after is None else min(after, last_seq)
        await self.reply({"type": "subscribed", "topic": topic, "last_seq": last_seq}, ref)
        if feed.channel.kind == Channel.Kind.PRESENCE:
            room = Room.of(feed.channel)
            self.presence[topic] = (room, connection_meta(self.user, state=self.state))
            await self.hub.touch(room, self.channel_name, self.presence[topic][1])
            state = await room_state(room.id, room.story_id)
            await self.send_frame(dumps({"type": "presence.state", "topic": topic, **state}))
        if after is not None and after < last_seq:
            await feed.send_range(after, last_seq, self.send_replay_frame, replay=True)

    async def unsubscribe(self, topic):
        sub = self.subs.pop(topic, None)
        if sub is not None:
            await self.fanout.leave(sub.group, self.inbox)
            metrics.SUBSCRIPTIONS.dec()
        tracked = self.presence.pop(topic, None)
        if tracked is not None:
            await self.hub.remove(tracked[0], self.channel_name)
        return sub

    async def on_unsubscribe(self, frame, ref):
        topic = frame.get("topic")
        if await self.unsubscribe(topic) is None:
            raise Invalid(f"Not subscribed to {topic!r}.", details={"topic": "not subscribed"})
        await self.reply({"type": "unsubscribed", "topic": topic}, ref)

    async def on_publish(self, frame, ref):
        kind, story, name = parse_topic(frame.get("topic"))
        if kind != "channel":
            raise Invalid("Publish to a 'channel:<story>/<channel>' topic.", details={"topic": "not a channel"})
        data = {k: v for k, v in frame.items() if k not in ("type", "topic", "ref")}
        result = await database_sync_to_async(self._publish)(story, name, data)
        if result.created:
            metrics.MESSAGES_PUBLISHED.labels("ws").inc()
        await self.reply({"type": "published", "topic": frame["topic"], "id": result.data["id"],
                          "seq": result.data["seq"], "created": result.created}, ref)

    def _publish(self, story, name, data):
        check_rate("post", f"u{self.user.pk}")
        access = access_channel(self.user, story, name, for_write=True)
        return services.message_post(sender=self.user, access=access, data=data)

    async def on_typing(self, frame, ref):
        topic = frame.get("topic")
        sub = self.subs.get(topic)
        if not isinstance(sub, ChannelFeed):
            raise Invalid("Subscribe to the channel topic before sending typing.", details={"topic": "not subscribed"})
        typing = frame.get("typing", True)
        if not isinstance(typing, bool):
            raise Invalid("'typing' must be true or false.", details={"typing": "must be a boolean"})
        now = time.monotonic()
        last = self.typing_sent.get(topic)
        # Forward a start at most once a second per topic (clients repeat it while typing); a stop always.
        if typing and last is not None and now - last < 1.0:
            return
        self.typing_sent[topic] = now if typing else None
        if topic in self.presence:  # on a presence channel, typing is part of the member's entry
            room, meta = self.presence[topic]
            meta["t"] = time.time() + TYPING_TTL_SECONDS if typing else 0
            await self.hub.touch(room, self.channel_name, meta)
        out = {"type": "typing", "topic": topic, "user": sender_json(self.user), "typing": typing,
               "expires_in": TYPING_TTL_SECONDS}
        await group_send(sub.group, {"type": "typing.event", "topic": topic, "user_id": self.user.pk,
                                     "frame": dumps(out)})

    async def on_heartbeat(self, frame, ref):
        state = frame.get("state", "active")
        if state not in PRESENCE_STATES:
            raise Invalid("'state' must be active, idle or away.", details={"state": "invalid"})
        self.state = state
        for room, meta in self.presence.values():
            meta["s"] = state
            await self.hub.touch(room, self.channel_name, meta)
        await self.fanout.refresh()
        await self.reply({"type": "heartbeat_ack"}, ref)

    async def on_ack(self, frame, ref):
        kind, story, name = parse_topic(frame.get("topic"))
        seq = frame.get("seq")
        if kind != "channel":
            raise Invalid("Ack a 'channel:<story>/<channel>' topic.", details={"topic": "not a channel"})
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise Invalid("'seq' must be a non-negative integer.", details={"seq": "invalid"})
        read_seq = await database_sync_to_async(self._ack)(story, name, seq)
        await self.reply({"type": "acked", "topic": frame["topic"], "seq": read_seq}, ref)

    def _ack(self, story, name, seq):
        access = access_channel(self.user, story, name)
        return services.cursor_ack(channel=access.channel, user=self.user, seq=seq)

    # --- co-editing -----------------------------------------------------------------------------
    def doc_sub(self, frame) -> "DocSub":
        sub = self.subs.get(frame.get("topic"))
        if not isinstance(sub, DocSub):
            raise Invalid("Subscribe to the doc topic first.", details={"topic": "not subscribed"})
        return sub

    async def on_doc_push(self, frame, ref):
        sub = self.doc_sub(frame)
        try:
            revision, known = frame.get("revision"), max(sub.last_revision, committed_revision(sub.doc))
            if isinstance(revision, int) and revision < known:
                # Stale for sure (a later revision is committed): refused off the database thread.
                await sync_to_async(self._doc_push, thread_sensitive=False)(sub, frame, known_stale=known)
            else:
                await database_sync_to_async(self._doc_push)(sub, frame)
        except Conflict as error:
            await self.send_error(error, ref, topic=sub.topic, revision=error.details["revision"])

    def _doc_push(self, sub, frame, known_stale: int | None = None):
        check_rate("post", f"u{self.user.pk}")
        if not sub.can_write():
            raise Forbidden("Viewers read the document but do not edit it.")
        if known_stale is not None:
            return document_push_known_stale(doc=sub.doc, revision=frame.get("revision"),
                                             client_id=frame.get("client_id", ""), known_revision=known_stale)
        return document_push(doc=sub.doc, author=self.user, revision=frame.get("revision"),
                             changes=frame.get("changes"), client_id=frame.get("client_id", ""),
                             known_revision=sub.last_revision)

    async def on_doc_pull(self, frame, ref):
        sub = self.doc_sub(frame)
        after = frame.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise Invalid("'after' must be a non-negative integer.", details={"after": "invalid"})
        changes = await database_sync_to_async(changes_after)(sub.doc, after)
        await self.reply({"type": "doc.changes", "topic": sub.topic, "changes": changes}, ref)

    async def on_cursor(self, frame, ref):
        sub = self.doc_sub(frame)
        anchor, head = frame.get("anchor"), frame.get("head", frame.get("anchor"))
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in (anchor, head)):
            raise Invalid("'anchor' and 'head' must be non-negative integers.", details={"anchor": "invalid"})
        now = time.monotonic()
        # At most one cursor frame per topic per CURSOR_INTERVAL; the latest position wins.
        sub.pending_cursor = (anchor, head)
        if now - sub.cursor_sent_at >= CURSOR_INTERVAL:
            await self.flush_cursor(sub)
        elif not sub.cursor_scheduled:
            sub.cursor_scheduled = True
            asyncio.get_running_loop().call_later(CURSOR_INTERVAL, lambda: asyncio.ensure_future(self.flush_cursor(sub)))

    async def flush_cursor(self, sub):
        sub.cursor_scheduled = False
        if sub.pending_cursor is None or self.subs.get(sub.topic) is not sub:
            return
        anchor, head = sub.pending_cursor
        sub.pending_cursor, sub.cursor_sent_at = None, time.monotonic()
        out = {"type": "cursor", "topic": sub.topic, "user": sender_json(self.user), "anchor": anchor, "head": head,
               "revision": sub.last_revision}
        await group_send(sub.group, {"type": "cursor.event", "topic": sub.topic, "conn": self.channel_name,
                                     "frame": dumps(out)})
        # The cursor is part of the user's presence in the story's room, when they are there.
        for room, meta in self.presence.values():
            if room.story_id == sub.doc.story_id:
                meta["c"] = {"doc": sub.doc.name, "anchor": anchor, "head": head, "revision": sub.last_revision,
                             "at": time.time()}
                await self.hub.touch(room, self.channel_name, meta)

    async def on_ping(self, frame, ref):
        await self.reply({"type": "pong"}, ref)

    HANDLERS = {"subscribe": on_subscribe, "unsubscribe": on_unsubscribe, "publish": on_publish,
                "typing": on_typing, "heartbeat": on_heartbeat, "ack": on_ack, "ping": on_ping,
                "doc.push": on_doc_push, "doc.pull": on_doc_pull, "cursor": on_cursor}

    # --- channel-layer events -----------------------------------------------------------------
    async def message_created(self, event):
        feed = self.subs.get(event["topic"])
        if not isinstance(feed, ChannelFeed) or self.closing:
            return
        if not await feed.on_live(event, self.send_feed_frame):
            # Too far behind to backfill here: the client resumes with `after` on a new socket.
            metrics.SLOW_CLIENTS_CLOSED.inc()
            await self.shut(CLOSE_SLOW_CONSUMER)

    async def access_revoked(self, event):
        if event["user_id"] == self.user.pk and await self.unsubscribe(event["topic"]) is not None:
            await self.send_frame(dumps({"type": "unsubscribed", "topic": event["topic"], "reason": "access_revoked"}))

    async def story_event(self, event):
        sub = self.subs.get(event["topic"])
        if not isinstance(sub, StorySub):
            return
        only = event.get("only_user_ids")
        if only is not None and self.user.pk not in only:
            return
        await self.send_frame(event["frame"])

    async def doc_change(self, event):
        sub = self.subs.get(event["topic"])
        if not isinstance(sub, DocSub) or event["revision"] <= sub.last_revision:
            return
        if event["revision"] > sub.last_revision + 1:  # the layer lost some: fill from the log
            metrics.GAPS_BACKFILLED.inc()
            for change in await database_sync_to_async(changes_after)(sub.doc, sub.last_revision,
                                                                      event["revision"] - 1 - sub.last_revision):
                await self.send_frame(dumps({"type": "doc.change", "topic": sub.topic, **change}))
        sub.last_revision = event["revision"]
        note_committed(sub.doc, event["revision"])  # also what other processes committed
        await self.send_frame(event["frame"])

    async def cursor_event(self, event):
        if event["conn"] != self.channel_name and event["topic"] in self.subs:
            await self.send_frame(event["frame"])

    async def presence_diff(self, event):
        if event["topic"] in self.subs:
            await self.send_frame(event["frame"])

    async def typing_event(self, event):
        if event["user_id"] != self.user.pk and event["topic"] in self.subs:
            await self.send_frame(event["frame"])
