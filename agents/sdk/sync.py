"""`MythlineClient`: the same client for code without asyncio.

It runs an `AsyncMythlineClient` on an event loop in a background thread and waits for each
call. Handlers registered with `on` are plain functions; they run in worker threads, so they may
call the client (`client.reply(...)`) themselves.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Iterable, Iterator

from agents.sdk.client import AsyncMythlineClient, RetryEvent
from agents.sdk.listener import Listener
from agents.sdk.models import Document, InboxRow, Message, MessagePage
from agents.sdk.retry import Backoff

SyncHandler = Callable[[Message], None]


class MythlineClient:
    """Blocking face of `AsyncMythlineClient`: same methods, same arguments, same results.

    >>> with MythlineClient("http://127.0.0.1:8000", token) as client:
    ...     client.post_message("tale", "general", "text", {"text": "Hello"})
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, backoff: Backoff | None = None,
                 username: str | None = None, on_retry: Callable[[RetryEvent], None] | None = None,
                 transport=None):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mythline-sdk", daemon=True)
        self._thread.start()
        self._handlers: list[tuple[str, SyncHandler]] = []
        self._listener: Listener | None = None

        async def make():
            return AsyncMythlineClient(base_url, token, timeout=timeout, backoff=backoff, username=username,
                                       on_retry=on_retry, transport=transport)
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

    @property
    def username(self) -> str | None:
        return self.aio.username

    # --- REST ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs) -> tuple[int, Any]:
        return self._run(self.aio.request(method, path, **kwargs))

    def get_story(self, story: str) -> dict:
        return self._run(self.aio.get_story(story))

    def update_story(self, story: str, **fields) -> dict:
        return self._run(self.aio.update_story(story, **fields))

    def list_channels(self, story: str) -> list[dict]:
        return self._run(self.aio.list_channels(story))

    def presence(self, story: str) -> dict:
        return self._run(self.aio.presence(story))

    def post_message(self, story: str, channel: str, msg_type: str, payload: dict, **kwargs) -> Message:
        return self._run(self.aio.post_message(story, channel, msg_type, payload, **kwargs))

    def reply(self, to: Message, msg_type: str, payload: dict, **kwargs) -> Message:
        return self._run(self.aio.reply(to, msg_type, payload, **kwargs))

    def route(self, story: str, msg_type: str, payload: dict, **kwargs) -> dict:
        return self._run(self.aio.route(story, msg_type, payload, **kwargs))

    def read_messages(self, story: str, channel: str, **kwargs) -> MessagePage:
        return self._run(self.aio.read_messages(story, channel, **kwargs))

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

    def inbox(self) -> list[InboxRow]:
        return self._run(self.aio.inbox())

    def ack(self, story: str, channel: str, seq: int) -> int:
        return self._run(self.aio.ack(story, channel, seq))

    def set_status(self, status: str, task: str | None = None, progress: float | None = None) -> dict:
        return self._run(self.aio.set_status(status, task, progress))

    def get_document(self, story: str, doc: str = "main", *, revision: int | None = None) -> Document:
        return self._run(self.aio.get_document(story, doc, revision=revision))

    def edit_document(self, story: str, doc: str = "main", **kwargs) -> dict:
        return self._run(self.aio.edit_document(story, doc, **kwargs))

    def append_document(self, story: str, doc: str = "main", text: str = "") -> dict:
        return self._run(self.aio.append_document(story, doc, text))

    def append_once(self, story: str, doc: str, text: str, *, marker: str | None = None) -> dict | None:
        return self._run(self.aio.append_once(story, doc, text, marker=marker))

    # --- listening ----------------------------------------------------------------------------
    def on(self, msg_type: str = "*", handler: SyncHandler | None = None):
        """Register a plain function for a msg_type ('*': every type); it runs in a worker thread."""
        def register(fn: SyncHandler) -> SyncHandler:
            self._handlers.append((msg_type, fn))
            return fn
        return register(handler) if handler is not None else register

    def listen(self, topics, *, duration: float | None = None, stop: threading.Event | None = None,
               **options) -> Listener:
        """Listen (blocking) until `duration` passes, `stop` is set, `stop_listening()` is called
        or Ctrl-C; answers the listener (its `stats`, `positions`)."""
        async def run():
            listener = self.aio.listener(topics, **options)
            for msg_type, fn in self._handlers:
                listener.on(msg_type, _threaded(fn))
            self._listener = listener
            stopped = asyncio.Event()
            watch = asyncio.create_task(_watch(stop, stopped)) if stop is not None else None
            try:
                await listener.run(stop=stopped, duration=duration)
            finally:
                if watch is not None:
                    watch.cancel()
            return listener

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            self.stop_listening()
            return future.result()

    def stop_listening(self) -> None:
        if self._listener is not None:
            self._loop.call_soon_threadsafe(self._listener.stop)


async def _watch(flag: threading.Event, target: asyncio.Event) -> None:
    while not flag.is_set():
        await asyncio.sleep(0.05)
    target.set()


def _threaded(fn: SyncHandler):
    async def handler(message: Message) -> None:
        await asyncio.to_thread(fn, message)
    handler.__qualname__ = getattr(fn, "__qualname__", "handler")
    return handler
