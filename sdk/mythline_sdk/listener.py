"""`Listener`: receive messages over the WebSocket and hand them to handlers, at least once.

How it keeps its promises:

- Resume. It remembers, per topic, the last seq it took off the socket (`positions`), and on every
  (re)connection subscribes with `after` = that seq: the server replays what was missed, then goes
  live, with no gap. The first position comes from the server-side read cursor (`GET /api/inbox`,
  `read_seq`), so a restarted agent starts where it stopped.
- At least once. A handler's message is acknowledged (`ack` frame; `POST .../ack` when stopping)
  only after its handlers returned, so one that dies half-way gets the message again. Replies
  posted with keys derived from the message (`client.reply`) are stored once even then.
- No duplicates within a process: a message whose seq is at or below the topic's position, or
  whose id was seen before, is dropped (`stats.duplicates`).
- Backpressure. Messages wait in a bounded queue (`queue_size`). When it is full the reader stops
  reading the socket (and the websockets library, past its own small buffer, stops reading the
  TCP stream). The server then sees its send buffer grow and closes the socket with 4008; the
  listener reconnects and resumes from its position. Memory stays bounded; nothing is lost.
- Reconnect with exponential backoff and full jitter, forever (until stopped), across server
  restarts; every lost connection and reconnect attempt is logged at WARNING with its delay. A
  refused subscription (no such channel, not allowed) or a refused token is final.
- Handlers are looked up for each message, on the listener and on its client, so one registered
  (`listener.on`, `client.on`) after the listener was made or started gets the messages that
  follow. A message that arrives while no message handler at all is registered waits, not
  acknowledged (with a warning), until one is: it is never acknowledged unhandled.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from mythline_sdk.errors import MythlineError, SubscriptionError, Unauthenticated
from mythline_sdk.models import (Message, NotificationEvent, NotificationsRead, StreamEvent, channel_topic,
                                 notification_event, parse_channel_topic, stream_event)
from mythline_sdk.retry import Backoff

if TYPE_CHECKING:
    from mythline_sdk.client import AsyncMythlineClient

logger = logging.getLogger("mythline.sdk.listener")

Handler = Callable[[Message], Awaitable[None]]
EventHandler = Callable[[dict], Awaitable[None]]
StreamHandler = Callable[[StreamEvent], Awaitable[None]]
NotificationHandler = Callable[["NotificationEvent | NotificationsRead"], Awaitable[None]]
INBOX = "@inbox"  # in a topic, stands for the caller's own inbox: ("tale", "@inbox") -> inbox.<username>
NOTIFICATIONS = "notifications:@me"  # a topic: the caller's notification feed (notifications:<username>)
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SLOW_CONSUMER = 4008
STARTS = ("cursor", "cursor_or_latest", "latest", "beginning")
FINAL_ACK_BACKOFF = Backoff(base=0.1, cap=0.5, max_attempts=3)  # stopping: a few quick tries, no more


@dataclass
class ListenerStats:
    connections: int = 0
    reconnects: int = 0
    received: int = 0          # message frames read off the socket
    duplicates: int = 0        # of those, dropped as already seen
    delivered: int = 0         # put on the queue
    processed: int = 0         # handlers done (or skipped: own messages, no handler for the type)
    unhandled: int = 0         # arrived while no handler at all was registered (they waited for one)
    failed: int = 0            # handlers that kept failing; the message was acknowledged anyway
    max_queue_depth: int = 0
    close_codes: list[int] = field(default_factory=list)
    acks_sent: int = 0


class Listener:
    """Listen to channel topics and run handlers per msg_type. Use via `client.listener(...)`.

    Topics: `"channel:<story>/<channel>"` strings, `(story, channel)` pairs (tuples or lists),
    `"story:<story>"` for story events, `NOTIFICATIONS` (or `"notifications:<your username>"`) for
    your notification feed; or a single one of these.

    Options:
      after: {topic: seq} (or one seq for every topic): where to start, overriding `start`.
      start: 'cursor' (the server's read cursor; default), 'cursor_or_latest' (the cursor, or the
        present when this user never acknowledged anything there), 'latest', 'beginning'.
      types: only these msg_types (filtered by the server); a list, or one type.
      queue_size: bound of the local queue (backpressure beyond it).
      ack: acknowledge processed messages on the server (the read cursor).
      ignore_own: do not run handlers for the caller's own messages (they are still acknowledged).
      skip_deleted: do not run handlers for a message deleted by the time it arrives (a replay
        after the deletion: its payload is None); it is acknowledged. The `delete` message itself
        still comes, like every relation.

    Besides messages: `on_event` (story events), `on_stream` (streaming messages of the channel
    topics: `StreamStarted`, `StreamChunk`, `StreamEnded`), `on_notification` (`NotificationEvent`,
    `NotificationsRead` of the notifications topic). Frames of a kind with no handler are dropped.
    """

    def __init__(self, client: "AsyncMythlineClient", topics: Iterable, *, after: dict | int | None = None,
                 start: str = "cursor", types: list[str] | None = None, queue_size: int = 256,
                 ack: bool = True, ignore_own: bool = True, skip_deleted: bool = True, dedup_size: int = 10_000,
                 reconnect: Backoff | None = None, handler_backoff: Backoff | None = None,
                 max_handler_failures: int = 3, ack_interval: float = 0.2, ws_max_queue: int = 4,
                 open_timeout: float = 10.0, ping_interval: float | None = 20.0, ping_timeout: float | None = 20.0):
        if start not in STARTS:
            raise ValueError(f"start must be one of {', '.join(STARTS)}")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.client = client
        self._wanted = [_topic(t) for t in _topic_list(topics)]
        self._after = after
        self.start = start
        self.types = [types] if isinstance(types, str) else types
        self.queue_size = queue_size
        self.ack_enabled = ack
        self.ignore_own = ignore_own
        self.skip_deleted = skip_deleted
        self.dedup_size = dedup_size
        self.reconnect = reconnect or Backoff(base=0.2, cap=5.0, max_attempts=None)
        self.handler_backoff = handler_backoff or Backoff(base=0.5, cap=10.0, max_attempts=None)
        self.max_handler_failures = max_handler_failures
        self.ack_interval = ack_interval
        self.ws_max_queue = ws_max_queue
        self.open_timeout = open_timeout
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout

        self.topics: list[str] = []                 # resolved (the @inbox placeholder filled in)
        self.positions: dict[str, int] = {}         # last seq taken off the socket, per topic
        self.processed: dict[str, int] = {}         # last seq whose handlers are done, per topic
        self.acked: dict[str, int] = {}             # the server's read cursor as last confirmed
        self._ack_sent: dict[str, tuple[int, float]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._warned_unhandled = False
        self._handlers: dict[str, list[Handler]] = {}
        self._event_handlers: list[EventHandler] = []
        self._stream_handlers: list[StreamHandler] = []
        self._notification_handlers: list[NotificationHandler] = []
        self._queue: asyncio.Queue | None = None
        self._ws = None
        self._stopping: asyncio.Event | None = None
        self.stats = ListenerStats()
        self.connected = asyncio.Event()  # set while subscribed
        self.last_seq: dict[str, int] = {}          # from `subscribed` frames
        self.unread_notifications: int | None = None  # from the notifications topic's `subscribed`

    # --- handlers ----------------------------------------------------------------------------
    def on(self, msg_type: str = "*", handler: Handler | None = None):
        """Register an async handler for a msg_type ('*': every type). Decorator or direct call."""
        def register(fn: Handler) -> Handler:
            self._handlers.setdefault(msg_type, []).append(fn)
            return fn
        return register(handler) if handler is not None else register

    def on_event(self, handler: EventHandler) -> EventHandler:
        """Handler for story events (`story:<slug>` topics): gets the whole `event` frame."""
        self._event_handlers.append(handler)
        return handler

    def on_stream(self, handler: StreamHandler) -> StreamHandler:
        """Handler for streaming messages in the channel topics: a `StreamStarted` (also, after a
        (re)subscribe, for each stream still open, with its text so far), `StreamChunk`s (`offset`,
        `text`), a `StreamEnded` (`status` completed, then the stored message comes to the message
        handlers with the same id; or cancelled)."""
        self._stream_handlers.append(handler)
        return handler

    def on_notification(self, handler: NotificationHandler) -> NotificationHandler:
        """Handler for the notifications topic (`NOTIFICATIONS`): a `NotificationEvent` per new
        notification (`notification`, `unread`), a `NotificationsRead` when some were marked read."""
        self._notification_handlers.append(handler)
        return handler

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    # --- running -----------------------------------------------------------------------------
    async def run(self, *, stop: asyncio.Event | None = None, duration: float | None = None) -> None:
        """Listen until `stop` is set, `duration` seconds pass, or the task is cancelled. On the
        way out the handler running finishes, and what was processed is acknowledged."""
        self._stopping = asyncio.Event()
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        watchers = []
        if stop is not None:
            watchers.append(asyncio.create_task(_relay(stop, self._stopping)))
        if duration is not None:
            watchers.append(asyncio.create_task(_after_delay(duration, self._stopping)))
        consumer = asyncio.create_task(self._consume(), name="mythline-consume")
        acker = asyncio.create_task(self._ack_loop(), name="mythline-ack")
        try:
            await self._connect_loop()
        finally:
            self._stopping.set()
            for task in (*watchers, acker):
                task.cancel()
            await self._finish(consumer)
            await asyncio.gather(*watchers, acker, return_exceptions=True)
            await self._flush_acks_rest()

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def resubscribe(self, topic: str, after: int) -> None:
        """Subscribe again from `after` on the open socket. Whatever comes back that was already
        seen is dropped as a duplicate: useful to re-check a range."""
        if self._ws is not None:
            await self._ws.send(json.dumps(self._subscribe_frame(topic, after)))

    async def _finish(self, consumer: asyncio.Task) -> None:
        """Let the handler in progress finish (briefly), then stop consuming."""
        deadline = time.monotonic() + 10
        while self._busy and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)

    async def _connect_loop(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            session = asyncio.create_task(self._session())
            stopper = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if session not in done:
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
                return
            stopper.cancel()
            error = session.exception()
            if isinstance(error, (SubscriptionError, Unauthenticated)):
                raise error
            established = session.result() if error is None else getattr(error, "established", False)
            if self._stopping.is_set():
                return
            attempt = 0 if established else attempt + 1
            delay = self.reconnect.delay(attempt)
            if error is not None:
                why = f"{type(error).__name__}: {error}"
            else:
                why = f"closed by the server ({self.stats.close_codes[-1] if self.stats.close_codes else '?'})"
            logger.warning("listener %s: connection to %s %s (%s); reconnecting in %.2fs (attempt %d)",
                           self.client.username, self.client.ws_url, "lost" if established else "failed", why,
                           delay, max(attempt, 1))
            self.stats.reconnects += 1
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _session(self) -> bool:
        """One connection: welcome, subscribe every topic, then read until it closes. Answers
        whether it got as far as subscribing (the reconnect backoff then starts over)."""
        headers = {"Authorization": f"Bearer {self.client.token}"}
        established = False
        try:
            async with connect(self.client.ws_url, additional_headers=headers, open_timeout=self.open_timeout,
                               ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                               close_timeout=2, max_queue=self.ws_max_queue, proxy=None,
                               user_agent_header=self.client.user_agent) as ws:
                heartbeat = None
                try:
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), self.open_timeout))
                    if welcome.get("type") != "welcome":
                        raise MythlineError(f"expected a welcome frame, got {welcome.get('type')!r}")
                    self.client.username = self.client.username or welcome["user"]["username"]
                    if not self.topics:
                        self.topics = [self._resolve(t) for t in self._wanted]
                    await self._init_positions()
                    for topic in self.topics:
                        await ws.send(json.dumps(self._subscribe_frame(topic, self.positions.get(topic))))
                    self._ws = ws
                    self._ack_sent.clear()  # unconfirmed acks go again on this socket
                    self.stats.connections += 1
                    established = True
                    self.connected.set()
                    heartbeat = asyncio.create_task(self._heartbeats(ws, float(welcome.get("heartbeat_seconds", 15))))
                    async for raw in ws:
                        await self._on_frame(raw)
                finally:
                    self._ws = None
                    self.connected.clear()
                    if heartbeat is not None:
                        heartbeat.cancel()
        except ConnectionClosed as exc:
            self._closed(exc.rcvd.code if exc.rcvd else 1006)
            if exc.rcvd and exc.rcvd.code == CLOSE_UNAUTHENTICATED:
                raise Unauthenticated("The server refused the token (close 4401).", code="unauthenticated") from None
            raise _mark(exc, established)
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise Unauthenticated(f"WebSocket handshake refused: {exc.response.status_code}") from None
            raise _mark(exc, established)
        except (OSError, InvalidHandshake, asyncio.TimeoutError, MythlineError) as exc:
            if isinstance(exc, (SubscriptionError, Unauthenticated)):
                raise
            raise _mark(exc, established)
        else:
            self._closed(ws.close_code or 1000)
            if ws.close_code == CLOSE_UNAUTHENTICATED:
                raise Unauthenticated("The server refused the token (close 4401).", code="unauthenticated")
        return established

    def _closed(self, code: int) -> None:
        self.stats.close_codes.append(code)
        if code == CLOSE_SLOW_CONSUMER:
            logger.info("listener %s: closed as a slow consumer (4008); resuming from %s",
                        self.client.username, self.positions)

    def _resolve(self, topic: str) -> str:
        if topic.startswith("story:"):
            return topic
        if topic.startswith("notifications:"):
            return f"notifications:{self.client.username}" if topic == NOTIFICATIONS else topic
        story, channel = parse_channel_topic(topic)
        if channel == INBOX:
            channel = f"inbox.{self.client.username}"
        return channel_topic(story, channel)

    def _subscribe_frame(self, topic: str, after: int | None) -> dict:
        frame: dict[str, Any] = {"type": "subscribe", "topic": topic, "ref": f"sub:{topic}"}
        if after is not None and topic.startswith("channel:"):
            frame["after"] = after
        if self.types and topic.startswith("channel:"):
            frame["types"] = list(self.types)
        return frame

    async def _init_positions(self) -> None:
        """Starting seq per topic, once: explicit `after`, else from the server (`start`)."""
        missing = [t for t in self.topics if t not in self.positions and t.startswith("channel:")]
        if not missing:
            return
        explicit = self._after if isinstance(self._after, dict) else {}
        rows = {}
        if self.start != "beginning" or self.ack_enabled:
            rows = {r.topic: r for r in await self.client.inbox()}
        for topic in missing:
            row = rows.get(topic)
            if row is not None:
                self.acked[topic] = row.read_seq
            if isinstance(self._after, int):
                self.positions[topic] = self._after
            elif topic in explicit:
                self.positions[topic] = int(explicit[topic])
            elif self.start == "beginning":
                self.positions[topic] = 0
            elif row is not None and self.start == "cursor":
                self.positions[topic] = row.read_seq
            elif row is not None and self.start == "cursor_or_latest":
                self.positions[topic] = row.read_seq or row.last_seq
            elif row is not None:
                self.positions[topic] = row.last_seq
            elif self.start == "cursor":
                self.positions[topic] = 0  # not a channel of the caller's stories: no cursor there
            else:
                story, channel = parse_channel_topic(topic)
                self.positions[topic] = (await self.client.read_messages(story, channel, limit=1)).last_seq
            self.processed.setdefault(topic, self.positions[topic])

    async def _heartbeats(self, ws, interval: float) -> None:
        while True:
            await asyncio.sleep(max(1.0, interval))
            await ws.send(json.dumps({"type": "heartbeat", "state": "active"}))

    # --- frames ------------------------------------------------------------------------------
    async def _on_frame(self, raw) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            logger.warning("listener: a frame that is not JSON: %.200r", raw)
            return
        kind = frame.get("type")
        if kind == "message":
            await self._on_message(frame)
        elif kind == "subscribed":
            topic, last = frame["topic"], frame.get("last_seq", 0)
            if topic.startswith("notifications:"):
                self.unread_notifications = frame.get("unread")
                return
            self.last_seq[topic] = last
            if last < self.positions.get(topic, 0):
                # The channel holds fewer messages than we saw (a restored or replaced database):
                # seqs we skipped as "seen" would be new messages now.
                logger.warning("listener %s: %s is at seq %d, behind our %d; following it from there",
                               self.client.username, topic, last, self.positions[topic])
                self.positions[topic] = self.processed[topic] = self.acked[topic] = last
        elif kind == "acked":
            topic = frame.get("topic")
            self.acked[topic] = max(self.acked.get(topic, 0), int(frame.get("seq", 0)))
        elif kind == "event":
            await self._queue.put(("event", frame))
        elif kind in ("stream.started", "stream.chunk", "stream.ended"):
            if self._stream_handlers:
                event = stream_event(frame)
                if event is not None:
                    await self._queue.put(("stream", event))
        elif kind in ("notification", "notifications.read"):
            if self._notification_handlers:
                event = notification_event(frame)
                if event is not None:
                    await self._queue.put(("notification", event))
        elif kind == "error":
            ref = frame.get("ref") or ""
            if ref.startswith("sub:") and frame.get("code") in ("not_found", "forbidden", "invalid", "unauthenticated"):
                raise SubscriptionError(f"subscribe {ref[4:]} refused: {frame.get('message')}",
                                        code=frame.get("code"), details=frame.get("details"))
            if ref.startswith("ack:"):
                topic = ref[4:]
                self._ack_sent.pop(topic, None)
            logger.warning("listener %s: error frame %s", self.client.username, frame)
        elif kind == "unsubscribed" and frame.get("reason") == "access_revoked":
            logger.warning("listener %s: access to %s revoked", self.client.username, frame.get("topic"))
            if frame.get("topic") in self.topics:
                self.topics.remove(frame["topic"])

    async def _on_message(self, frame: dict) -> None:
        data, topic = frame["message"], frame["topic"]
        self.stats.received += 1
        seq, message_id = data["seq"], data["id"]
        if seq <= self.positions.get(topic, 0) or message_id in self._seen:
            self.stats.duplicates += 1
            return
        self.positions[topic] = seq
        self._seen[message_id] = None
        if len(self._seen) > self.dedup_size:
            self._seen.popitem(last=False)
        # The backpressure point: while the queue is full this waits, and nothing more is read.
        await self._queue.put(Message.from_json(data, replay=bool(frame.get("replay"))))
        self.stats.delivered += 1
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, self._queue.qsize())

    # --- processing --------------------------------------------------------------------------
    _busy = False

    async def _consume(self) -> None:
        while True:
            item = await self._queue.get()
            if not isinstance(item, tuple) and not self._has_message_handlers():
                self._unhandled(item)
                while not self._has_message_handlers():  # hold it (and, by backpressure, the rest)
                    await asyncio.sleep(0.05)
            self._busy = True
            try:
                if isinstance(item, tuple):
                    handlers = {"event": self._event_handlers, "stream": self._stream_handlers,
                                "notification": self._notification_handlers}[item[0]]
                    for handler in list(handlers):
                        await self._call(handler, item[1])
                    continue
                if await self._process(item):
                    self.processed[item.topic] = max(self.processed.get(item.topic, 0), item.seq)
                    self.stats.processed += 1
            finally:
                self._busy = False

    def _handlers_for(self, msg_type: str) -> list[Handler]:
        """The listener's handlers and its client's, as registered now (not when it was made)."""
        shared = getattr(self.client, "_handlers", {})
        return [*self._handlers.get(msg_type, ()), *self._handlers.get("*", ()),
                *shared.get(msg_type, ()), *shared.get("*", ())]

    def _has_message_handlers(self) -> bool:
        return any(self._handlers.values()) or any(getattr(self.client, "_handlers", {}).values())

    def _unhandled(self, message: Message) -> None:
        """No handler at all: the message waits for one, unacknowledged; say so once."""
        self.stats.unhandled += 1
        if not self._warned_unhandled:
            self._warned_unhandled = True
            logger.warning("listener %s: %s arrived with no handler registered (listener.on / client.on); it "
                           "waits, unacknowledged, for one", self.client.username, _describe(message))

    async def _process(self, message: Message) -> bool:
        """Run the handlers; False when stopping interrupted them (no ack: it comes again)."""
        if self.ignore_own and message.sender_name == self.client.username:
            return True
        if self.skip_deleted and message.deleted:
            return True
        handlers = self._handlers_for(message.msg_type)
        for handler in handlers:
            if not await self._call(handler, message):
                return False
        return True

    async def _call(self, handler, arg) -> bool:
        failures = 0
        while True:
            try:
                await handler(arg)
                return True
            except asyncio.CancelledError:
                raise
            except MythlineError as exc:
                if not exc.retryable:  # final: doing it again gets the same answer
                    logger.warning("handler %s gave up on %s: %s", _name(handler), _describe(arg), exc)
                    self.stats.failed += 1
                    return True
                logger.info("handler %s: %s; will retry", _name(handler), exc)
            except Exception:  # noqa: BLE001 - a handler's bug must not stop the listener
                failures += 1
                logger.exception("handler %s failed on %s (%d/%d)", _name(handler), _describe(arg), failures,
                                 self.max_handler_failures)
                if failures >= self.max_handler_failures:
                    self.stats.failed += 1
                    return True
            if self._stopping.is_set():
                return False
            try:
                await asyncio.wait_for(self._stopping.wait(), self.handler_backoff.delay(failures))
                return False
            except asyncio.TimeoutError:
                pass

    # --- acknowledgements --------------------------------------------------------------------
    def _acks_due(self) -> dict[str, int]:
        if not self.ack_enabled:
            return {}
        return {topic: seq for topic, seq in self.processed.items() if seq > self.acked.get(topic, 0)}

    async def _ack_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ack_interval)
            ws = self._ws
            if ws is None:
                continue
            now = time.monotonic()
            for topic, seq in self._acks_due().items():
                sent = self._ack_sent.get(topic)
                if sent is not None and sent[0] >= seq and now - sent[1] < 5:
                    continue  # sent; waiting for `acked`
                try:
                    await ws.send(json.dumps({"type": "ack", "topic": topic, "seq": seq, "ref": f"ack:{topic}"}))
                except ConnectionClosed:
                    break
                self._ack_sent[topic] = (seq, now)
                self.stats.acks_sent += 1

    async def _flush_acks_rest(self) -> None:
        """On the way out: acknowledge what was processed through REST (a few quick tries)."""
        for topic, seq in self._acks_due().items():
            story, channel = parse_channel_topic(topic)
            try:
                _, body = await self.client.request("POST", f"/api/stories/{story}/channels/{channel}/ack",
                                                    json={"seq": seq}, backoff=FINAL_ACK_BACKOFF, idempotent=True)
                self.acked[topic] = body["read_seq"]
            except MythlineError as exc:
                logger.info("could not acknowledge %s up to %d: %s (it will be processed again)", topic, seq, exc)


# --- helpers ---------------------------------------------------------------------------------

def _is_pair(value) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value)
            and not any(":" in v for v in value))


def _topic_list(topics) -> list:
    """A list of topics from one topic (a string or a (story, channel) pair) or an iterable of them."""
    if isinstance(topics, str) or _is_pair(topics):
        return [topics]
    try:
        return list(topics)
    except TypeError:
        raise TypeError(f"topics must be a topic or a list of topics, not {type(topics).__name__}") from None


def _topic(value) -> str:
    if _is_pair(value):
        return channel_topic(*value)
    if isinstance(value, (tuple, list)):
        raise ValueError(f"a topic pair is (story, channel), got {value!r}")
    if not isinstance(value, str):
        raise TypeError(f"a topic is 'channel:<story>/<channel>', 'story:<story>' or a (story, channel) pair, "
                        f"not {type(value).__name__}: {value!r}")
    if value.startswith("story:") and len(value) > 6:
        return value  # story events: no seq, no resume
    if value.startswith("notifications:") and len(value) > 14:
        return value  # the notification feed: no seq, no resume
    parse_channel_topic(value)
    return value


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _after_delay(seconds: float, target: asyncio.Event) -> None:
    await asyncio.sleep(seconds)
    target.set()


def _mark(exc: BaseException, established: bool) -> BaseException:
    exc.established = established
    return exc


def _name(handler) -> str:
    return getattr(handler, "__qualname__", repr(handler))


def _describe(arg) -> str:
    if isinstance(arg, Message):
        return f"{arg.msg_type} {arg.topic}#{arg.seq}"
    if hasattr(arg, "type") and hasattr(arg, "topic"):
        return f"{arg.type} {arg.topic}"
    return str(arg.get("event") if isinstance(arg, dict) else arg)

