"""Typed views of what the API returns. Each keeps the raw JSON in `raw` for fields added later."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class MessagePage:
    results: list[Message]
    next_after: int
    last_seq: int


@dataclass(frozen=True)
class InboxRow:
    story: str
    channel: str
    last_seq: int
    read_seq: int
    unread: int
    kind: str = ""
    archived: bool = False

    @property
    def topic(self) -> str:
        return f"channel:{self.story}/{self.channel}"


@dataclass(frozen=True)
class Document:
    story: str
    name: str
    title: str
    text: str
    revision: int
    current_revision: int
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "Document":
        return cls(story=data["story"], name=data["name"], title=data.get("title", ""), text=data["text"],
                   revision=data["revision"], current_revision=data.get("current_revision", data["revision"]),
                   raw=data)


def channel_topic(story: str, channel: str) -> str:
    return f"channel:{story}/{channel}"


def parse_channel_topic(topic: str) -> tuple[str, str]:
    """'channel:tale/general' -> ('tale', 'general')."""
    kind, _, rest = topic.partition(":")
    story, _, channel = rest.partition("/")
    if kind != "channel" or not story or not channel:
        raise ValueError(f"not a channel topic: {topic!r} (expected 'channel:<story>/<channel>')")
    return story, channel
