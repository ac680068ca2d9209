"""`/ws/`: one socket per client, many topic subscriptions (docs/realtime.md).

This module is the transport only: limits (frame size, frame flood, slow clients, per-user socket
and per-socket subscription caps), sending, close codes, parsing a client frame and handing it to
the handler its `type` names, and handing each layer event to the topic it names. What a topic
does lives beside it in messaging/topics/ (channel, story, document); frames are built in
messaging/frames.py; rights changes arrive as events (messaging/rights.py).

Client frames are JSON objects with a `type` and an optional `ref`, echoed on every reply. A bad
frame gets an `error` frame and the socket stays open.

Close codes: 4401 unauthenticated, or the token was revoked / the user deactivated; 4403 cookie
socket from a foreign origin (at the handshake); 4429 too many sockets for this user; 4008 slow
consumer (resume with `after`); 1008 frame flood; 1009 frame too large; 1011 a server fault.
"""
import asyncio
import json
import logging
import time

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from comments import frames as comment_frames
from messaging import frames, rights
from messaging.connections import Connection, get_connections
from messaging.fanout import Inbox, get_fanout, subscriber_id
from messaging.serializers import sender_json
from messaging.topics import LATER, Topic, channel, document, notifications, parse_topic, story
from mythline_site import metrics
from mythline_site.errors import STORE_DOWN_ERRORS, Invalid, MythlineError, RateLimited, Unavailable
from mythline_site.throttling import TokenBucket
from mythline_site.transport import close_with_protocol_code, pending_bytes
from presence.services import get_hub
from notifications import frames as notification_frames
from streaming import frames as stream_frames
from suggestions import frames as suggestion_frames

logger = logging.getLogger("mythline.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_MANY = 4429
CLOSE_SLOW_CONSUMER = 4008
CLOSE_FLOOD = 1008
CLOSE_TOO_LARGE = 1009
CLOSE_SERVER_ERROR = 1011
PRESENCE_STATES = ("active", "idle", "away")

TOPIC_KINDS = {"channel": channel.subscribe, "story": story.subscribe, "doc": document.subscribe,
               "notifications": notifications.subscribe}


def parse_frame(raw) -> dict:
    """A client frame, or Invalid. Hostile input (deep nesting, bad UTF-8, non-objects) is refused
    here with an error, never a traceback."""
    try:
        frame = json.loads(raw)
    except RecursionError:
        raise Invalid("The frame is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError):
        raise Invalid("The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise Invalid("A frame must be a JSON object with a 'type'.")
    ref = frame.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise Invalid("'ref' must be a string.", details={"ref": "must be a string"})
    return frame


class RealtimeConsumer(AsyncWebsocketConsumer):
    """A socket's frames and its topics' events are handled one at a time (`self.turn`).

    The socket does not hold a channel of its own in the channel layer: its events come from the
    process's `Fanout` (one layer membership per group and process) through `self.inbox`, read by
    one long-lived task. `self.conn_id` is only this socket's unique id (presence, cursors).

    A live message takes a shorter way when it can (`offer`): while the socket is idle (no turn
    held, its event task waiting on an empty inbox, no send of its own unfinished), the fan-out
    hands it the event directly and it writes the frame there and then, with no task woken and no
    lock taken. Order is kept: whenever the shorter way does not apply, the event is queued and
    taken in the socket's turn as before.
    """

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.channel_layer = get_channel_layer()
        self.conn_id = self.channel_name = subscriber_id("ws")
        self.base_send = send
        self.inbox = Inbox()
        self.fanout = get_fanout()
        self.turn = asyncio.Lock()
        self.timers: set[asyncio.TimerHandle] = set()
        self.record: Connection | None = None
        self.closing = self.disconnected = False
        self.sending: asyncio.Task | None = None  # a send `offer` began that had to wait (see send_now)
        events = asyncio.get_running_loop().create_task(self.handle_events())
        try:
            while True:
                message = await receive()
                async with self.turn:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            self.inbox.offer = None
            events.cancel()
            if self.sending is not None:
                self.sending.cancel()
            await self.disconnect(None)  # also when the server dropped us without a disconnect

    async def dispatch(self, message):
        """Channels closes stale DB connections (a hop to a worker thread) before every handler;
        on a busy socket that hop was a third of the server's CPU. Our handlers reach the
        database only through database_sync_to_async, which does that clean-up itself."""
        kind = message["type"]
        if kind == "websocket.receive":
            await self.receive_frame(message.get("text"), message.get("bytes"))
        elif kind == "websocket.connect":
            await self.connect()
        elif kind == "websocket.disconnect":
            await self.disconnect(message.get("code"))
            raise StopConsumer()

    async def handle_events(self):
        try:
            while True:
                event = await self.inbox.get()
                async with self.turn:
                    if event is None:  # fell MYTHLINE_WS_INBOX_EVENTS behind: resume with `after`
                        logger.info("closing slow client %s: inbox overflowed", self.user.username)
                        await self.shut(CLOSE_SLOW_CONSUMER)
                        return
                    await self.on_event(event)
                    while self.inbox.events and not self.closing:  # a burst: handled in one turn
                        await self.on_event(self.inbox.events.popleft())
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a handler: close this socket rather than let it go silent
            logger.exception("event handling failed on %s", self.conn_id)
            await self.shut(CLOSE_SERVER_ERROR)

    def offer(self, event: dict) -> int | None:
        """The fan-out's synchronous taker (Inbox.offer): handle a live event now if nothing of this
        socket is in flight, else None (queue it). Returns the number of messages sent (0 or 1)."""
        if self.closing or self.sending is not None or self.turn.locked() or not self.inbox.parked:
            return None
        sub = self.subs.get(event.get("topic"))
        if sub is None:
            return None
        if self.buffer_visible:  # Daphne: a client too far behind is closed in the turn (send_frame)
            pending = pending_bytes(self.base_send)
            if pending is not None and pending > settings.MYTHLINE_WS_SEND_BUFFER_BYTES:
                return None
        frame = sub.live_frame(event)
        if frame is LATER:
            return None
        if frame is None:
            return 0
        self.send_now(frame)
        return 1

    def send_now(self, text: str) -> None:
        """Write a frame from synchronous code: run the server's send up to its first wait. It
        usually has none (the frame is written); when it must wait (its buffer is full, as with a
        client that reads slowly) a task finishes it, and this socket's other sends wait for that
        task (`send_frame`, `offer`), so frames keep their order and the slow-consumer bounds hold."""
        call = self.base_send({"type": "websocket.send", "text": text})
        try:
            waiting_on = call.send(None)
        except StopIteration:
            return
        except Exception:  # noqa: BLE001 - as in handle_events: close this socket rather than let it go silent
            logger.exception("sending failed on %s", self.conn_id)
            self.sending = asyncio.get_running_loop().create_task(self.shut(CLOSE_SERVER_ERROR))
            return
        self.sending = asyncio.get_running_loop().create_task(self.finish_send(call, waiting_on))

    async def finish_send(self, call, waiting_on) -> None:
        """Drive a send that `send_now` started to its end, as a task of its own would have: each
        time it yields a future, wait for that future, then resume it (it reads the future's result
        or exception itself). Cancelled (the socket is going away), it cancels the send as a task's
        `cancel()` would: the future the send waits on is cancelled and CancelledError is raised
        inside the send, so that the server's own clean-up runs (an asyncio.Lock waiter hands the
        lock on to the next one; a drain waiter is not left pending), then the send is driven to
        its end as before (a server that takes the cancellation and goes on is not cut off)."""
        cancelled = False
        try:
            while True:
                try:
                    if waiting_on is None:  # a bare yield (sleep(0))
                        await asyncio.sleep(0)
                    elif asyncio.isfuture(waiting_on):
                        waiting_on._asyncio_future_blocking = False
                        await asyncio.wait((waiting_on,))
                    else:
                        call.close()
                        raise RuntimeError(f"the server's send yielded {waiting_on!r}, not a future")
                except asyncio.CancelledError:
                    cancelled = True
                    if asyncio.isfuture(waiting_on):
                        waiting_on.cancel()
                    waiting_on = call.throw(asyncio.CancelledError())
                    continue
                waiting_on = call.send(None)
        except StopIteration:
            pass
        except Exception:  # noqa: BLE001 - as in handle_events
            logger.exception("sending failed on %s", self.conn_id)
            await self.shut(CLOSE_SERVER_ERROR)
        finally:
            if self.sending is asyncio.current_task():
                self.sending = None
        if cancelled:
            raise asyncio.CancelledError()

    async def on_event(self, event: dict) -> None:
        if self.closing:
            return
        sub = self.subs.get(event.get("topic"))  # layer events name their topic as a string
        if sub is not None:
            await sub.on_event(self, event)
        elif event["type"] == "rights.changed":
            await self.on_rights_changed(event)

    # --- lifecycle --------------------------------------------------------------------------------
    async def connect(self):
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.shut(CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.subs: dict[str, Topic] = {}
        self.presence: dict[str, tuple] = {}  # presence topic -> (Room, this connection's meta)
        self.state = "active"
        self.hub = get_hub()
        self.registry = get_connections()
        self.bucket = TokenBucket(settings.MYTHLINE_WS_FRAME_RATE, settings.MYTHLINE_WS_FRAME_BURST)
        self.rejected = 0
        # Daphne shows its unsent bytes (we bound them); uvicorn's send waits for the drain instead.
        self.buffer_visible = pending_bytes(self.base_send) is not None
        record = Connection("ws", self.conn_id, user.pk, getattr(user, "api_token_id", None), self.inbox)
        try:
            await self.registry.open(record)
        except RateLimited as error:
            await self.send_error(error)
            await self.shut(CLOSE_TOO_MANY)
            return
        self.record = record
        metrics.SOCKETS_OPEN.inc()
        await self.send_frame(frames.dumps(frames.welcome(
            sender_json(user), heartbeat_seconds=settings.MYTHLINE_HEARTBEAT_SECONDS,
            max_frame_bytes=settings.MYTHLINE_WS_MAX_FRAME_BYTES)))
        self.inbox.offer = self.offer

    async def disconnect(self, code):
        if self.record is None or self.disconnected:
            return
        self.disconnected = self.closing = True
        for timer in self.timers:
            timer.cancel()
        metrics.SOCKETS_OPEN.dec()
        for topic in list(self.subs):
            await self.unsubscribe(topic)
        await self.registry.close(self.record)

    def later(self, delay: float, event: dict) -> asyncio.TimerHandle:
        """Put `event` in this socket's own inbox after `delay` (cancelled when the socket closes):
        delayed work runs in the socket's turn, with no task of its own."""
        def fire():
            self.timers.discard(handle)
            if not self.closing:
                self.inbox.put(event)
        handle = asyncio.get_running_loop().call_later(delay, fire)
        self.timers.add(handle)
        return handle

    def cancel_later(self, handle: asyncio.TimerHandle) -> None:
        handle.cancel()
        self.timers.discard(handle)

    # --- sending ------------------------------------------------------------------------------
    async def send_frame(self, text: str) -> None:
        """Every frame to the client goes out here (straight to the server's send: this runs once
        per subscriber per message)."""
        if self.sending is not None:  # a frame `offer` began is still going out: it goes first
            await asyncio.wait((self.sending,))
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
        sending = self.sending
        if sending is not None and sending is not asyncio.current_task():
            # A frame `offer` began goes out before the close (if the client reads at all, the
            # close waits for the same drain).
            await asyncio.wait((sending,))
        if code < 3000 and close_with_protocol_code(self.base_send, code, reason):
            return
        await self.base_send({"type": "websocket.close", "code": code})

    async def shut_slow(self) -> None:
        await self.shut(CLOSE_SLOW_CONSUMER)

    async def reply(self, frame: dict, ref) -> None:
        if ref is not None:
            frame["ref"] = ref
        await self.send_frame(frames.dumps(frame))

    async def send_error(self, error: MythlineError, ref=None, **extra) -> None:
        metrics.ERRORS.labels(error.code, "ws").inc()
        await self.reply(frames.error(error.code, error.message, error.details, **extra), ref)

    # --- receiving ----------------------------------------------------------------------------
    async def receive_frame(self, text_data, bytes_data):
        if self.closing or self.record is None:
            return
        raw = text_data if text_data is not None else bytes_data
        if raw is None:
            return
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
        frame, ref = None, None
        try:
            frame = parse_frame(raw)
            ref = frame.get("ref")
            kind = frame.get("type")
            handler = FRAMES.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise Invalid(f"Unknown frame type {str(frame.get('type'))[:64]!r}.",
                              details={"type": f"one of {', '.join(sorted(FRAMES))}"})
            await handler(self, frame, ref)
        except MythlineError as error:
            topic = frame.get("topic") if frame is not None else None
            await self.send_error(error, ref, **({"topic": topic} if isinstance(topic, str) else {}))
        except STORE_DOWN_ERRORS as exc:
            await self.store_down(frame, ref, exc)

    async def store_down(self, frame: dict, ref, exc: Exception) -> None:
        """The database or Redis is down or restarting (errors.STORE_DOWN_ERRORS): the frame gets an
        `unavailable` error with `retry_after` and the socket stays open. A write was rolled back
        (a retry with the same message id is safe). A subscribe that failed is not subscribed, even
        when `subscribed` came first (the replay was cut short): the client subscribes again with
        `after`."""
        logger.error("unavailable on %s: %s: %s", self.conn_id, type(exc).__name__, exc)
        topic = frame.get("topic")
        if frame.get("type") == "subscribe" and isinstance(topic, str):
            try:
                await self.unsubscribe(topic)
            except STORE_DOWN_ERRORS:
                await self.shut(CLOSE_SERVER_ERROR)  # cannot leave the topic cleanly: resume on a new socket
                return
        await self.send_error(Unavailable(), ref, **({"topic": topic} if isinstance(topic, str) else {}))

    # --- topics -------------------------------------------------------------------------------
    def sub_for(self, topic) -> Topic | None:
        """The open subscription to `topic` (anything a client sent), or None."""
        return self.subs.get(topic) if isinstance(topic, str) else None

    def add_sub(self, sub: Topic) -> None:
        self.subs[sub.topic] = sub
        metrics.SUBSCRIPTIONS.inc()

    async def unsubscribe(self, topic) -> Topic | None:
        sub = self.sub_for(topic)
        if sub is not None:
            del self.subs[topic]
            metrics.SUBSCRIPTIONS.dec()
            await sub.close(self)
            await self.registry.leave_story(self.record, sub.slug)
        return sub

    async def on_rights_changed(self, event: dict) -> None:
        """Re-run the access check of every topic in the event's scope (messaging/rights.py)."""
        if rights.closes(event, user_id=self.user.pk, token_id=self.record.token_id):
            logger.info("closing %s's socket: token revoked or user deactivated", self.user.username)
            await self.shut(CLOSE_UNAUTHENTICATED)
            return
        affected = [sub for sub in self.subs.values()
                    if rights.in_scope(event, story_id=sub.story_id, channel_id=sub.channel_id)]
        if not affected:
            return
        user = self.user

        def recheck():
            return [sub for sub in affected if not sub.recheck(user)]

        for sub in await database_sync_to_async(recheck)():
            if self.subs.get(sub.topic) is sub:
                await self.unsubscribe(sub.topic)
                await self.send_frame(frames.dumps(frames.unsubscribed(sub.topic, reason="access_revoked")))


# --- connection-level frames ----------------------------------------------------------------------

async def on_subscribe(conn: RealtimeConsumer, frame, ref):
    topic = frame.get("topic")
    kind, story_slug, name = parse_topic(topic)
    if topic in conn.subs:
        await conn.unsubscribe(topic)
    cap = settings.MYTHLINE_MAX_SUBSCRIPTIONS_PER_SOCKET
    if len(conn.subs) >= cap:
        raise RateLimited(f"A socket holds at most {cap} subscriptions; unsubscribe from one first.",
                          retry_after=1, details={"limit": cap})
    # Hear the story's rights changes before checking access: a change committed during the
    # check is then seen after it. (`notifications:<username>` is no story's topic: no story to hear.)
    story_scope = story_slug if kind != "notifications" else ""
    if story_scope:
        await conn.registry.join_story(conn.record, story_scope)
    try:
        await TOPIC_KINDS[kind](conn, frame, ref, topic, story_slug, name)
    except BaseException:
        if topic not in conn.subs and story_scope:
            await conn.registry.leave_story(conn.record, story_scope)
        raise


async def on_unsubscribe(conn: RealtimeConsumer, frame, ref):
    topic = frame.get("topic")
    if await conn.unsubscribe(topic) is None:
        raise Invalid(f"Not subscribed to {str(topic)[:200]!r}.", details={"topic": "not subscribed"})
    await conn.reply(frames.unsubscribed(topic), ref)


async def on_heartbeat(conn: RealtimeConsumer, frame, ref):
    state = frame.get("state", "active")
    if state not in PRESENCE_STATES:
        raise Invalid("'state' must be active, idle or away.", details={"state": "invalid"})
    conn.state = state
    for room, meta in conn.presence.values():
        meta["s"] = state
        await conn.hub.touch(room, conn.conn_id, meta)
    await conn.fanout.refresh()
    await conn.reply(frames.heartbeat_ack(), ref)


async def on_ping(conn: RealtimeConsumer, frame, ref):
    await conn.reply(frames.pong(), ref)


FRAMES = {"subscribe": on_subscribe, "unsubscribe": on_unsubscribe, "heartbeat": on_heartbeat, "ping": on_ping,
          **channel.FRAMES, **document.FRAMES, **story.FRAMES, **suggestion_frames.FRAMES, **comment_frames.FRAMES,
          **notification_frames.FRAMES, **stream_frames.FRAMES}
