"""Typed views of what the API returns: frozen dataclasses whose attributes are named after the
JSON keys (`message.payload`, `page.next_after`), each built with `from_json`. Those that carry a
server object keep its JSON in `raw`, for fields added to the API later."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Reaction:
    """One key of a message's reactions: how many gave it, and whether the reader did (`me`: None
    in a live frame's `target`, which goes to every reader at once)."""
    key: str
    count: int = 0
    me: bool | None = False

    @classmethod
    def from_json(cls, data: dict) -> "Reaction":
        return cls(key=data["key"], count=int(data.get("count", 0)), me=data.get("me"))


@dataclass(frozen=True, slots=True)
class Message:
    """A message with its aggregated view (docs/protocol.md 4, 4.1): `payload` is the current one
    (the latest edit's), None once the message was deleted (`deleted`); `edited_at`, `reactions`.
    An edit, deletion or reaction is itself a message (`relates_to`, `rel_type`); the answer to
    posting one, and its live frame, carry `target`: the related message as it is after it."""
    id: str
    story: str
    channel: str
    seq: int
    sender: dict
    msg_type: str
    payload: dict | None
    reply_to: str | None = None
    correlation_id: str | None = None
    audience: Any = "all"
    created_at: str | None = None
    created: bool | None = None  # on a post: True for 201 (stored now), False for 200 (a repeat)
    replay: bool = False         # on the socket: sent as part of a resume, not live
    relates_to: str | None = None   # an edit, deletion or reaction: the message it relates to
    rel_type: str | None = None     # "replace" (edit), "redact" (delete), "annotate" (reaction)
    edited_at: str | None = None
    deleted: bool = False
    reactions: list[Reaction] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    target: "Message | None" = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict, *, created: bool | None = None, replay: bool = False) -> "Message":
        deleted = bool(data.get("deleted", False))
        payload = data.get("payload")
        if payload is None and not deleted:
            payload = {}  # an older server, or a message shown without a payload: never None unless deleted
        target = data.get("target")
        return cls(id=data["id"], story=data.get("story", ""), channel=data.get("channel", ""),
                   seq=data.get("seq", 0), sender=data.get("sender") or {}, msg_type=data["msg_type"],
                   payload=payload, reply_to=data.get("reply_to"),
                   correlation_id=data.get("correlation_id"), audience=data.get("audience", "all"),
                   created_at=data.get("created_at"), created=created, replay=replay,
                   relates_to=data.get("relates_to"), rel_type=data.get("rel_type"),
                   edited_at=data.get("edited_at"), deleted=deleted,
                   reactions=[Reaction.from_json(r) for r in data.get("reactions") or []],
                   mentions=[m for m in data.get("mentions") or [] if isinstance(m, str)],
                   target=cls.from_json(target) if isinstance(target, dict) else None, raw=data)

    @property
    def is_relation(self) -> bool:
        """An edit, deletion or reaction (it relates to another message)."""
        return self.relates_to is not None

    @property
    def edited(self) -> bool:
        return self.edited_at is not None

    def reaction(self, key: str) -> Reaction | None:
        """This message's reaction with `key`, or None."""
        return next((r for r in self.reactions if r.key == key), None)

    @property
    def topic(self) -> str:
        return f"channel:{self.story}/{self.channel}"

    @property
    def sender_name(self) -> str:
        return self.sender.get("username", "")

    @property
    def from_human(self) -> bool:
        return self.sender.get("kind") == "human"

    @property
    def from_agent(self) -> bool:
        return self.sender.get("kind") == "agent"

    @property
    def text(self) -> str:
        """The payload's main text, whatever the type (`text`, `line`, `title`), or '' (also
        once the message was deleted)."""
        for key in ("text", "line", "title", "task"):
            value = (self.payload or {}).get(key)
            if isinstance(value, str):
                return value
        return ""


@dataclass(frozen=True, slots=True)
class MessagePage:
    """A page of a channel's log. Ascending (`after=`): pass `next_after` back as `after`.
    Descending (`before=`): `results` newest first; pass `next_before` back as `before` while it
    is not None (None: nothing older)."""
    results: list[Message]
    next_after: int
    last_seq: int
    next_before: int | None = None

    @classmethod
    def from_json(cls, data: dict, *, after: int = 0) -> "MessagePage":
        return cls(results=[Message.from_json(m) for m in data.get("results") or []],
                   next_after=data.get("next_after", after), last_seq=data.get("last_seq", 0),
                   next_before=data.get("next_before"))


Page = MessagePage


@dataclass(frozen=True, slots=True)
class ActivityPage:
    """`GET /api/activity`: readable messages across channels, oldest first; pass `next_after`
    (an opaque cursor) back as `after`."""
    results: list[Message]
    next_after: str | None

    @classmethod
    def from_json(cls, data: dict) -> "ActivityPage":
        return cls(results=[Message.from_json(m) for m in data.get("results") or []],
                   next_after=data.get("next_after"))


@dataclass(frozen=True, slots=True)
class RouteResult:
    """`POST .../route`: the messages posted (one per inbox) and the agents they went to."""
    results: list[Message]
    routed_to: list[str]
    created: bool | None = None

    @classmethod
    def from_json(cls, data: dict, *, created: bool | None = None) -> "RouteResult":
        return cls(results=[Message.from_json(m, created=created) for m in data.get("results") or []],
                   routed_to=list(data.get("routed_to") or []), created=created)


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One message of `post_messages`: stored (`status` 201), the repeat of an earlier post (200),
    or refused (`error`, as its post alone would have raised it)."""
    status: int
    message: Message | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class InboxRow:
    story: str
    channel: str
    last_seq: int
    read_seq: int
    unread: int
    kind: str = ""
    archived: bool = False

    @classmethod
    def from_json(cls, data: dict) -> "InboxRow":
        return cls(story=data["story"], channel=data["channel"], last_seq=data.get("last_seq", 0),
                   read_seq=data.get("read_seq", 0), unread=data.get("unread", 0), kind=data.get("kind", ""),
                   archived=data.get("archived", False))

    @property
    def topic(self) -> str:
        return f"channel:{self.story}/{self.channel}"


@dataclass(frozen=True, slots=True)
class Story:
    slug: str
    title: str
    premise: str = ""
    visibility: str = "public"
    requires_approval: bool = False
    owner: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    role: str | None = None      # the caller's role (owner, editor, viewer), or None
    agents_suggest: bool = False  # agents' document edits become suggestions people accept
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "Story":
        return cls(slug=data["slug"], title=data.get("title", ""), premise=data.get("premise", ""),
                   visibility=data.get("visibility", "public"),
                   requires_approval=bool(data.get("requires_approval", False)), owner=data.get("owner", ""),
                   created_at=data.get("created_at"), updated_at=data.get("updated_at"), role=data.get("role"),
                   agents_suggest=bool(data.get("agents_suggest", False)), raw=data)


@dataclass(frozen=True, slots=True)
class Channel:
    story: str
    name: str
    kind: str = ""
    topic: str = ""              # the channel's subject line (not a socket topic: see `socket_topic`)
    archived: bool = False
    archived_at: str | None = None
    last_seq: int = 0
    created_by: str = ""
    created_at: str | None = None
    idle_archive_seconds: int | None = None
    inbox_of: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "Channel":
        return cls(story=data.get("story", ""), name=data["name"], kind=data.get("kind", ""),
                   topic=data.get("topic") or "", archived=bool(data.get("archived", False)),
                   archived_at=data.get("archived_at"), last_seq=data.get("last_seq", 0),
                   created_by=data.get("created_by", ""), created_at=data.get("created_at"),
                   idle_archive_seconds=data.get("idle_archive_seconds"), inbox_of=data.get("inbox_of"), raw=data)

    @property
    def socket_topic(self) -> str:
        return f"channel:{self.story}/{self.name}"


@dataclass(frozen=True, slots=True)
class Participant:
    username: str
    display_name: str = ""
    kind: str = ""               # "agent" or "human"
    role: str = ""
    joined_at: str | None = None
    created: bool | None = None  # on a join: True when the caller joined now, False when already in
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict, *, created: bool | None = None) -> "Participant":
        return cls(username=data["username"], display_name=data.get("display_name") or data["username"],
                   kind=data.get("kind", ""), role=data.get("role", ""), joined_at=data.get("joined_at"),
                   created=created, raw=data)


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """An agent and its reported status (`set_status`'s answer; the agents of `presence`)."""
    username: str
    display_name: str = ""
    description: str = ""
    capabilities: list[str] = field(default_factory=list)
    status: str = ""
    task: str = ""
    progress: float | None = None
    status_updated_at: str | None = None
    last_seen: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "AgentProfile":
        return cls(username=data["username"], display_name=data.get("display_name") or data["username"],
                   description=data.get("description") or "", capabilities=list(data.get("capabilities") or []),
                   status=data.get("status") or "", task=data.get("task") or "", progress=data.get("progress"),
                   status_updated_at=data.get("status_updated_at"), last_seen=data.get("last_seen"), raw=data)


@dataclass(frozen=True, slots=True)
class Presence:
    """`GET .../presence`: who is in the story's room now (`members`, as the server sends them) and
    every agent of the story with its status."""
    story: str
    members: list[dict]
    agents: list[AgentProfile]

    @classmethod
    def from_json(cls, data: dict, *, story: str = "") -> "Presence":
        return cls(story=data.get("story", story), members=list(data.get("members") or []),
                   agents=[AgentProfile.from_json(a) for a in data.get("agents") or []])


@dataclass(frozen=True, slots=True)
class Document:
    story: str
    name: str
    title: str
    text: str
    revision: int
    current_revision: int
    created_by: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    forked_from: str | None = None
    forked_at_revision: int | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "Document":
        return cls(story=data["story"], name=data["name"], title=data.get("title", ""), text=data["text"],
                   revision=data["revision"], current_revision=data.get("current_revision", data["revision"]),
                   created_by=data.get("created_by", ""), created_at=data.get("created_at"),
                   updated_at=data.get("updated_at"), forked_from=data.get("forked_from"),
                   forked_at_revision=data.get("forked_at_revision"), raw=data)


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """One change of a document's log: the revision it made and its edits."""
    revision: int
    changes: Any = None
    client_id: str | None = None
    author: str = ""
    via: str = ""
    created_at: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "DocumentChange":
        return cls(revision=data["revision"], changes=data.get("changes"), client_id=data.get("client_id"),
                   author=data.get("author", ""), via=data.get("via", ""), created_at=data.get("created_at"),
                   raw=data)


@dataclass(frozen=True, slots=True)
class DocumentEdit:
    """The answer to an edit or an append: the document's new `revision` and the `change` stored;
    or, in a story where agents suggest and people accept (`agents_suggest`), no change (`revision`
    None) and the `suggestion` the edit became (a dict, as the server shows it)."""
    revision: int | None
    change: DocumentChange | None
    suggestion: dict | None = None

    @classmethod
    def from_json(cls, data: dict) -> "DocumentEdit":
        change = data.get("change")
        return cls(revision=data.get("revision"), change=DocumentChange.from_json(change) if change else None,
                   suggestion=data.get("suggestion"))


@dataclass(frozen=True, slots=True)
class DocumentOps:
    """`GET .../ops`: the changes after a revision, oldest first, and the current `revision`."""
    results: list[DocumentChange]
    revision: int

    @classmethod
    def from_json(cls, data: dict) -> "DocumentOps":
        return cls(results=[DocumentChange.from_json(c) for c in data.get("results") or []],
                   revision=data.get("revision", 0))


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One hit of `search`: the `message` (as every read shows it), where it is, its `rank` (higher
    is better, comparable only within one answer) and `highlight`: HTML, every character escaped,
    the hits in <mark></mark>."""
    message: Message
    story: str
    channel: str
    rank: float = 0.0
    highlight: str = ""

    @classmethod
    def from_json(cls, data: dict) -> "SearchResult":
        message = Message.from_json(data["message"])
        return cls(message=message, story=data.get("story", message.story),
                   channel=data.get("channel", message.channel), rank=float(data.get("rank") or 0.0),
                   highlight=data.get("highlight") or "")


@dataclass(frozen=True, slots=True)
class SearchPage:
    """`GET /api/search`: best match first; pass `next_offset` back as `offset` (None: the last page)."""
    results: list[SearchResult]
    next_offset: int | None = None

    @classmethod
    def from_json(cls, data: dict) -> "SearchPage":
        return cls(results=[SearchResult.from_json(r) for r in data.get("results") or []],
                   next_offset=data.get("next_offset"))


@dataclass(frozen=True, slots=True)
class Notification:
    """One entry of the caller's notification feed: `kind` is "mention", "reply", "decision" or
    "webhook.disabled"; `actor` who caused it ({username, display_name, kind}, or None)."""
    id: int
    kind: str
    story: str | None = None
    channel: str | None = None
    message_id: str | None = None
    actor: dict | None = None
    excerpt: str = ""
    created_at: str | None = None
    read_at: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "Notification":
        return cls(id=data["id"], kind=data.get("kind", ""), story=data.get("story"), channel=data.get("channel"),
                   message_id=data.get("message_id"), actor=data.get("actor"), excerpt=data.get("excerpt") or "",
                   created_at=data.get("created_at"), read_at=data.get("read_at"), raw=data)

    @property
    def read(self) -> bool:
        return self.read_at is not None


@dataclass(frozen=True, slots=True)
class NotificationPage:
    """`GET /api/notifications`: newest first, the caller's `unread` count, and `next` (the URL of
    the next, older page, or None)."""
    results: list[Notification]
    unread: int = 0
    next: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> "NotificationPage":
        return cls(results=[Notification.from_json(n) for n in data.get("results") or []],
                   unread=int(data.get("unread") or 0), next=data.get("next"))


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A streaming message while it is open: the text so far (in `field` of its payload)."""
    id: str
    status: str = "open"
    field: str = "text"          # the payload key the text goes into (named as the JSON key)
    text: str = ""
    msg_type: str = ""
    payload: dict = dataclasses.field(default_factory=dict)
    sender: dict = dataclasses.field(default_factory=dict)
    started_at: str | None = None
    raw: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "StreamInfo":
        return cls(id=data["id"], status=data.get("status", "open"), field=data.get("field") or "text",
                   text=data.get("text") or "", msg_type=data.get("msg_type") or "",
                   payload=data.get("payload") or {}, sender=data.get("sender") or {},
                   started_at=data.get("started_at"), raw=data)


@dataclass(frozen=True, slots=True)
class Webhook:
    """The caller's (an agent's) webhook: `status` "active" or "disabled" (`disabled_reason`);
    `secret` ("whsec_...") only in the answer that creates it or rotates it."""
    url: str
    status: str = "active"
    disabled_reason: str | None = None
    failures: int = 0
    created_at: str | None = None
    secret: str | None = field(default=None, repr=False)  # never in a log line that prints the Webhook
    created: bool | None = None  # on set_webhook: True for 201 (registered now), False for 200 (changed)
    previous_secret_expires_at: str | None = None  # after a rotation: until then the old secret signs too
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict, *, created: bool | None = None) -> "Webhook":
        return cls(url=data.get("url") or "", status=data.get("status") or "active",
                   disabled_reason=data.get("disabled_reason"), failures=int(data.get("failures") or 0),
                   created_at=data.get("created_at"), secret=data.get("secret"), created=created,
                   previous_secret_expires_at=data.get("previous_secret_expires_at"), raw=data)


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One delivery of the webhook's log (one per message, retried until delivered or given up)."""
    id: Any
    message_id: str | None = None
    event: str = ""
    status: str = ""
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: str | None = None
    delivered_at: str | None = None
    created_at: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "WebhookDelivery":
        return cls(id=data.get("id"), message_id=data.get("message_id"), event=data.get("event") or "",
                   status=data.get("status") or "", attempts=int(data.get("attempts") or 0),
                   last_status_code=data.get("last_status_code"), last_error=data.get("last_error"),
                   next_attempt_at=data.get("next_attempt_at"), delivered_at=data.get("delivered_at"),
                   created_at=data.get("created_at"), raw=data)


# --- live events besides messages (Listener.on_stream / on_notification) ------------------------

@dataclass(frozen=True, slots=True)
class StreamStarted:
    """`stream.started`: a streaming message opened in a channel (or, after a subscribe, one still
    open: `stream.text` is the text so far)."""
    topic: str
    stream: StreamInfo
    type: str = "stream.started"

    @property
    def id(self) -> str:
        return self.stream.id


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """`stream.chunk`: `text` appended to stream `id` at `offset` (the text's length before it)."""
    topic: str
    id: str
    offset: int
    text: str
    type: str = "stream.chunk"


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """`stream.ended`: `status` "completed" (the stored message, same id, follows as a message
    frame; `seq` is its seq) or "cancelled"."""
    topic: str
    id: str
    status: str
    seq: int | None = None
    type: str = "stream.ended"


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """`notification` on `notifications:<username>`: a new notification, and the unread count."""
    topic: str
    notification: Notification
    unread: int = 0
    type: str = "notification"


@dataclass(frozen=True, slots=True)
class NotificationsRead:
    """`notifications.read`: notifications marked read (`ids`, or "all"), and the unread count."""
    topic: str
    ids: Any
    unread: int = 0
    type: str = "notifications.read"


StreamEvent = StreamStarted | StreamChunk | StreamEnded


def stream_event(frame: dict) -> "StreamEvent | None":
    """The typed event of a `stream.*` server frame (socket or SSE), or None for another frame."""
    kind, topic = frame.get("type"), frame.get("topic", "")
    if kind == "stream.started" and isinstance(frame.get("stream"), dict):
        return StreamStarted(topic=topic, stream=StreamInfo.from_json(frame["stream"]))
    if kind == "stream.chunk":
        return StreamChunk(topic=topic, id=frame["id"], offset=int(frame.get("offset") or 0),
                           text=frame.get("text") or "")
    if kind == "stream.ended":
        return StreamEnded(topic=topic, id=frame["id"], status=frame.get("status") or "", seq=frame.get("seq"))
    return None


def notification_event(frame: dict) -> "NotificationEvent | NotificationsRead | None":
    """The typed event of a `notification` / `notifications.read` frame, or None."""
    kind, topic = frame.get("type"), frame.get("topic", "")
    if kind == "notification" and isinstance(frame.get("notification"), dict):
        return NotificationEvent(topic=topic, notification=Notification.from_json(frame["notification"]),
                                 unread=int(frame.get("unread") or 0))
    if kind == "notifications.read":
        return NotificationsRead(topic=topic, ids=frame.get("ids"), unread=int(frame.get("unread") or 0))
    return None


def channel_topic(story: str, channel: str) -> str:
    return f"channel:{story}/{channel}"


def parse_channel_topic(topic: str) -> tuple[str, str]:
    """'channel:tale/general' -> ('tale', 'general')."""
    kind, _, rest = topic.partition(":")
    story, _, channel = rest.partition("/")
    if kind != "channel" or not story or not channel:
        raise ValueError(f"not a channel topic: {topic!r} (expected 'channel:<story>/<channel>')")
    return story, channel
