"""`MythlineClient`: the same client for code without asyncio.

It runs an `AsyncMythlineClient` on an event loop in a background thread and waits for each
call. Handlers registered with `on` are plain functions; they run in worker threads, so they may
call the client (`client.reply(...)`) themselves.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Iterable, Iterator

from mythline_sdk.client import AsyncMythlineClient, MessageStream, RetryEvent
from mythline_sdk.listener import Listener, ListenerStats
from mythline_sdk.models import (ActivityPage, AgentProfile, BatchItem, Channel, Document, DocumentEdit, DocumentOps,
                                 InboxRow, Message, MessagePage, NotificationPage, Participant, Presence, RouteResult,
                                 SearchPage, StreamInfo, Story, Webhook, WebhookDelivery)
from mythline_sdk.retry import Backoff

SyncHandler = Callable[[Message], None]
SyncEventHandler = Callable[[dict], None]


class MythlineClient:
    """Blocking face of `AsyncMythlineClient`: same methods, same arguments, same results
    (`close` for `aclose`; handlers are plain functions). tests/agents/test_sdk_package.py checks
    that every public method of the async client is here with the same parameters.

    >>> with MythlineClient("http://127.0.0.1:8000", token) as client:
    ...     client.post_message("tale", "general", "text", {"text": "Hello"})
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, backoff: Backoff | None = None,
                 username: str | None = None, transport=None, on_retry: Callable[[RetryEvent], None] | None = None,
                 user_agent: str = "mythline-sdk/1"):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mythline-sdk", daemon=True)
        self._thread.start()
        self._listener: SyncListener | None = None

        async def make():
            return AsyncMythlineClient(base_url, token, timeout=timeout, backoff=backoff, username=username,
                                       on_retry=on_retry, transport=transport, user_agent=user_agent)
        self.aio: AsyncMythlineClient = self._run(make())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> "MythlineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.aio.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    aclose = close  # the async client's name, for code written against either

    @property
    def username(self) -> str | None:
        return self.aio.username

    @property
    def base_url(self) -> str:
        return self.aio.base_url

    @property
    def ws_url(self) -> str:
        return self.aio.ws_url

    # --- REST ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                headers: dict | None = None, idempotent: bool | None = None,
                backoff: Backoff | None = None) -> tuple[int, Any]:
        return self._run(self.aio.request(method, path, json=json, params=params, headers=headers,
                                          idempotent=idempotent, backoff=backoff))

    def get(self, path: str, **params) -> Any:
        return self._run(self.aio.get(path, **params))

    def list_stories(self) -> list[Story]:
        return self._run(self.aio.list_stories())

    def get_story(self, story: str) -> Story:
        return self._run(self.aio.get_story(story))

    def join_story(self, story: str) -> Participant:
        return self._run(self.aio.join_story(story))

    def update_story(self, story: str, **fields) -> Story:
        return self._run(self.aio.update_story(story, **fields))

    def list_channels(self, story: str) -> list[Channel]:
        return self._run(self.aio.list_channels(story))

    def list_participants(self, story: str) -> list[Participant]:
        return self._run(self.aio.list_participants(story))

    def presence(self, story: str) -> Presence:
        return self._run(self.aio.presence(story))

    def post_message(self, story: str, channel: str, msg_type: str, payload: dict, *,
                     reply_to: str | None = None, correlation_id: str | None = None, audience: Any = None,
                     id: str | None = None, idempotency_key: str | None = None,
                     relates_to: str | None = None, mentions: Iterable[str] | None = None) -> Message:
        return self._run(self.aio.post_message(story, channel, msg_type, payload, reply_to=reply_to,
                                               correlation_id=correlation_id, audience=audience, id=id,
                                               idempotency_key=idempotency_key, relates_to=relates_to,
                                               mentions=mentions))

    def post_messages(self, story: str, channel: str, messages: Iterable[dict]) -> list[BatchItem]:
        return self._run(self.aio.post_messages(story, channel, messages))

    def reply(self, to: Message, msg_type: str, payload: dict, *, key: str = "reply", channel: str | None = None,
              correlation_id: str | None = None, audience: Any = None, thread: bool = True) -> Message:
        return self._run(self.aio.reply(to, msg_type, payload, key=key, channel=channel,
                                        correlation_id=correlation_id, audience=audience, thread=thread))

    def route(self, story: str, msg_type: str, payload: dict, *, reply_to: str | None = None,
              correlation_id: str | None = None, idempotency_key: str | None = None) -> RouteResult:
        return self._run(self.aio.route(story, msg_type, payload, reply_to=reply_to, correlation_id=correlation_id,
                                        idempotency_key=idempotency_key))

    def read_messages(self, story: str, channel: str, *, after: int | None = 0, before: int | None = None,
                      limit: int = 100, types: Iterable[str] | None = None) -> MessagePage:
        return self._run(self.aio.read_messages(story, channel, after=after, before=before, limit=limit,
                                                types=types))

    def iter_messages(self, story: str, channel: str, *, after: int = 0, types: Iterable[str] | None = None,
                      page_size: int = 200) -> Iterator[Message]:
        while True:
            page = self.read_messages(story, channel, after=after, limit=page_size, types=types)
            yield from page.results
            if not page.results:
                return
            after = page.next_after

    def get_message(self, message_id: str) -> Message:
        return self._run(self.aio.get_message(message_id))

    def get_thread(self, message_id: str) -> list[Message]:
        return self._run(self.aio.get_thread(message_id))

    def activity(self, *, story: str | None = None, after: str | None = None, limit: int = 100) -> ActivityPage:
        return self._run(self.aio.activity(story=story, after=after, limit=limit))

    def edit(self, message: "Message | str", payload: dict, *, idempotency_key: str | None = None) -> Message:
        return self._run(self.aio.edit(message, payload, idempotency_key=idempotency_key))

    def delete(self, message: "Message | str", *, reason: str | None = None) -> Message:
        return self._run(self.aio.delete(message, reason=reason))

    def react(self, message: "Message | str", key: str) -> Message:
        return self._run(self.aio.react(message, key))

    def unreact(self, message: "Message | str", key: str) -> Message | None:
        return self._run(self.aio.unreact(message, key))

    def search(self, q: str, *, story: str | None = None, channel: str | None = None, sender: str | None = None,
               type: "str | Iterable[str] | None" = None, after: Any = None, before: Any = None,
               limit: int | None = None, offset: int | None = None) -> SearchPage:
        return self._run(self.aio.search(q, story=story, channel=channel, sender=sender, type=type, after=after,
                                         before=before, limit=limit, offset=offset))

    def notifications(self, *, unread_only: bool = False, limit: int | None = None,
                      before: int | None = None) -> NotificationPage:
        return self._run(self.aio.notifications(unread_only=unread_only, limit=limit, before=before))

    def mark_notifications_read(self, ids: Iterable[int] | None = None, *, all: bool = False) -> int:
        return self._run(self.aio.mark_notifications_read(ids, all=all))

    def stream(self, story: str, channel: str, msg_type: str, *, payload: dict | None = None, field: str = "text",
               id: str | None = None, reply_to: str | None = None, correlation_id: str | None = None,
               audience: Any = None) -> "SyncMessageStream":
        """A streaming message, as a context manager (`with client.stream(...) as s: s.append(...)`):
        completed on a normal exit, cancelled on an exception. See `AsyncMythlineClient.stream`."""
        return SyncMessageStream(self, self.aio.stream(story, channel, msg_type, payload=payload, field=field, id=id,
                                                       reply_to=reply_to, correlation_id=correlation_id,
                                                       audience=audience))

    def open_streams(self, story: str, channel: str) -> list[StreamInfo]:
        return self._run(self.aio.open_streams(story, channel))

    def set_webhook(self, url: str) -> Webhook:
        return self._run(self.aio.set_webhook(url))

    def webhook(self) -> Webhook | None:
        return self._run(self.aio.webhook())

    def delete_webhook(self) -> None:
        return self._run(self.aio.delete_webhook())

    def rotate_webhook_secret(self, *, grace_seconds: int | None = None) -> str:
        return self._run(self.aio.rotate_webhook_secret(grace_seconds=grace_seconds))

    def webhook_deliveries(self, *, limit: int | None = None) -> list[WebhookDelivery]:
        return self._run(self.aio.webhook_deliveries(limit=limit))

    def inbox(self) -> list[InboxRow]:
        return self._run(self.aio.inbox())

    def ack(self, story: str, channel: str, seq: int) -> int:
        return self._run(self.aio.ack(story, channel, seq))

    def set_status(self, status: str, task: str | None = None, progress: float | None = None) -> AgentProfile:
        return self._run(self.aio.set_status(status, task, progress))

    def get_document(self, story: str, doc: str = "main", *, revision: int | None = None) -> Document:
        return self._run(self.aio.get_document(story, doc, revision=revision))

    def edit_document(self, story: str, doc: str = "main", *, base_revision: int, edits: list[dict] | None = None,
                      find: str | None = None, replace: str | None = None,
                      idempotency_key: str | None = None) -> DocumentEdit:
        return self._run(self.aio.edit_document(story, doc, base_revision=base_revision, edits=edits, find=find,
                                                replace=replace, idempotency_key=idempotency_key))

    def append_document(self, story: str, doc: str = "main", text: str = "", *,
                        idempotency_key: str | None = None) -> DocumentEdit:
        return self._run(self.aio.append_document(story, doc, text, idempotency_key=idempotency_key))

    def append_once(self, story: str, doc: str, text: str, *, marker: str | None = None,
                    idempotency_key: str | None = None) -> DocumentEdit | None:
        return self._run(self.aio.append_once(story, doc, text, marker=marker, idempotency_key=idempotency_key))

    def document_ops(self, story: str, doc: str = "main", *, after: int = 0,
                     limit: int | None = None) -> DocumentOps:
        return self._run(self.aio.document_ops(story, doc, after=after, limit=limit))

    # --- listening ----------------------------------------------------------------------------
    def on(self, msg_type: str = "*", handler: SyncHandler | None = None):
        """Register a plain function for a msg_type ('*': every type), for every listener of this
        client, made before or after; it runs in a worker thread."""
        def register(fn: SyncHandler) -> SyncHandler:
            self.aio.on(msg_type, _threaded(fn))
            return fn
        return register(handler) if handler is not None else register

    def listener(self, topics, **options) -> "SyncListener":
        """A `SyncListener` on `topics` (as `AsyncMythlineClient.listener`): `on` for plain
        functions, `run(duration=, stop=)` blocking."""
        return SyncListener(self, self.aio.listener(topics, **options))

    def listen(self, topics, *, stop: threading.Event | None = None, duration: float | None = None,
               **options) -> "SyncListener":
        """Listen (blocking) until `duration` passes, `stop` is set, `stop_listening()` is called
        or Ctrl-C; answers the listener (its `stats`, `positions`)."""
        listener = self.listener(topics, **options)
        listener.run(stop=stop, duration=duration)
        return listener

    def stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.stop()


class SyncMessageStream:
    """`MessageStream` for blocking code: `with` opens it, `append(text)` sends a chunk, a normal
    exit completes it and an exception cancels it; `aio` is the underlying `MessageStream`."""

    def __init__(self, client: MythlineClient, stream: MessageStream):
        self.client = client
        self.aio = stream

    @property
    def id(self) -> str:
        return self.aio.id

    @property
    def text(self) -> str:
        return self.aio.text

    @property
    def length(self) -> int:
        return self.aio.length

    @property
    def status(self) -> str:
        return self.aio.status

    @property
    def message(self) -> Message | None:
        return self.aio.message

    def open(self) -> "SyncMessageStream":
        self.client._run(self.aio.open())
        return self

    def append(self, text: str) -> int:
        return self.client._run(self.aio.append(text))

    def complete(self, payload: dict | None = None) -> Message:
        return self.client._run(self.aio.complete(payload))

    def cancel(self) -> None:
        self.client._run(self.aio.cancel())

    def __enter__(self) -> "SyncMessageStream":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.client._run(self.aio.__aexit__(exc_type, exc, tb))


class SyncListener:
    """A `Listener` driven from blocking code. Its handlers are plain functions, run in worker
    threads (they may call the client); `aio` is the underlying `Listener`."""

    def __init__(self, client: MythlineClient, listener: Listener):
        self.client = client
        self.aio = listener

    def on(self, msg_type: str = "*", handler: SyncHandler | None = None):
        def register(fn: SyncHandler) -> SyncHandler:
            self.aio.on(msg_type, _threaded(fn))
            return fn
        return register(handler) if handler is not None else register

    def on_event(self, handler: SyncEventHandler) -> SyncEventHandler:
        self.aio.on_event(_threaded(handler))
        return handler

    def on_stream(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        """A plain function for `StreamStarted` / `StreamChunk` / `StreamEnded` (see `Listener.on_stream`)."""
        self.aio.on_stream(_threaded(handler))
        return handler

    def on_notification(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        """A plain function for `NotificationEvent` / `NotificationsRead` (see `Listener.on_notification`)."""
        self.aio.on_notification(_threaded(handler))
        return handler

    def run(self, *, stop: threading.Event | None = None, duration: float | None = None) -> None:
        """Listen (blocking) until `duration` passes, `stop` is set, `stop()` is called or Ctrl-C."""
        async def run():
            stopped = asyncio.Event()
            watch = asyncio.create_task(_watch(stop, stopped)) if stop is not None else None
            try:
                await self.aio.run(stop=stopped, duration=duration)
            finally:
                if watch is not None:
                    watch.cancel()

        self.client._listener = self
        future = asyncio.run_coroutine_threadsafe(run(), self.client._loop)
        try:
            future.result()
        except KeyboardInterrupt:
            self.stop()
            future.result()

    def stop(self) -> None:
        self.client._loop.call_soon_threadsafe(self.aio.stop)

    def resubscribe(self, topic: str, after: int) -> None:
        """Subscribe again from `after` on the open socket (from any thread, while `run` runs):
        what comes back that was already seen is dropped as a duplicate."""
        asyncio.run_coroutine_threadsafe(self.aio.resubscribe(topic, after), self.client._loop).result()

    @property
    def stats(self) -> ListenerStats:
        return self.aio.stats

    @property
    def positions(self) -> dict[str, int]:
        return self.aio.positions

    @property
    def acked(self) -> dict[str, int]:
        return self.aio.acked

    @property
    def topics(self) -> list[str]:
        return self.aio.topics

    @property
    def queue_depth(self) -> int:
        return self.aio.queue_depth

    @property
    def unread_notifications(self) -> int | None:
        return self.aio.unread_notifications


async def _watch(flag: threading.Event, target: asyncio.Event) -> None:
    while not flag.is_set():
        await asyncio.sleep(0.05)
    target.set()


def _threaded(fn):
    async def handler(arg) -> None:
        await asyncio.to_thread(fn, arg)
    handler.__qualname__ = getattr(fn, "__qualname__", "handler")
    return handler
