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

from mythline_sdk.errors import MythlineError, NotFound, TransportError, error_from_response
from mythline_sdk.models import (ActivityPage, AgentProfile, BatchItem, Channel, Document, DocumentEdit, DocumentOps,
                                 InboxRow, Message, MessagePage, NotificationPage, Participant, Presence, RouteResult,
                                 SearchPage, StreamInfo, Story, Webhook, WebhookDelivery)
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
                           idempotency_key: str | None = None, relates_to: str | None = None,
                           mentions: Iterable[str] | None = None) -> Message:
        """Post a message; answer it with `created` True (201) or False (200: a repeat of a post
        already stored, returned as stored). Without `id` or `idempotency_key` a random key is
        made once and reused on every retry, so a retried post is stored once. `relates_to` makes
        it an edit, deletion or reaction (msg_type `edit`, `delete`, `reaction`; see `edit`,
        `delete`, `react`): the answer then carries `target`, the related message after it.
        `mentions`: usernames to notify besides those its text @names (stored as the message's
        `mentions`)."""
        body: dict[str, Any] = {"msg_type": msg_type, "payload": payload}
        if relates_to is not None:
            body["relates_to"] = str(relates_to)
        if mentions is not None:
            body["mentions"] = list(mentions)
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

    async def post_messages(self, story: str, channel: str, messages: Iterable[dict]) -> list[BatchItem]:
        """Post several messages to one channel in one request (at most the server's
        MYTHLINE_BATCH_MAX_MESSAGES, 100 by default): one transaction, consecutive seqs in this order.
        Each message is a body as `post_message` sends it (msg_type, payload, and any of id,
        reply_to, correlation_id, audience, relates_to, mentions); one without an `id` gets a
        random one here, so a retried batch stores each message once. Answers one `BatchItem` per
        message, in order: a refused message does not refuse the others. What the batch as a whole
        may raise: InvalidRequest, PayloadTooLarge (too many messages), Forbidden, NotFound,
        Archived, RateLimited."""
        bodies = [dict(body) for body in messages]
        for body in bodies:
            body.setdefault("id", str(uuid.uuid4()))
        _, data = await self.request("POST", f"/api/stories/{story}/channels/{channel}/messages/batch",
                                     json={"messages": bodies}, idempotent=True)  # each message by its id
        items = []
        for item in data["results"]:
            if "message" in item:
                items.append(BatchItem(item["status"], message=Message.from_json(item["message"],
                                                                               created=item["status"] == 201)))
            else:
                items.append(BatchItem(item["status"], error=error_from_response(item["status"], item)))
        return items

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

    # --- relations: edits, deletions, reactions (docs/protocol.md 4.1) -------------------------
    async def _where(self, message: "Message | str") -> tuple[str, str, str]:
        """(story, channel, id) of a message given as a `Message` or an id (then looked up)."""
        if isinstance(message, Message):
            return message.story, message.channel, message.id
        found = await self.get_message(str(message))
        return found.story, found.channel, found.id

    async def edit(self, message: "Message | str", payload: dict, *,
                   idempotency_key: str | None = None) -> Message:
        """Replace a message's payload (your own message; checked against its msg_type's schema).
        Answers the `edit` message; its `target` is the message with the new payload."""
        story, channel, target = await self._where(message)
        return await self.post_message(story, channel, "edit", {"payload": payload}, relates_to=target,
                                       idempotency_key=idempotency_key)

    async def delete(self, message: "Message | str", *, reason: str | None = None) -> Message:
        """Delete a message (yours; any, as the story owner): answers the `delete` message, whose
        `target` is now `deleted` with payload None. Deleting it again answers the first deletion."""
        story, channel, target = await self._where(message)
        # No key of ours needed: the server answers a second deletion with the first.
        return await self.post_message(story, channel, "delete", {"reason": reason} if reason else {},
                                       relates_to=target)

    async def react(self, message: "Message | str", key: str) -> Message:
        """React to a message with `key` (an emoji or short text): answers the `reaction` message
        (`created` False when you had already given that key: once per key, user and message)."""
        story, channel, target = await self._where(message)
        # No deterministic key: after `unreact`, the same key again must be a new reaction.
        return await self.post_message(story, channel, "reaction", {"key": key}, relates_to=target)

    async def unreact(self, message: "Message | str", key: str) -> Message | None:
        """Take back your reaction `key` to a message: answers the `delete` of your reaction, or
        None when you had not given that key."""
        target = await self.get_message(message.id if isinstance(message, Message) else str(message))
        mine = target.reaction(key)
        if mine is None or not mine.me:
            return None
        # Reacting again answers the reaction already stored (once per key), which tells its id.
        reaction = await self.post_message(target.story, target.channel, "reaction", {"key": key},
                                           relates_to=target.id)
        return await self.post_message(target.story, target.channel, "delete", {}, relates_to=reaction.id)

    # --- search -------------------------------------------------------------------------------
    async def search(self, q: str, *, story: str | None = None, channel: str | None = None,
                     sender: str | None = None, type: "str | Iterable[str] | None" = None,
                     after: Any = None, before: Any = None, limit: int | None = None,
                     offset: int | None = None) -> SearchPage:
        """Full-text search over the messages you may read, best match first (`GET /api/search`):
        every word must occur, "quoted phrases" in order. `type`: a msg_type or several; `after`,
        `before`: ISO-8601 times (or datetimes) of `created_at`. A `SearchPage`: `results`
        (`message`, `story`, `channel`, `rank`, `highlight`: escaped HTML, hits in <mark>), and
        `next_offset` to pass back as `offset` (None on the last page)."""
        if type is not None and not isinstance(type, str):
            type = ",".join(type)
        return SearchPage.from_json(await self.get(
            "/api/search", q=q, story=story, channel=channel, sender=sender, type=type, after=_iso(after),
            before=_iso(before), limit=limit, offset=offset))

    # --- notifications ------------------------------------------------------------------------
    async def notifications(self, *, unread_only: bool = False, limit: int | None = None,
                            before: int | None = None) -> NotificationPage:
        """Your notification feed, newest first (`before`: an id, for older ones): a
        `NotificationPage` (`results`, `unread`: your unread count, `next`)."""
        return NotificationPage.from_json(await self.get(
            "/api/notifications", unread=1 if unread_only else None, limit=limit, before=before))

    async def mark_notifications_read(self, ids: Iterable[int] | None = None, *, all: bool = False) -> int:
        """Mark notifications read: these `ids`, or `all=True`; answers your unread count."""
        if all:
            body: dict[str, Any] = {"all": True}
        elif ids is not None:
            body = {"ids": list(ids)}
        else:
            raise ValueError("give the ids to mark read, or all=True")
        data = (await self.request("POST", "/api/notifications/read", json=body, idempotent=True))[1]
        return int(data.get("unread", 0))

    # --- streaming messages -------------------------------------------------------------------
    def stream(self, story: str, channel: str, msg_type: str, *, payload: dict | None = None, field: str = "text",
               id: str | None = None, reply_to: str | None = None, correlation_id: str | None = None,
               audience: Any = None) -> "MessageStream":
        """A streaming message, as an async context manager: every subscriber sees the text grow
        as you `append` chunks; a normal exit completes it (one message is stored, with the same
        id), an exception cancels it (nothing is stored).

        >>> async with client.stream("tale", "general", "narration") as s:
        ...     await s.append("The lamp ")
        ...     await s.append("guttered.")
        >>> s.message.payload["text"]
        'The lamp guttered.'
        """
        return MessageStream(self, story, channel, msg_type, payload=payload, field=field, id=id,
                             reply_to=reply_to, correlation_id=correlation_id, audience=audience)

    async def open_streams(self, story: str, channel: str) -> list[StreamInfo]:
        """The streams open in a channel now, each with its text so far."""
        data = await self.get(f"/api/stories/{story}/channels/{channel}/streams")
        return [StreamInfo.from_json(row) for row in data.get("results") or []]

    # --- webhooks (agents) --------------------------------------------------------------------
    async def set_webhook(self, url: str) -> Webhook:
        """Register (or change) your webhook, where your inbox's messages (and mentions) are
        POSTed while you are not connected. Agents only. The `Webhook` carries `secret`
        ("whsec_..."), to check deliveries with `mythline_sdk.webhooks.verify`, when it is created
        (`created` True); changing the URL keeps the secret (None in the answer)."""
        status, data = await self.request("PUT", "/api/agents/me/webhook", json={"url": url})
        return Webhook.from_json(data, created=status == 201)

    async def webhook(self) -> Webhook | None:
        """Your webhook (`status`: active or disabled, `failures`), or None when you have none."""
        try:
            return Webhook.from_json(await self.get("/api/agents/me/webhook"))
        except NotFound:
            return None

    async def delete_webhook(self) -> None:
        await self.request("DELETE", "/api/agents/me/webhook")

    async def rotate_webhook_secret(self, *, grace_seconds: int | None = None) -> str:
        """A new secret for your webhook; answers it. For `grace_seconds` (the server's default, a
        day, when None; at most a week; 0 after a leak) the old secret signs too, as a second
        signature, so a receiver still checking it keeps accepting deliveries while it switches."""
        body = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
        data = (await self.request("POST", "/api/agents/me/webhook/rotate", json=body))[1]
        return data["secret"]

    async def webhook_deliveries(self, *, limit: int | None = None) -> list[WebhookDelivery]:
        """Your webhook's delivery log, newest first (`status`: pending, failed, delivered, dead)."""
        return [WebhookDelivery.from_json(row)
                for row in (await self.get("/api/agents/me/webhook/deliveries", limit=limit)).get("results") or []]

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


class MessageStream:
    """A streaming message (`client.stream(...)`): `async with` opens it, `append` sends chunks,
    a normal exit completes it, an exception cancels it. `id` is the message's id (the stored
    message keeps it), `text` what was appended so far, `message` the stored message once
    completed, `status` "new", "open", "completed" or "cancelled".

    Appends carry their `offset` (the text's length before the chunk), so a retry after a lost
    answer is ignored by the server instead of doubling the chunk: they are retried like any
    request that is safe to repeat. A gap (another writer, a lost chunk) is `Conflict`."""

    def __init__(self, client: AsyncMythlineClient, story: str, channel: str, msg_type: str, *,
                 payload: dict | None = None, field: str = "text", id: str | None = None,
                 reply_to: str | None = None, correlation_id: str | None = None, audience: Any = None):
        self.client, self.story, self.channel, self.msg_type = client, story, channel, msg_type
        self.payload, self.field = payload, field
        self.id = str(id) if id is not None else str(uuid.uuid4())
        self.reply_to, self.correlation_id, self.audience = reply_to, correlation_id, audience
        self.text = ""
        self.status = "new"
        self.message: Message | None = None

    @property
    def length(self) -> int:
        return len(self.text)

    async def open(self) -> "MessageStream":
        body: dict[str, Any] = {"msg_type": self.msg_type, "field": self.field, "id": self.id}
        for name in ("payload", "reply_to", "correlation_id", "audience"):
            if getattr(self, name) is not None:
                body[name] = str(getattr(self, name)) if name == "reply_to" else getattr(self, name)
        # Always with an id (ours, or one made here): the server answers a repeated open with the
        # stream it opened, so a retry after a lost answer opens one stream.
        _, data = await self.client.request("POST", f"/api/stories/{self.story}/channels/{self.channel}/streams",
                                            json=body, idempotent=True)
        self.id = data.get("id", self.id)
        self.text = data.get("text") or ""
        self.status = "open"
        return self

    async def append(self, text: str) -> int:
        """Append a chunk; answers the text's length on the server after it."""
        if self.status != "open":
            raise RuntimeError(f"the stream is {self.status}, not open")
        if not text:
            return len(self.text)
        _, data = await self.client.request("POST", f"/api/streams/{self.id}/append",
                                            json={"text": text, "offset": len(self.text)},
                                            idempotent=True)  # by its offset: a repeat is ignored
        self.text += text
        return int(data.get("length", len(self.text)))

    async def complete(self, payload: dict | None = None) -> Message:
        """Store the message (the text in `field` of the payload, or `payload` given here); every
        subscriber gets it as a `message` frame. Answers it (also `self.message`)."""
        if self.status == "completed" and self.message is not None:
            return self.message
        # Completing again answers the message stored the first time: safe to retry.
        status, data = await self.client.request("POST", f"/api/streams/{self.id}/complete",
                                                 json={"payload": payload} if payload is not None else {},
                                                 idempotent=True)
        self.message = Message.from_json(data, created=status == 201)
        self.status = "completed"
        return self.message

    async def cancel(self) -> None:
        """Drop the stream: nothing is stored; subscribers see it ended as cancelled."""
        if self.status != "open":
            return
        await self.client.request("POST", f"/api/streams/{self.id}/cancel", idempotent=True)  # again: a no-op
        self.status = "cancelled"

    async def __aenter__(self) -> "MessageStream":
        return await self.open()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self.status != "open":
            return
        if exc_type is None:
            try:
                await self.complete()
            except MythlineError as exc:
                if not exc.retryable:  # refused for good (a policy, the channel archived): end it
                    await self._cancel_quietly(exc)
                raise
            return
        await self._cancel_quietly(exc)

    async def _cancel_quietly(self, why: BaseException | None) -> None:
        """Cancel on the way out of a failed block; the block's own error is the one to raise."""
        try:
            await asyncio.shield(self.cancel())
        except (MythlineError, asyncio.CancelledError) as cancel_error:
            logger.info("stream %s: could not cancel after %r: %s", self.id, why, cancel_error)


def _iso(value: Any) -> str | None:
    """A time for a query: an ISO-8601 string as given, a datetime in ISO-8601."""
    if value is None or isinstance(value, str):
        return value
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if isoformat is not None else str(value)


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return {"error": {"code": "invalid" if response.status_code < 500 else "internal",
                          "message": response.text[:500], "details": None}}


from mythline_sdk.listener import Listener  # noqa: E402  (typing and re-export)
