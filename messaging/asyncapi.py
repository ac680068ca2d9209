"""The real-time contract as an AsyncAPI 3.0 document: the `/ws/` socket and the SSE stream.

Served at `GET /api/asyncapi.json` (public, like the OpenAPI schema at `/api/schema`); the prose
is docs/protocol.md. Nothing here is written twice: every server frame's schema comes from
`messaging.frames.SCHEMAS` (which tests/messaging/test_frames.py holds to what the server really
sends), story event names from `frames.STORY_EVENTS`, error codes from `frames.ERROR_CODES`, the
built-in payload schemas from `messaging.schemas.SCHEMAS`, and limits from the settings. What
only this module says is the shape of the frames a client sends (`CLIENT_SCHEMAS`), which the
handlers in messaging/consumers.py and messaging/topics/ accept.

The document describes the Mythline server as the application: a client frame is an operation the
server *receives* (with the frames it answers as its `reply`), a frame the server pushes is one it
*sends*. tests/messaging/test_asyncapi.py checks the document's structure and validates the
frames of a session with a live server against it.
"""
import copy

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_safe

from messaging import frames
from messaging import schemas as payloads
from messaging.models import MSG_TYPE_RE

WS_CHANNEL = "realtime"
SSE_CHANNEL = "channelEvents"
_SCHEMA_REF = "#/components/schemas/"
_MESSAGE_REF = "#/components/messages/"

# --- client frames ----------------------------------------------------------------------------------
# What a client may send. The server ignores fields it does not know in every frame but `publish`
# (whose fields are the message's) and the suggestion and comment frames (REST bodies refuse unknown
# fields, so do they): there an unknown one is refused. These schemas are closed so that generated
# clients send only what means something.

_STR = {"type": "string"}
_NAT = {"type": "integer", "minimum": 0}
_REF = {"type": "string", "description": "Any string; every reply to this frame echoes it."}
_ANY_TOPIC = {"type": "string",
              "pattern": r"^(channel:[^/]+/[^/]+|story:[^/]+|doc:[^/]+/[^/]+|notifications:[^/]+)$",
              "description": "channel:<story>/<channel>, story:<story>, doc:<story>/<doc> or "
                             "notifications:<your username>"}
_CHANNEL_TOPIC = {"type": "string", "pattern": r"^channel:[^/]+/[^/]+$", "description": "channel:<story>/<channel>"}
_DOC_TOPIC = {"type": "string", "pattern": r"^doc:[^/]+/[^/]+$", "description": "doc:<story>/<doc>"}
# The canonical spelling, as the server writes ids (it also reads other spellings of a UUID).
_UUID = payloads.UUID_SCHEMA
_CHANGES = {
    "type": "array",
    "description": "A CodeMirror 6 `ChangeSet.toJSON()` made against `revision`, positions in UTF-16 code "
                   "units: a positive integer keeps that many units; [n] deletes n; [n, line, ...] replaces n "
                   "units with the lines joined by \\n. The kept and replaced lengths add up to the "
                   "document's length.",
    "items": {"anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "array", "minItems": 1, "items": [{"type": "integer", "minimum": 0}], "additionalItems": _STR},
    ]},
}


def _client(type_: str, description: str, required: dict, optional: dict | None = None, **extra) -> dict:
    properties = {"type": {"const": type_}, "ref": _REF, **required, **(optional or {})}
    return {"type": "object", "description": description, "required": ["type", *required],
            "properties": properties, "additionalProperties": False, **extra}


def _payload_ref(msg_type: str) -> str:
    return f"{_SCHEMA_REF}payload.{msg_type}"


def _payload_conditions() -> list[dict]:
    """`if msg_type is T then payload matches T's schema`, for every built-in type (a deleted
    message's payload is null in the aggregated view: no schema applies to it)."""
    return [{"if": {"required": ["msg_type", "payload"], "properties": {"msg_type": {"const": msg_type},
                                                                        "payload": {"type": "object"}}},
             "then": {"properties": {"payload": {"$ref": _payload_ref(msg_type)}}}}
            for msg_type in payloads.BUILT_IN_TYPES]


def _audience() -> dict:
    return {"anyOf": [
        {"enum": ["all", "agents", "humans"]},
        {"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "string", "minLength": 1}},
    ], "description": "Who sees the message (default all): all, agents, humans, or up to 100 usernames. "
                      "The sender and the story owner always see it."}


def client_schemas() -> dict[str, dict]:
    """The JSON Schema of every client frame, by `type`."""
    return {
        "subscribe": _client(
            "subscribe", "Open a topic. Answered by `subscribed`, then `presence.state` (presence channels) or "
            "`doc.state` (documents), then, with `after`, every message with seq > after as `message` frames "
            "with `replay: true`, then live frames. Subscribing again to an open topic restarts it.",
            {"topic": _ANY_TOPIC},
            {"after": {**_NAT, "description": "Channel topics: replay every message with seq > after"},
             "types": {"type": "array", "items": _STR, "description": "Channel topics: only these msg_types"}}),
        "unsubscribe": _client("unsubscribe", "Close an open topic. Answered by `unsubscribed`.",
                               {"topic": _ANY_TOPIC}),
        "publish": _client(
            "publish", "Post a message to a channel, as REST's POST .../messages does. Answered by `published` "
            "(created: false for a repeat of an earlier id with the same content).",
            {"topic": _CHANNEL_TOPIC, "msg_type": {"type": "string", "pattern": MSG_TYPE_RE},
             "payload": {"type": "object", "description": "At most MYTHLINE_MAX_PAYLOAD_BYTES encoded; built-in "
                                                          "msg_types have a schema (components payload.*)"}},
            {"id": {**_UUID, "description": "Your id for the message: a repeat with the same content answers "
                                            "the original (created: false)"},
             "reply_to": {"anyOf": [_UUID, {"type": "null"}]},
             "correlation_id": {"anyOf": [{"type": "string", "maxLength": 128}, {"type": "null"}]},
             "audience": {"anyOf": [_audience(), {"type": "null"}]},
             "mentions": {"anyOf": [{"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1}},
                                    {"type": "null"}],
                          "description": "Usernames of participants to notify, besides the @names of the text"}},
            allOf=_payload_conditions()),
        "typing": _client("typing", "Say you are typing (repeat while typing) or stopped, on a channel topic you "
                                    "are subscribed to and may post in. No answer; others get `typing`.",
                          {"topic": _CHANNEL_TOPIC}, {"typing": {"type": "boolean", "default": True}}),
        "heartbeat": _client("heartbeat", "Keep this connection present; send every `heartbeat_seconds`. "
                                          "Answered by `heartbeat_ack`.",
                             {}, {"state": {"enum": ["active", "idle", "away"], "default": "active"}}),
        "ack": _client("ack", "Move your read cursor of the channel forward (never back). Answered by `acked` "
                              "with the cursor.", {"topic": _CHANNEL_TOPIC, "seq": _NAT}),
        "ping": _client("ping", "Answered by `pong`.", {}),
        "doc.push": _client(
            "doc.push", "Apply a change made against the current revision. No direct answer on success: every "
            "subscriber, the sender included, gets `doc.change` with this `client_id`. A stale revision gets "
            "`error` `conflict` with the current `revision`.",
            {"topic": _DOC_TOPIC, "revision": {"type": "integer"}, "changes": _CHANGES},
            {"client_id": {"type": "string", "maxLength": 64, "default": ""}}),
        "doc.pull": _client("doc.pull", "Read the change log after a revision (at most 1,000 changes per answer). "
                                        "Answered by `doc.changes`.",
                            {"topic": _DOC_TOPIC}, {"after": {**_NAT, "default": 0}}),
        "cursor": _client("cursor", "Your selection in a document you may edit (UTF-16 positions). No answer; "
                                    "others get `cursor` (at most one per 50 ms, the latest wins).",
                          {"topic": _DOC_TOPIC, "anchor": _NAT},
                          {"head": {**_NAT, "description": "default: anchor"}}),
        "suggest": _client(
            "suggest", "Suggest a change to a document you write instead of making it, as REST's POST "
            ".../suggestions does (same checks, limits and 409s). Answered by `suggestion`; the story topic "
            "gets `suggestion.created`.",
            {"topic": _DOC_TOPIC, "revision": {**_NAT, "description": "The revision `changes` were made against"},
             "changes": _CHANGES},
            {"note": {"type": "string", "maxLength": 2000}}),
        "suggestion.decide": _client(
            "suggestion.decide", "Accept or reject a suggestion (with `id`, answered by `suggestion`) or every "
            "open one, of `author` if given (answered by `suggestions.decided`); people who write the story only "
            "(agents: `forbidden`). The story topic gets `suggestion.updated` for each.",
            {"topic": _DOC_TOPIC, "decision": {"enum": ["accept", "reject"]}},
            {"id": {**_NAT, "description": "One suggestion"},
             "version": {**_NAT, "description": "With `id`: the version you read (`conflict` if it changed)"},
             "author": {"type": "string", "description": "Without `id`: only this user's open suggestions"}}),
        "comment": _client(
            "comment", "Open a comment thread on a passage (UTF-16 positions of the text at `revision`, default "
            "the current one), as REST's POST .../comments does. Answered by `comment.thread`; the story topic "
            "gets `comment.thread.created`.",
            {"topic": _DOC_TOPIC, "from": _NAT, "to": _NAT, "body": {"type": "string", "minLength": 1,
                                                                      "maxLength": 5000}},
            {"revision": _NAT}),
        "comment.reply": _client(
            "comment.reply", "Reply in a comment thread. Answered by `comment`; the story topic gets "
            "`comment.created`.",
            {"topic": _DOC_TOPIC, "thread": _NAT, "body": {"type": "string", "minLength": 1, "maxLength": 5000}}),
        "comment.resolve": _client(
            "comment.resolve", "Resolve (`resolved: true`) or reopen a comment thread. Answered by "
            "`comment.thread`; a change is a new version and a `comment.thread.updated` story event.",
            {"topic": _DOC_TOPIC, "thread": _NAT, "resolved": {"type": "boolean"}},
            {"version": {**_NAT, "description": "The version you read (`conflict` if it changed)"}}),
        # Streaming messages (streaming/frames.py): unknown fields are refused, as REST refuses them.
        "stream.open": _client(
            "stream.open", "Open a streaming message in a channel you may post in, as REST's POST .../streams "
            "does (the checks of a post; one unit of the post budget). Answered by `stream.opened`; the channel "
            "topic gets `stream.started`.",
            {"topic": _CHANNEL_TOPIC, "msg_type": {"type": "string", "pattern": MSG_TYPE_RE}},
            {"payload": {"type": "object", "description": "The payload without the streamed field"},
             "field": {"type": "string", "default": "text", "description": "The payload field the text goes to: "
                                                                           "a text field of a built-in type"},
             "id": {**_UUID, "description": "The final message's id; an open repeated with it answers the same "
                                            "stream (created: false)"},
             "reply_to": {"anyOf": [_UUID, {"type": "null"}]},
             "correlation_id": {"anyOf": [{"type": "string", "maxLength": 128}, {"type": "null"}]},
             "audience": {"anyOf": [_audience(), {"type": "null"}]}}),
        "stream.append": _client(
            "stream.append", "Append text to your open stream (one unit of the post budget). Answered by "
            "`stream.appended` with the new length; the channel topic gets `stream.chunk`.",
            {"id": _UUID, "text": {"type": "string", "minLength": 1}},
            {"offset": {**_NAT, "description": "The text's length before this chunk (characters): a retried chunk "
                                               "is ignored, a gap or overlap is `conflict` with the `length`"}}),
        "stream.complete": _client(
            "stream.complete", "Store your stream as one message with the stream's id (every check of a post). "
            "Answered by `published` (created: false when completed already); the topic gets `stream.ended` "
            "then the `message`.",
            {"id": _UUID}, {"payload": {"type": "object", "description": "Replaces the payload's other fields"}}),
        "stream.cancel": _client(
            "stream.cancel", "Cancel a stream (its opener, the channel's owner or the story owner); again: "
            "no-op. Answered by `stream.cancelled`; the topic gets `stream.ended`.", {"id": _UUID}),
    }


CLIENT_EXAMPLES = {
    "subscribe": {"type": "subscribe", "ref": "1", "topic": "channel:the-lighthouse/general", "after": 41},
    "unsubscribe": {"type": "unsubscribe", "ref": "2", "topic": "channel:the-lighthouse/general"},
    "publish": {"type": "publish", "ref": "3", "topic": "channel:the-lighthouse/general", "msg_type": "narration",
                "payload": {"text": "The lamp guttered."}, "id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"},
    "typing": {"type": "typing", "topic": "channel:the-lighthouse/general", "typing": True},
    "heartbeat": {"type": "heartbeat", "state": "active"},
    "ack": {"type": "ack", "ref": "4", "topic": "channel:the-lighthouse/general", "seq": 42},
    "ping": {"type": "ping", "ref": "5"},
    "doc.push": {"type": "doc.push", "ref": "6", "topic": "doc:the-lighthouse/main", "revision": 7,
                 "changes": [12, [0, "Night fell."], 30], "client_id": "k3v9"},
    "doc.pull": {"type": "doc.pull", "ref": "7", "topic": "doc:the-lighthouse/main", "after": 5},
    "cursor": {"type": "cursor", "topic": "doc:the-lighthouse/main", "anchor": 12, "head": 18},
    "suggest": {"type": "suggest", "ref": "8", "topic": "doc:the-lighthouse/main", "revision": 7,
                "changes": [12, [5, "Dusk"], 30], "note": "darker"},
    "suggestion.decide": {"type": "suggestion.decide", "ref": "9", "topic": "doc:the-lighthouse/main",
                          "decision": "accept", "id": 14, "version": 1},
    "comment": {"type": "comment", "ref": "10", "topic": "doc:the-lighthouse/main", "from": 12, "to": 17,
                "revision": 7, "body": "Too early for dusk?"},
    "comment.reply": {"type": "comment.reply", "ref": "11", "topic": "doc:the-lighthouse/main", "thread": 3,
                      "body": "Moved it."},
    "comment.resolve": {"type": "comment.resolve", "ref": "12", "topic": "doc:the-lighthouse/main", "thread": 3,
                        "resolved": True, "version": 1},
    "stream.open": {"type": "stream.open", "ref": "13", "topic": "channel:the-lighthouse/general",
                    "msg_type": "narration", "id": "9f2c1e4a-3b5d-4c6e-8f70-1a2b3c4d5e6f"},
    "stream.append": {"type": "stream.append", "ref": "14", "id": "9f2c1e4a-3b5d-4c6e-8f70-1a2b3c4d5e6f",
                      "text": "The lamp ", "offset": 0},
    "stream.complete": {"type": "stream.complete", "ref": "15", "id": "9f2c1e4a-3b5d-4c6e-8f70-1a2b3c4d5e6f"},
    "stream.cancel": {"type": "stream.cancel", "ref": "16", "id": "9f2c1e4a-3b5d-4c6e-8f70-1a2b3c4d5e6f"},
}

# What each client frame is answered with (the reply's `ref` is the frame's). `error` answers any.
CLIENT_REPLIES = {
    "subscribe": ["subscribed", "presence.state", "doc.state", "message"],
    "unsubscribe": ["unsubscribed"],
    "publish": ["published"],
    "typing": [],
    "heartbeat": ["heartbeat_ack"],
    "ack": ["acked"],
    "ping": ["pong"],
    "doc.push": [],
    "doc.pull": ["doc.changes"],
    "cursor": [],
    "suggest": ["suggestion"],
    "suggestion.decide": ["suggestion", "suggestions.decided"],
    "comment": ["comment.thread"],
    "comment.reply": ["comment"],
    "comment.resolve": ["comment.thread"],
    "stream.open": ["stream.opened"],
    "stream.append": ["stream.appended"],
    "stream.complete": ["published"],
    "stream.cancel": ["stream.cancelled"],
}

# Server frames that arrive without being asked for (or long after), with what they mean.
SERVER_PUSHES = {
    "welcome": "First frame on every accepted socket: who you are and the socket's limits.",
    "message": "A message of a subscribed channel topic, live (or, with `replay: true`, replayed after "
               "`subscribe` with `after`). In seq order per channel, without gaps or duplicates.",
    "event": "A story event on a `story:` topic; `event` names it, `data` is the changed object.",
    "typing": "Someone else started or stopped typing on a subscribed channel topic. Drop the indicator "
              "after `expires_in` seconds without a refresh.",
    "cursor": "Someone else's selection in a subscribed document, at `revision`.",
    "presence.diff": "Presence changes on a subscribed presence channel: joins, leaves, updates.",
    "doc.change": "A change applied to a subscribed document (yours too: match your `client_id`).",
    "unsubscribed": "With `reason: access_revoked`: you lost read access to the topic; nothing more comes on it.",
    "error": "Also unasked: `rate_limited` for a frame over the socket's frame rate, or before close 4429.",
    "notification": "A new notification of yours on `notifications:<you>`, with your unread count after it.",
    "notifications.read": "Notifications of yours marked read (by any of your clients), with the unread count.",
    "stream.started": "A stream opened on a subscribed channel topic; after a subscribe, one per stream still "
                      "open, with its text so far.",
    "stream.chunk": "Text appended to a stream; `offset` is the text's length before it (drop what you have).",
    "stream.ended": "A stream completed (`seq`: its message, whose `message` frame follows) or cancelled.",
}

SERVER_DESCRIPTIONS = {
    "welcome": "The first frame of an accepted socket.",
    "subscribed": "Answers `subscribe`: `last_seq` for a channel topic, `revision` for a document, `unread` "
                  "for your notifications topic, nothing more for a story topic.",
    "unsubscribed": "Answers `unsubscribe`; or, with `reason: access_revoked`, the server closed the topic.",
    "published": "Answers `publish`: the stored message's id and seq; `created: false` for a repeat.",
    "acked": "Answers `ack`: your read cursor of the channel, which never moves back.",
    "heartbeat_ack": "Answers `heartbeat`.",
    "pong": "Answers `ping`.",
    "error": "A frame was refused, with the REST error codes; the socket stays open. `topic` names the topic "
             "the frame was about; a `doc.push` conflict carries the current `revision`.",
    "message": "A message of a channel topic (the message object of the REST API).",
    "event": "A story event (`story:` topics).",
    "typing": "Another user's typing state on a channel topic.",
    "cursor": "Another user's selection in a document (UTF-16 positions).",
    "presence.state": "The whole presence of a presence channel, after `subscribe`: `members` present and "
                      "every agent of the story with its status.",
    "presence.diff": "Changes to a presence channel's presence.",
    "doc.state": "After `subscribe` to a document: its text, its revision and its limits.",
    "doc.change": "One change applied to a document, in revision order.",
    "doc.changes": "Answers `doc.pull`: the log after the asked revision.",
    "suggestion": "Answers `suggest` and `suggestion.decide` with an `id`: the suggestion, as REST shows it.",
    "suggestions.decided": "Answers `suggestion.decide` without an `id`: the ids decided, oldest first, and those "
                           "skipped (stale ones, on accept).",
    "comment.thread": "Answers `comment` and `comment.resolve`: the thread with every comment, as REST shows it.",
    "comment": "Answers `comment.reply`: the new comment.",
    "notification": "A new notification (as GET /api/notifications shows it) and the unread count after it.",
    "notifications.read": "Notifications marked read: their `ids`, or \"all\"; and the unread count after.",
    "stream.started": "A streaming message: its sender, msg_type, payload (without the streamed field), field, "
                      "and the text so far.",
    "stream.chunk": "The next text of a stream, at `offset` (characters).",
    "stream.ended": "A stream's end: completed (with its message's `seq`) or cancelled.",
    "stream.opened": "Answers `stream.open`: the stream's id (the final message's).",
    "stream.appended": "Answers `stream.append`: the text's length after it.",
    "stream.cancelled": "Answers `stream.cancel`.",
}

CLOSE_CODES = {
    "1008": "The client kept flooding frames past the frame rate (`rate_limited` errors first).",
    "1009": "A frame over max_frame_bytes.",
    "1011": "A server fault; reconnect and resume with `after`.",
    "4008": "Slow consumer: the client stopped reading. Reconnect and resume with `after`.",
    "4401": "Not authenticated, or the token was revoked or the user deactivated. Do not retry with the same token.",
    "4403": "A cookie-authenticated socket from a foreign origin (at the handshake).",
    "4429": "Too many sockets open for this user (`error` `rate_limited` first).",
}


# --- built-in message payloads ------------------------------------------------------------------------

# The JSON Schema of each built-in type's payload lives with the checks, in messaging/schemas.py
# (the OpenAPI schema and the MCP tool description are built from it too).
PAYLOAD_CHECKS = payloads.PAYLOAD_CHECKS
payload_schema = payloads.payload_schema


def _message_schema() -> dict:
    """The message object (REST, `message` frames, SSE data), from frames.SCHEMAS, with the fields
    it leaves open described and each built-in type's payload schema applied."""
    schema = copy.deepcopy(frames.SCHEMAS["message"]["properties"]["message"])
    properties = schema.setdefault("properties", {})
    for name, extra in {
        "id": _UUID,
        "story": {"type": "string", "description": "The story's slug"},
        "channel": {"type": "string", "description": "The channel's name"},
        "seq": {"type": "integer", "minimum": 1},
        "msg_type": {"type": "string", "pattern": MSG_TYPE_RE},
        "reply_to": {"anyOf": [_UUID, {"type": "null"}]},
        "correlation_id": {"anyOf": [{"type": "string", "maxLength": 128}, {"type": "null"}]},
        "audience": _audience(),
        "created_at": {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"},
        "relates_to": {"anyOf": [_UUID, {"type": "null"}],
                       "description": "For an edit, deletion or reaction: the message (same channel) it relates to"},
        "rel_type": {"description": "replace (msg_type edit), redact (delete), annotate (reaction), or null"},
        "edited_at": {"format": "date-time", "description": "Aggregated view: the latest edit's time, or null"},
        "deleted": {"description": "Aggregated view: deleted (its payload is then null)"},
        "reactions": {"description": "Aggregated view: reactions by key, in the order first given; `me`: whether "
                                     "the reader reacted (null in a live frame's `target`)"},
        "target": {"description": "Only in a relation's post answer and live frame: the related message's "
                                  "aggregated view after the change"},
    }.items():
        properties[name] = {**copy.deepcopy(extra), **properties.get(name, {})}
    schema["description"] = ("A message of the durable log: seq is per channel, 1, 2, 3... without gaps. "
                             "Built-in msg_types have a payload schema; any other type takes any object.")
    schema["allOf"] = _payload_conditions()
    return schema


# --- the document -----------------------------------------------------------------------------------

def _server_schema(type_: str) -> dict:
    schema = copy.deepcopy(frames.SCHEMAS[type_])
    schema["description"] = SERVER_DESCRIPTIONS.get(type_, f"The `{type_}` frame.")
    if type_ == "message":
        schema["properties"]["message"] = {"$ref": f"{_SCHEMA_REF}Message"}
    elif type_ == "event":
        schema["properties"]["event"] = {**schema["properties"]["event"], "enum": list(frames.STORY_EVENTS)}
    return schema


def _message(key: str, type_: str, summary: str, examples=None, *, correlated=False) -> dict:
    message = {"name": type_, "title": type_, "summary": summary, "contentType": "application/json",
               "payload": {"$ref": f"{_SCHEMA_REF}{key}"}}
    if correlated:
        message["correlationId"] = {"location": "$message.payload#/ref",
                                    "description": "A reply echoes the `ref` of the client frame it answers."}
    if examples:
        message["examples"] = [{"name": type_, "payload": example} for example in examples]
    return message


def _op_ref(channel: str, key: str) -> dict:
    return {"$ref": f"#/channels/{channel}/messages/{key}"}


def asyncapi_document() -> dict:
    """The AsyncAPI 3.0 document of `/ws/` and the SSE stream (a new dict on every call)."""
    ws_schemas, ws_messages = {}, {}
    client = client_schemas()
    for type_, schema in client.items():
        key = f"client.{type_}"
        ws_schemas[key] = schema
        ws_messages[key] = _message(key, type_, schema["description"], [CLIENT_EXAMPLES[type_]], correlated=True)
    for type_ in frames.SCHEMAS:
        key = f"server.{type_}"
        ws_schemas[key] = _server_schema(type_)
        ws_messages[key] = _message(key, type_, ws_schemas[key]["description"], correlated=True)

    operations = {}
    for type_ in client:
        replies = [*CLIENT_REPLIES.get(type_, []), "error"]
        operations[f"receive.{type_}"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/{WS_CHANNEL}"},
            "title": f"{type_} (client frame)", "summary": client[type_]["description"],
            "messages": [_op_ref(WS_CHANNEL, f"client.{type_}")],
            "reply": {"channel": {"$ref": f"#/channels/{WS_CHANNEL}"},
                      "messages": [_op_ref(WS_CHANNEL, f"server.{reply}") for reply in replies]},
        }
    replied = {reply for replies in CLIENT_REPLIES.values() for reply in replies}
    for type_ in frames.SCHEMAS:
        if type_ in SERVER_PUSHES or type_ not in replied:
            operations[f"send.{type_}"] = {
                "action": "send", "channel": {"$ref": f"#/channels/{WS_CHANNEL}"},
                "title": f"{type_} (pushed by the server)",
                "summary": SERVER_PUSHES.get(type_, SERVER_DESCRIPTIONS.get(type_, f"The `{type_}` frame.")),
                "messages": [_op_ref(WS_CHANNEL, f"server.{type_}")],
            }
    operations["send.sse.message"] = {
        "action": "send", "channel": {"$ref": f"#/channels/{SSE_CHANNEL}"},
        "title": "A message on the event stream",
        "summary": "Replay (with `after` or `Last-Event-ID`), then live messages of the channel, in seq order.",
        "messages": [_op_ref(SSE_CHANNEL, "message")],
        "bindings": {"http": {"method": "GET", "bindingVersion": "0.3.0", "query": {
            "type": "object", "properties": {
                "after": {**_NAT, "description": "Replay every message with seq > after (else header "
                                                 "Last-Event-ID; without either the stream starts live)"},
                "type": {"type": "string", "description": "Only these msg_types (comma-separated)"}}}}},
    }

    schemas = {"Message": _message_schema(),
               **{f"payload.{msg_type}": payload_schema(msg_type) for msg_type in payloads.BUILT_IN_TYPES},
               **ws_schemas}
    messages = {**ws_messages,
                "sse.message": {
                    "name": "message", "title": "message (SSE event)", "contentType": "application/json",
                    "summary": "One SSE event per message: `id: <seq>`, `event: message`, `data: <the message "
                               "object as JSON, on one line>`.",
                    "payload": {"$ref": f"{_SCHEMA_REF}Message"}}}
    bearer = {"$ref": "#/components/securitySchemes/bearer"}
    session = {"$ref": "#/components/securitySchemes/session"}
    host = {"host": {"default": "127.0.0.1:8000", "description": "The Mythline server (behind TLS in production: "
                                                                 "wss:// and https://)"}}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Mythline real-time API",
            "version": "1.0.0",
            "description": (
                "The WebSocket `/ws/` (one socket, many topics) and the Server-Sent Events stream of a channel. "
                "This document describes the server: operations with action `receive` are frames a client "
                "sends (with the frames that answer them as `reply`), those with action `send` are frames the "
                "server pushes. Every server frame's schema is the table the server is tested against "
                "(messaging/frames.py). Prose, REST and MCP: docs/protocol.md; the REST API's OpenAPI "
                "document: /api/schema."),
        },
        "defaultContentType": "application/json",
        "servers": {
            "ws": {"host": "{host}", "protocol": "ws", "title": "WebSocket", "variables": copy.deepcopy(host),
                   "description": "WebSocket handshake with `Authorization: Bearer <token>`, or a browser session "
                                  "cookie from an allowed origin.",
                   "security": [bearer, session]},
            "http": {"host": "{host}", "protocol": "http", "title": "HTTP", "variables": copy.deepcopy(host),
                     "description": "Server-Sent Events over HTTP, with a bearer token or a session.",
                     "security": [bearer, session]},
        },
        "channels": {
            WS_CHANNEL: {
                "address": "/ws/",
                "title": "The WebSocket",
                "description": (
                    "One socket per client carries many topics: `channel:<story>/<channel>` (messages, typing, "
                    "presence on presence channels), `story:<story>` (story events), `doc:<story>/<doc>` "
                    "(co-editing, cursors), `notifications:<your username>` (your notifications). Frames are JSON text objects with a `type`; a client frame may "
                    "carry a string `ref`, echoed by every reply to it. A refused frame gets `error` and the "
                    "socket stays open. Close codes: see x-close-codes."),
                "servers": [{"$ref": "#/servers/ws"}],
                "messages": {key: {"$ref": f"{_MESSAGE_REF}{key}"} for key in ws_messages},
                "bindings": {"ws": {"method": "GET", "bindingVersion": "0.1.0", "headers": {
                    "type": "object", "properties": {
                        "Authorization": {"type": "string", "pattern": "^Bearer ", "description": "Bearer <token>"},
                        "Origin": {"type": "string", "description": "Checked for cookie (session) sockets"}}}}},
                "x-close-codes": dict(CLOSE_CODES),
                "x-error-codes": list(frames.ERROR_CODES),
                "x-story-events": list(frames.STORY_EVENTS),
                "x-limits": {
                    "max_frame_bytes": settings.MYTHLINE_WS_MAX_FRAME_BYTES,
                    "frame_rate_per_second": settings.MYTHLINE_WS_FRAME_RATE,
                    "frame_burst": settings.MYTHLINE_WS_FRAME_BURST,
                    "refused_frames_before_close": settings.MYTHLINE_WS_FLOOD_CLOSE_AFTER,
                    "send_buffer_bytes": settings.MYTHLINE_WS_SEND_BUFFER_BYTES,
                    "max_sockets_per_user": settings.MYTHLINE_MAX_SOCKETS_PER_USER,
                    "max_subscriptions_per_socket": settings.MYTHLINE_MAX_SUBSCRIPTIONS_PER_SOCKET,
                    "heartbeat_seconds": settings.MYTHLINE_HEARTBEAT_SECONDS,
                    "max_payload_bytes": settings.MYTHLINE_MAX_PAYLOAD_BYTES,
                    "doc_max_insert_chars": settings.MYTHLINE_DOC_MAX_INSERT_CHARS,
                    "doc_max_chars": settings.MYTHLINE_DOC_MAX_CHARS,
                    "doc_max_push_changes": settings.MYTHLINE_DOC_MAX_PUSH_CHANGES,
                },
            },
            SSE_CHANNEL: {
                "address": "/api/stories/{story}/channels/{channel}/events",
                "title": "A channel's event stream (SSE)",
                "description": (
                    "`GET` with `Accept: text/event-stream`. First `retry: 2000` and a comment, then the replay "
                    "(with `?after=N` or `Last-Event-ID: N`), then live messages; a `: keep-alive` comment "
                    f"every {settings.MYTHLINE_SSE_KEEPALIVE_SECONDS:g} s. Errors before the stream starts are "
                    "JSON with the REST codes (401, 404, 429 with Retry-After...). The stream ends when the "
                    "caller loses read access or its token is revoked; reconnect with Last-Event-ID. Streaming "
                    "messages come as events `stream.started` (also one per open stream after the replay), "
                    "`stream.chunk` and `stream.ended`, without an `id:` line; their data is the socket frame "
                    "of that name without `type` and `topic`."),
                "servers": [{"$ref": "#/servers/http"}],
                "parameters": {"story": {"description": "The story's slug"},
                               "channel": {"description": "The channel's name"}},
                "messages": {"message": {"$ref": f"{_MESSAGE_REF}sse.message"}},
            },
        },
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "`Authorization: Bearer <token>` (tokens from `manage.py create_agent` "
                                          "or `issue_token`)"},
                "session": {"type": "httpApiKey", "name": settings.SESSION_COOKIE_NAME, "in": "cookie",
                            "description": "The browser's Django session (sign in at /accounts/login/)"},
            },
        },
    }


@require_safe
def asyncapi_view(request):
    """`GET /api/asyncapi.json`: public, like the OpenAPI schema."""
    return JsonResponse(asyncapi_document(), json_dumps_params={"ensure_ascii": False})
