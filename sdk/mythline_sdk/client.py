"""`AsyncMythlineClient`: the REST side of the SDK, and the entry point to listening.

Every request carries the bearer token. Requests that are safe to repeat are retried on network
errors, 429 and 5xx, with exponential backoff and full jitter, never sooner than a `Retry-After`:
reads, PUT and DELETE, acks and joins (repeatable by nature), and every write that carries an
`Idempotency-Key` (message posts, routes and document edits always do: the client makes one per
call unless given one). Any other request is never repeated blindly: a 5xx may come from a proxy
after the server committed, and a broken connection may have delivered it. It is retried only
when it surely did nothing: the connection was never made, or 429.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

import httpx

from mythline_sdk.errors import MythlineError, TransportError, error_from_response
from mythline_sdk.models import (ActivityPage, AgentProfile, Channel, Document, DocumentEdit, DocumentOps, InboxRow,
                                 Message, MessagePage, Participant, Presence, RouteResult, Story)
from mythline_sdk.retry import Backoff

logger = logging.getLogger("mythline.sdk")

Handler = Callable[[Message], Awaitable[None]]
MAX_KEY_CHARS = 255
# Network errors where the request surely never reached the server: retrying cannot duplicate.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Methods whose repeat changes nothing more (RFC 9110 9.2.2); POST and PATCH are not.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def idempotency_key(*parts: Any) -> str:
    """A deterministic Idempotency-Key from parts (a message id, a purpose, a number...).

    The same parts give the same key, so an agent that restarts and handles a message again posts
    the same key and the server answers with the reply it stored the first time. Long keys are
    shortened with a hash (the API takes 1-255 characters).
    """
    key = ":".join(str(p) for p in parts)
    if not key:
        raise ValueError("an idempotency key needs at least one non-empty part")
    if len(key) <= MAX_KEY_CHARS:
        return key
    return key[:MAX_KEY_CHARS - 65] + "#" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class RetryEvent:
    """Told to `on_retry` before each wait: what failed and how long the client will wait."""
    method: str
    path: str
    attempt: int             # the try that failed (1 = the first)
    delay: float             # seconds the client waits before the next try
    error: MythlineError
    retry_after: float | None


class AsyncMythlineClient:
    """Talk to a Mythline server as one user (usually an agent), with asyncio.

    >>> async with AsyncMythlineClient("http://127.0.0.1:8000", token) as client:
    ...     await client.post_message("tale", "general", "narration", {"text": "The lamp guttered."})
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, backoff: Backoff | None = None,
                 username: str | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 on_retry: Callable[[RetryEvent], None] | None = None, user_agent: str = "mythline-sdk/1"):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.username = username  # learned from the socket's welcome frame if not given
        self.backoff = backoff or Backoff()
        self.on_retry = on_retry
        self.user_agent = user_agent
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, trust_env=False,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": user_agent})
        self._handlers: dict[str, list[Handler]] = {}

    async def __aenter__(self) -> "AsyncMythlineClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def ws_url(self) -> str:
        scheme, _, rest = self.base_url.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/"

    # --- the request loop -------------------------------------------------------------------
    async def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                      headers: dict | None = None, idempotent: bool | None = None,
                      backoff: Backoff | None = None) -> tuple[int, Any]:
        """Send one API request with retries; answer (status, parsed JSON body) or raise.

        `idempotent`: whether sending it twice does no more than once, so that it may be retried
        after a 5xx or a broken connection (either may follow a commit). By default: GET, HEAD,
        OPTIONS, PUT, DELETE, and any request with an `Idempotency-Key` header. A request that is
        not is retried only when it surely did nothing: no connection was made, or 429."""
        backoff = backoff or self.backoff
        if idempotent is None:
            idempotent = (method.upper() in IDEMPOTENT_METHODS
                          or any(name.lower() == "idempotency-key" for name in (headers or {})))
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                error = TransportError(f"{type(exc).__name__}: {exc or 'no answer'}", attempts=attempt + 1,
                                       url=self._url(path), method=method)
                retry = idempotent or isinstance(exc, _NOT_SENT)
                retry_after = None
            else:
                body = _json(response)
                if response.status_code < 400:
                    return response.status_code, body
                error = error_from_response(response.status_code, body, response.headers)
                error.attempts, error.url, error.method = attempt + 1, str(response.request.url), method
                # 429 is decided before anything is done; a 5xx may come after a commit.
                retry = error.retryable and (idempotent or response.status_code == 429)
                retry_after = error.retry_after
            if not retry or backoff.gives_up_after(attempt):
                raise error
            delay = backoff.delay(attempt, retry_after)
            logger.debug("%s %s failed (%s); retry %d in %.2fs", method, path, error, attempt + 1, delay)
            if self.on_retry is not None:
                self.on_retry(RetryEvent(method, path, attempt + 1, delay, error, retry_after))
            await asyncio.sleep(delay)
            attempt += 1

    def _url(self, path: str) -> str:
        return path if "://" in path else self.base_url + path

    async def get(self, path: str, **params) -> Any:
        """GET any API path (query parameters left out when None); the parsed JSON body."""
        return (await self.request("GET", path, params={k: v for k, v in params.items() if v is not None}))[1]

    # --- stories and channels -----------------------------------------------------------------
    async def list_stories(self) -> list[Story]:
        """Stories the caller can read: public ones and those it takes part in (`role` says how)."""
        return [Story.from_json(row) async for row in self._pages("/api/stories")]

    async def get_story(self, story: str) -> Story:
        return Story.from_json(await self.get(f"/api/stories/{story}"))

    async def join_story(self, story: str) -> Participant:
        """Join a public story as an editor (`created` False when already a participant)."""
        status, data = await self.request("POST", f"/api/stories/{story}/join", json={}, idempotent=True)
        return Participant.from_json(data, created=status == 201)

    async def update_story(self, story: str, **fields) -> Story:
        """Owner only: title, premise, visibility, requires_approval."""
        return Story.from_json((await self.request("PATCH", f"/api/stories/{story}", json=fields,
                                                   idempotent=True))[1])  # sets fields: repeatable

    async def list_channels(self, story: str) -> list[Channel]:
        return [Channel.from_json(row) async for row in self._pages(f"/api/stories/{story}/channels")]

    async def list_participants(self, story: str) -> list[Participant]:
        return [Participant.from_json(row) async for row in self._pages(f"/api/stories/{story}/participants")]

    async def presence(self, story: str) -> Presence:
        return Presence.from_json(await self.get(f"/api/stories/{story}/presence"), story=story)

    async def _pages(self, path: str) -> AsyncIterator[dict]:
        url: str | None = path
        while url:
            body = (await self.request("GET", url))[1]
            for row in body["results"]:
                yield row
            url = body.get("next")

    # --- messages -----------------------------------------------------------------------------
    async def post_message(self, story: str, channel: str, msg_type: str, payload: dict, *,
                           reply_to: str | None = None, correlation_id: str | None = None,
                           audience: Any = None, id: str | None = None,
                           idempotency_key: str | None = None) -> Message:
        """Post a message; answer it with `created` True (201) or False (200: a repeat of a post
        already stored, returned as stored). Without `id` or `idempotency_key` a random key is
        made once and reused on every retry, so a retried post is stored once."""
        body: dict[str, Any] = {"msg_type": msg_type, "payload": payload}
        if reply_to is not None:
            body["reply_to"] = str(reply_to)
        if correlation_id is not None:
            body["correlation_id"] = correlation_id
        if audience is not None:
            body["audience"] = audience
        if id is not None:
            body["id"] = str(id)
        key = idempotency_key or (None if id is not None else f"sdk-{uuid.uuid4()}")
        status, data = await self.request("POST", f"/api/stories/{story}/channels/{channel}/messages", json=body,
                                          headers={"Idempotency-Key": key} if key else None,
                                          idempotent=True)  # by its key, or by its id
        return Message.from_json(data, created=status == 201)

    async def reply(self, to: Message, msg_type: str, payload: dict, *, key: str = "reply",
                    channel: str | None = None, correlation_id: str | None = None, audience: Any = None,
                    thread: bool = True) -> Message:
        """Answer `to`: in its channel (or `channel`), as a reply to it (unless `thread=False`),
        with its correlation id, and an idempotency key derived from its id and `key`. Handling
        `to` again (after a restart) posts the same key: the reply is stored once. Use a different
        `key` for each distinct reply to the same message."""
        return await self.post_message(
            to.story, channel or to.channel, msg_type, payload, reply_to=to.id if thread else None,
            correlation_id=correlation_id if correlation_id is not None else to.correlation_id,
            audience=audience, idempotency_key=idempotency_key("re", to.id, key))

    async def route(self, story: str, msg_type: str, payload: dict, *, reply_to: str | None = None,
                    correlation_id: str | None = None, idempotency_key: str | None = None) -> RouteResult:
        """Post to the inbox of every agent whose capabilities include `msg_type`: a `RouteResult`
        (`results`: the messages, `routed_to`: the usernames); NoRoute when none."""
        body: dict[str, Any] = {"msg_type": msg_type, "payload": payload}
        if reply_to is not None:
            body["reply_to"] = str(reply_to)
        if correlation_id is not None:
            body["correlation_id"] = correlation_id
        key = idempotency_key or f"sdk-{uuid.uuid4()}"
        status, data = await self.request("POST", f"/api/stories/{story}/route", json=body,
                                          headers={"Idempotency-Key": key})
        return RouteResult.from_json(data, created=status == 201)

    async def read_messages(self, story: str, channel: str, *, after: int | None = 0, before: int | None = None,
                            limit: int = 100, types: Iterable[str] | None = None) -> MessagePage:
        """A page of the channel's log: ascending from seq > `after`, or, with `before`, descending
        from seq < `before` (newest first; `next_before` is the next `before`, None at the start)."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        else:
            params["after"] = after or 0
        if types:
            params["type"] = ",".join([types] if isinstance(types, str) else types)
        body = (await self.request("GET", f"/api/stories/{story}/channels/{channel}/messages", params=params))[1]
        return MessagePage.from_json(body, after=after or 0)

    async def iter_messages(self, story: str, channel: str, *, after: int = 0,
                            types: Iterable[str] | None = None, page_size: int = 200) -> AsyncIterator[Message]:
        """Every message after `after`, oldest first, page by page."""
        while True:
            page = await self.read_messages(story, channel, after=after, limit=page_size, types=types)
            for message in page.results:
                yield message
            if not page.results:
                return
            after = page.next_after

    async def get_message(self, message_id: str) -> Message:
        return Message.from_json(await self.get(f"/api/messages/{message_id}"))

    async def get_thread(self, message_id: str) -> list[Message]:
        return [Message.from_json(m) for m in (await self.get(f"/api/messages/{message_id}/thread"))["results"]]

    async def activity(self, *, story: str | None = None, after: str | None = None,
                       limit: int = 100) -> ActivityPage:
        """Readable messages across channels (of one story, or all of the caller's), oldest first;
        pass `next_after` back as `after`."""
        return ActivityPage.from_json(await self.get("/api/activity", story=story, after=after, limit=limit))

    # --- cursors ------------------------------------------------------------------------------
    async def inbox(self) -> list[InboxRow]:
        """A row per readable channel: last_seq, the caller's read_seq (the ack cursor), unread."""
        return [InboxRow.from_json(r) for r in (await self.get("/api/inbox"))["results"]]

    async def ack(self, story: str, channel: str, seq: int) -> int:
        """Move the read cursor to `seq` (it never moves back); answer the cursor."""
        body = (await self.request("POST", f"/api/stories/{story}/channels/{channel}/ack", json={"seq": seq},
                                   idempotent=True))[1]  # a cursor never moves back: repeatable
        return body["read_seq"]

    # --- agent status -------------------------------------------------------------------------
    async def set_status(self, status: str, task: str | None = None, progress: float | None = None) -> AgentProfile:
        """`PUT /api/agents/me/status`: idle | working | waiting | error | offline, what, how far (0..1)."""
        body: dict[str, Any] = {"status": status}
        if task is not None:
            body["task"] = task[:500]
        if progress is not None:
            body["progress"] = max(0.0, min(1.0, float(progress)))
        data = (await self.request("PUT", "/api/agents/me/status", json=body))[1]
        self.username = self.username or data.get("username")
        return AgentProfile.from_json(data)

    # --- documents ----------------------------------------------------------------------------
    async def get_document(self, story: str, doc: str = "main", *, revision: int | None = None) -> Document:
        return Document.from_json(await self.get(f"/api/stories/{story}/documents/{doc}", revision=revision))

    async def edit_document(self, story: str, doc: str = "main", *, base_revision: int,
                            edits: list[dict] | None = None, find: str | None = None,
                            replace: str | None = None, idempotency_key: str | None = None) -> DocumentEdit:
        """Edit made against `base_revision` (positions in characters): `edits=[{"from", "to",
        "insert"}]`, or `find`/`replace` (must match exactly once). The server maps it through later
        changes; Conflict (with `details["revision"]`) when they touched its range. Sent with an
        `Idempotency-Key` (`idempotency_key`, or a random one made once for this call), so a retry
        after a lost answer is applied once; give a deterministic key to survive a restart."""
        body: dict[str, Any] = {"base_revision": base_revision}
        if edits is not None:
            body["edits"] = edits
        if find is not None:
            body["find"], body["replace"] = find, replace if replace is not None else ""
        return await self._document_op(story, doc, body, idempotency_key)

    async def append_document(self, story: str, doc: str = "main", text: str = "", *,
                              idempotency_key: str | None = None) -> DocumentEdit:
        """Append text at the end, whatever the revision. Sent with an `Idempotency-Key` (yours, or
        one made for this call and kept for its retries): a retried append is applied once. A
        restarted agent appending again needs the same key (or `append_once`)."""
        return await self._document_op(story, doc, {"append": text}, idempotency_key)

    async def _document_op(self, story: str, doc: str, body: dict, key: str | None) -> DocumentEdit:
        key = key or f"sdk-{uuid.uuid4()}"
        _, data = await self.request("POST", f"/api/stories/{story}/documents/{doc}/ops", json=body,
                                     headers={"Idempotency-Key": key}, idempotent=True)
        return DocumentEdit.from_json(data)

    async def append_once(self, story: str, doc: str, text: str, *, marker: str | None = None,
                          idempotency_key: str | None = None) -> DocumentEdit | None:
        """Append unless the document already holds `marker` (default: the text itself); None when
        it did. Makes an append safe to repeat for one writer (a restarted agent)."""
        current = await self.get_document(story, doc)
        if (marker or text.strip()) in current.text:
            return None
        return await self.append_document(story, doc, text, idempotency_key=idempotency_key)

    async def document_ops(self, story: str, doc: str = "main", *, after: int = 0,
                           limit: int | None = None) -> DocumentOps:
        """The document's changes after revision `after`, oldest first, and its current revision."""
        return DocumentOps.from_json(await self.get(f"/api/stories/{story}/documents/{doc}/ops", after=after,
                                                    limit=limit))

    # --- listening ----------------------------------------------------------------------------
    def on(self, msg_type: str = "*", handler: Handler | None = None):
        """Register an async handler for a msg_type ('*' for every type), for every listener of
        this client, made before or after: listeners look the handlers up for each message. Use as
        a decorator or call with the handler."""
        def register(fn: Handler) -> Handler:
            self._handlers.setdefault(msg_type, []).append(fn)
            return fn
        return register(handler) if handler is not None else register

    def listener(self, topics, **options) -> "Listener":
        """A `Listener` on `topics` (channel topics, `(story, channel)` pairs, or one of them),
        running this client's handlers and its own. See `mythline_sdk.listener.Listener` for the
        options."""
        from mythline_sdk.listener import Listener

        return Listener(self, topics, **options)

    async def listen(self, topics, *, stop: asyncio.Event | None = None, duration: float | None = None,
                     **options) -> "Listener":
        """Listen until `stop` is set, `duration` passes or the task is cancelled."""
        listener = self.listener(topics, **options)
        await listener.run(stop=stop, duration=duration)
        return listener


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return {"error": {"code": "invalid" if response.status_code < 500 else "internal",
                          "message": response.text[:500], "details": None}}


from mythline_sdk.listener import Listener  # noqa: E402  (typing and re-export)
