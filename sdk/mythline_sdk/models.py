"""Typed views of what the API returns: frozen dataclasses whose attributes are named after the
JSON keys (`message.payload`, `page.next_after`), each built with `from_json`. Those that carry a
server object keep its JSON in `raw`, for fields added to the API later."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    story: str
    channel: str
    seq: int
    sender: dict
    msg_type: str
    payload: dict
    reply_to: str | None = None
    correlation_id: str | None = None
    audience: Any = "all"
    created_at: str | None = None
    created: bool | None = None  # on a post: True for 201 (stored now), False for 200 (a repeat)
    replay: bool = False         # on the socket: sent as part of a resume, not live
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict, *, created: bool | None = None, replay: bool = False) -> "Message":
        return cls(id=data["id"], story=data.get("story", ""), channel=data.get("channel", ""),
                   seq=data.get("seq", 0), sender=data.get("sender") or {}, msg_type=data["msg_type"],
                   payload=data.get("payload") or {}, reply_to=data.get("reply_to"),
                   correlation_id=data.get("correlation_id"), audience=data.get("audience", "all"),
                   created_at=data.get("created_at"), created=created, replay=replay, raw=data)

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
        """The payload's main text, whatever the type (`text`, `line`, `title`), or ''."""
        for key in ("text", "line", "title", "task"):
            value = self.payload.get(key)
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


def channel_topic(story: str, channel: str) -> str:
    return f"channel:{story}/{channel}"


def parse_channel_topic(topic: str) -> tuple[str, str]:
    """'channel:tale/general' -> ('tale', 'general')."""
    kind, _, rest = topic.partition(":")
    story, _, channel = rest.partition("/")
    if kind != "channel" or not story or not channel:
        raise ValueError(f"not a channel topic: {topic!r} (expected 'channel:<story>/<channel>')")
    return story, channel
