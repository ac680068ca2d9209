"""The real-time contract in one place: topic names, every server frame, and their schemas.

Everything the server sends on `/ws/` (and, inside `data:`, on SSE) is built by a function here,
and `SCHEMAS` describes each frame type (JSON Schema). tests/messaging/test_frames.py calls the
services and the socket and validates every frame they produce against this table, so a frame
cannot change shape without the table (and docs/realtime.md) changing with it.

Frames are encoded here, once: a broadcast carries its frame as text and each subscriber sends
that text as it is.
"""
import json


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# --- topics ---------------------------------------------------------------------------------------

def channel_topic(story_slug: str, channel_name: str) -> str:
    return f"channel:{story_slug}/{channel_name}"


def story_topic(story_slug: str) -> str:
    return f"story:{story_slug}"


def doc_topic(story_slug: str, doc_name: str) -> str:
    return f"doc:{story_slug}/{doc_name}"


def notifications_topic(username: str) -> str:
    return f"notifications:{username}"


# --- frames ----------------------------------------------------------------------------------------
# Replies carry the client frame's `ref` (added by the socket); pushed frames have none.

def welcome(user: dict, *, heartbeat_seconds: float, max_frame_bytes: int) -> dict:
    return {"type": "welcome", "user": user, "heartbeat_seconds": heartbeat_seconds,
            "max_frame_bytes": max_frame_bytes}


def subscribed(topic: str, **position) -> dict:
    """`last_seq` for a channel, `revision` for a document, nothing more for a story."""
    return {"type": "subscribed", "topic": topic, **position}


def unsubscribed(topic: str, reason: str | None = None) -> dict:
    """An answer to `unsubscribe`; or, with `reason: access_revoked`, the server ending a topic."""
    frame = {"type": "unsubscribed", "topic": topic}
    if reason is not None:
        frame["reason"] = reason
    return frame


def published(topic: str, message_id: str, seq: int, created: bool) -> dict:
    return {"type": "published", "topic": topic, "id": message_id, "seq": seq, "created": created}


def acked(topic: str, seq: int) -> dict:
    return {"type": "acked", "topic": topic, "seq": seq}


def heartbeat_ack() -> dict:
    return {"type": "heartbeat_ack"}


def pong() -> dict:
    return {"type": "pong"}


def error(code: str, message: str, details=None, **extra) -> dict:
    frame = {"type": "error", "code": code, "message": message}
    if details is not None:
        frame["details"] = details
    return {**frame, **extra}


def message_prefix(topic: str, *, replay: bool) -> str:
    """A `message` frame is this prefix, the message JSON, and "}" (the message is encoded once)."""
    return '{"type":"message","topic":' + dumps(topic) + (',"replay":true' if replay else "") + ',"message":'


def message(topic: str, message_json_text: str, *, replay: bool = False) -> str:
    return message_prefix(topic, replay=replay) + message_json_text + "}"


def story_event(topic: str, event: str, data: dict) -> dict:
    return {"type": "event", "topic": topic, "event": event, "data": data}


def typing(topic: str, user: dict, is_typing: bool, expires_in: float) -> dict:
    return {"type": "typing", "topic": topic, "user": user, "typing": is_typing, "expires_in": expires_in}


def cursor(topic: str, user: dict, anchor: int, head: int, revision: int) -> dict:
    return {"type": "cursor", "topic": topic, "user": user, "anchor": anchor, "head": head, "revision": revision}


def presence_state(topic: str, state: dict) -> dict:
    return {"type": "presence.state", "topic": topic, **state}


def presence_diff(topic: str, joins: list, leaves: list, updates: list) -> dict:
    return {"type": "presence.diff", "topic": topic, "joins": joins, "leaves": leaves, "updates": updates}


def doc_state(topic: str, revision: int, text: str, *, max_insert_chars: int, max_chars: int,
              max_changes: int) -> dict:
    """The text at `revision`, and the document's limits: a change inserts at most
    `max_insert_chars` characters, the text holds at most `max_chars`, a `doc.push` carries at most
    `max_changes` changed ranges (editors split or refuse before sending anything the server would
    refuse)."""
    return {"type": "doc.state", "topic": topic, "revision": revision, "text": text,
            "max_insert_chars": max_insert_chars, "max_chars": max_chars, "max_changes": max_changes}


def doc_change(topic: str, *, revision: int, changes, client_id: str, author: str) -> dict:
    return {"type": "doc.change", "topic": topic, "revision": revision, "changes": changes,
            "client_id": client_id, "author": author}


def doc_changes(topic: str, changes: list) -> dict:
    return {"type": "doc.changes", "topic": topic, "changes": changes}


def suggestion(topic: str, suggestion: dict) -> dict:
    """Answers `suggest` and `suggestion.decide` with an `id`: the suggestion as REST shows it."""
    return {"type": "suggestion", "topic": topic, "suggestion": suggestion}


def suggestions_decided(topic: str, *, decision: str, decided: list, skipped: list) -> dict:
    """Answers `suggestion.decide` without an `id`: the ids decided, and those skipped (stale)."""
    return {"type": "suggestions.decided", "topic": topic, "decision": decision, "decided": decided,
            "skipped": skipped}


def comment_thread(topic: str, thread: dict) -> dict:
    """Answers `comment` and `comment.resolve`: the thread with every comment, as REST shows it."""
    return {"type": "comment.thread", "topic": topic, "thread": thread}


def comment(topic: str, comment: dict) -> dict:
    """Answers `comment.reply`: the new comment."""
    return {"type": "comment", "topic": topic, "comment": comment}


# Streaming messages (streaming/; docs/protocol.md, "Streaming messages").
def stream_started(topic: str, stream: dict) -> dict:
    """A stream opened (live), or, after a subscribe's replay, one still open: `text` so far."""
    return {"type": "stream.started", "topic": topic, "stream": stream}


def stream_chunk(topic: str, stream_id: str, offset: int, text: str) -> dict:
    """`offset`: the length of the stream's text before this chunk (in characters)."""
    return {"type": "stream.chunk", "topic": topic, "id": stream_id, "offset": offset, "text": text}


def stream_ended(topic: str, stream_id: str, status: str, seq: int | None = None) -> dict:
    """Completed (`seq`: the stored message's; its `message` frame follows) or cancelled."""
    frame = {"type": "stream.ended", "topic": topic, "id": stream_id, "status": status}
    if seq is not None:
        frame["seq"] = seq
    return frame


def stream_opened(topic: str, stream_id: str, created: bool) -> dict:
    return {"type": "stream.opened", "topic": topic, "id": stream_id, "created": created}


def stream_appended(topic: str, stream_id: str, length: int) -> dict:
    return {"type": "stream.appended", "topic": topic, "id": stream_id, "length": length}


def stream_cancelled(topic: str, stream_id: str) -> dict:
    return {"type": "stream.cancelled", "topic": topic, "id": stream_id}


# --- schemas ---------------------------------------------------------------------------------------

ERROR_CODES = ["invalid", "unauthenticated", "forbidden", "not_found", "conflict", "archived",
               "payload_too_large", "rate_limited", "loop_detected", "no_route", "unavailable"]
_STR, _INT, _NAT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "integer", "minimum": 0}, {"type": "boolean"}
_TOPIC = {"type": "string",
          "pattern": r"^(channel:[^/]+/[^/]+|story:[^/]+|doc:[^/]+/[^/]+|notifications:[^/]+)$"}
_USER = {"type": "object", "required": ["username", "display_name", "kind"], "additionalProperties": False,
         "properties": {"username": _STR, "display_name": _STR, "kind": {"enum": ["human", "agent"]}}}
_MESSAGE = {"type": "object", "required": ["id", "story", "channel", "seq", "sender", "msg_type", "payload",
                                           "created_at"],
            "properties": {"id": _STR, "story": _STR, "channel": _STR, "seq": _NAT, "sender": _USER,
                           "msg_type": _STR, "payload": {"type": ["object", "null"]},
                           # Relations (docs/protocol.md 4.4) and the aggregated view.
                           "relates_to": {"type": ["string", "null"]},
                           "rel_type": {"enum": ["replace", "redact", "annotate", None]},
                           "mentions": {"type": "array", "items": _STR},
                           "edited_at": {"type": ["string", "null"]}, "deleted": _BOOL,
                           "reactions": {"type": "array", "items": {
                               "type": "object", "required": ["key", "count", "me"], "additionalProperties": False,
                               "properties": {"key": _STR, "count": _NAT, "me": {"type": ["boolean", "null"]}}}},
                           "target": {"type": "object", "required": ["id", "seq", "msg_type", "payload", "deleted",
                                                                     "reactions"]}}}
_IDS = {"type": "array", "items": _NAT}
_SUGGESTION = {"type": "object", "required": ["id", "story", "document", "author", "author_kind", "note", "status",
                                              "revision", "edits", "edits_utf16", "replaced", "version"],
               "properties": {"id": _NAT, "status": {"enum": ["open", "accepted", "rejected", "stale"]},
                              "revision": _NAT, "version": _NAT, "edits_utf16": {"type": "array"}}}
_COMMENT = {"type": "object", "required": ["id", "thread", "author", "author_kind", "body", "created_at"],
            "properties": {"id": _NAT, "thread": _NAT, "author": _STR, "body": _STR}}
_THREAD = {"type": "object", "required": ["id", "story", "document", "anchor", "anchor_utf16", "revision", "orphaned",
                                          "quote", "created_by", "resolved", "version", "comment_count", "comments"],
           "properties": {"id": _NAT, "revision": _NAT, "version": _NAT, "resolved": _BOOL,
                          "comments": {"type": "array", "items": _COMMENT}}}
_PRESENCE_ENTRY = {"type": "object", "required": ["username", "display_name", "kind"]}
_STREAM = {"type": "object", "required": ["id", "story", "channel", "sender", "msg_type", "payload", "field", "text",
                                          "status", "started_at"],
           "properties": {"id": _STR, "sender": _USER, "msg_type": _STR, "payload": {"type": "object"},
                          "field": _STR, "text": _STR, "status": {"enum": ["open", "completed", "cancelled"]}}}


def _frame(type_: str, required: dict, optional: dict | None = None, *, closed: bool = True) -> dict:
    properties = {"type": {"const": type_}, "ref": _STR, **required, **(optional or {})}
    schema = {"type": "object", "required": ["type", *required], "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


SCHEMAS: dict[str, dict] = {
    "welcome": _frame("welcome", {"user": _USER, "heartbeat_seconds": {"type": "number"}, "max_frame_bytes": _INT}),
    "subscribed": _frame("subscribed", {"topic": _TOPIC}, {"last_seq": _NAT, "revision": _NAT, "unread": _NAT}),
    "unsubscribed": _frame("unsubscribed", {"topic": _TOPIC}, {"reason": {"enum": ["access_revoked"]}}),
    "published": _frame("published", {"topic": _TOPIC, "id": _STR, "seq": _NAT, "created": _BOOL}),
    "acked": _frame("acked", {"topic": _TOPIC, "seq": _NAT}),
    "heartbeat_ack": _frame("heartbeat_ack", {}),
    "pong": _frame("pong", {}),
    "error": _frame("error", {"code": {"enum": ERROR_CODES}, "message": _STR},
                    {"details": {}, "topic": _STR, "revision": _NAT}),
    "message": _frame("message", {"topic": _TOPIC, "message": _MESSAGE}, {"replay": {"const": True}}),
    "event": _frame("event", {"topic": _TOPIC, "event": _STR, "data": {"type": "object"}}),
    "typing": _frame("typing", {"topic": _TOPIC, "user": _USER, "typing": _BOOL, "expires_in": {"type": "number"}}),
    "cursor": _frame("cursor", {"topic": _TOPIC, "user": _USER, "anchor": _NAT, "head": _NAT, "revision": _NAT}),
    "presence.state": _frame("presence.state", {"topic": _TOPIC, "members": {"type": "array", "items": _PRESENCE_ENTRY},
                                                "agents": {"type": "array"}}, closed=False),
    "presence.diff": _frame("presence.diff", {"topic": _TOPIC, "joins": {"type": "array", "items": _PRESENCE_ENTRY},
                                              "leaves": {"type": "array", "items": _PRESENCE_ENTRY},
                                              "updates": {"type": "array", "items": _PRESENCE_ENTRY}}),
    "doc.state": _frame("doc.state", {"topic": _TOPIC, "revision": _NAT, "text": _STR,
                                      "max_insert_chars": _NAT, "max_chars": _NAT, "max_changes": _NAT}),
    "doc.change": _frame("doc.change", {"topic": _TOPIC, "revision": _NAT, "changes": {"type": "array"},
                                        "client_id": _STR, "author": _STR}),
    "doc.changes": _frame("doc.changes", {"topic": _TOPIC, "changes": {"type": "array", "items": {
        "type": "object", "required": ["revision", "changes", "client_id", "author"]}}}),
    "suggestion": _frame("suggestion", {"topic": _TOPIC, "suggestion": _SUGGESTION}),
    "suggestions.decided": _frame("suggestions.decided", {"topic": _TOPIC, "decision": {"enum": ["accept", "reject"]},
                                                          "decided": _IDS, "skipped": _IDS}),
    "comment.thread": _frame("comment.thread", {"topic": _TOPIC, "thread": _THREAD}),
    "comment": _frame("comment", {"topic": _TOPIC, "comment": _COMMENT}),
    "stream.started": _frame("stream.started", {"topic": _TOPIC, "stream": _STREAM}),
    "stream.chunk": _frame("stream.chunk", {"topic": _TOPIC, "id": _STR, "offset": _NAT, "text": _STR}),
    "stream.ended": _frame("stream.ended", {"topic": _TOPIC, "id": _STR, "status": {"enum": ["completed", "cancelled"]}},
                           {"seq": _NAT}),
    "stream.opened": _frame("stream.opened", {"topic": _TOPIC, "id": _STR, "created": _BOOL}),
    "stream.appended": _frame("stream.appended", {"topic": _TOPIC, "id": _STR, "length": _NAT}),
    "stream.cancelled": _frame("stream.cancelled", {"topic": _TOPIC, "id": _STR}),
}

# Story events (`event` frames) by name; `data` of each is described in docs/realtime.md.
STORY_EVENTS = ["story.updated", "participant.joined", "participant.updated", "participant.removed",
                "channel.created", "channel.updated", "channel.archived", "channel.unarchived",
                "member.joined", "member.left", "document.created", "agent.status"]
# The outline (outline/services.py; docs/protocol.md, "The outline").
STORY_EVENTS += ["outline.scene.created", "outline.scene.updated", "outline.scene.moved", "outline.scene.deleted"]
# The story bible (bible/services.py; docs/protocol.md, "Story bible").
STORY_EVENTS += ["bible.entry.created", "bible.entry.updated", "bible.entry.deleted"]
# Suggestions (suggestions/services.py; docs/protocol.md, "Suggestions").
STORY_EVENTS += ["suggestion.created", "suggestion.updated"]
# Comments on a passage (comments/services.py; docs/protocol.md, "Comments").
STORY_EVENTS += ["comment.thread.created", "comment.created", "comment.thread.updated"]
# The writers' room (writers/services.py; docs/protocol.md, "The writers' room").
STORY_EVENTS += ["crew.updated"]
# Named versions of a document (versions/services.py; docs/protocol.md, "Versions").
STORY_EVENTS += ["document.version.created", "document.version.updated", "document.version.deleted"]

# Notifications (notifications/frames.py; docs/protocol.md, "Notifications").
_NOTIFICATION = {"type": "object", "required": ["id", "kind", "story", "channel", "message_id", "actor", "excerpt",
                                                "created_at", "read_at"], "additionalProperties": False,
                 "properties": {"id": _NAT, "kind": {"enum": ["mention", "reply", "decision", "webhook.disabled"]},
                                "story": {"type": ["string", "null"]}, "channel": {"type": ["string", "null"]},
                                "message_id": {"type": ["string", "null"]},
                                "actor": {"anyOf": [_USER, {"type": "null"}]}, "excerpt": _STR,
                                "created_at": _STR, "read_at": {"type": ["string", "null"]}}}
SCHEMAS["notification"] = _frame("notification", {"topic": _TOPIC, "notification": _NOTIFICATION, "unread": _NAT})
SCHEMAS["notifications.read"] = _frame("notifications.read", {
    "topic": _TOPIC, "ids": {"anyOf": [{"type": "array", "items": _NAT}, {"const": "all"}]}, "unread": _NAT})


def notification(topic: str, notification: dict, unread: int) -> dict:
    """A new notification on `notifications:<username>`, with the user's unread count after it."""
    return {"type": "notification", "topic": topic, "notification": notification, "unread": unread}


def notifications_read(topic: str, ids, unread: int) -> dict:
    """Notifications marked read (`ids`, or "all"), by any of the user's clients; the unread count after."""
    return {"type": "notifications.read", "topic": topic, "ids": ids, "unread": unread}
