"""The access matrix of every surface, generated from one table: `SURFACES` (docs/protocol.md 1.3).

Each row is one way to touch a story's resources: a REST endpoint, a socket frame naming a story
topic, the SSE stream, an MCP tool. For each actor it says what must happen: `ok`, or the exact
refusal code. REST answers with the code's status and error body; the socket with an `error`
frame carrying the code and the request's `ref`; SSE with the HTTP status and the JSON error body
before any stream; MCP with a tool result `isError: true` carrying the code.

Actors: the story `owner` (olga7); an `editor` (eddie7, who created the private channel `cabal`);
a `viewer` (vera7); an `outsider` (otto7: signed in, in no story); the inbox's `agent` (ada7, its
inbox `inbox.ada7`); another agent, `agent2` (bart7, a member of `cabal`, with its own inbox).
Targets: the private story `vault` on every surface and, where an answer differs, the public story
`agora` (the same cast; the outsider is not in it either).

Zero leaks: every answer, allowed or refused, is searched for what the actor may not know: the
texts of the channels it may not read (each text is a marker: VAULT-CABAL, AGORA-INBOX-ADA...),
the names of those channels, and for the outsider the private story's slug; a refusal about the
private story must not name its people to the outsider either. A marker the request itself
carries is not counted (an error may echo the topic the caller typed). The cabal and inbox
messages are replies to the general root, so a thread read shows whether they leak through it; a
post replying to a message the sender may not read gets `invalid`, as for an unknown id; and
`story:` subscribers hear of a change to cabal only if they read it.

How it runs: one committed world per module (flushed at the end). REST cells go through the DRF
client, each in a savepoint rolled back after it. Socket, SSE and MCP cells run once per module
against one live server, booted in the background while the REST cells run (one socket per
actor, actors in turn; then SSE streams and one MCP session per actor, actors at once); each
cell is then asserted as a test of its own from the recorded answer. Frames that need a subscription
(`typing`, `doc.*`, `cursor`) come after the same socket's `subscribe` cells: an actor whose
subscribe was refused gets `invalid` (not subscribed), the same answer as for a topic that does
not exist.
"""
import asyncio
import json
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from django.core.management import call_command
from django.test.utils import override_settings
from django.urls import resolve
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from rest_framework.test import APIClient
from websockets.asyncio.client import connect

from accounts.services import token_issue
from agents.services import agent_create
from messaging.policies import access_channel
from messaging.services import channel_create, member_add, message_post
from bible.services import entry_create, progression_add
from outline.services import scene_create
from versions.services import version_create
from suggestions.services import suggestion_create
from comments.services import thread_create
from streaming.services import stream_append, stream_start
from writers.services import crew_add
from stories.documents import document_edit
from stories.models import Document, Participant
from stories.services import invite_create, participant_add, story_create
from tests.live import LiveServer, frames_until

pytestmark = pytest.mark.django_db

ACTORS = ("owner", "editor", "viewer", "outsider", "agent", "agent2")
USERNAMES = {"owner": "olga7", "editor": "eddie7", "viewer": "vera7", "outsider": "otto7", "agent": "ada7",
             "agent2": "bart7"}
PREFIX = {"vault": "VAULT", "agora": "AGORA"}
INBOX, INBOX2 = "inbox.ada7", "inbox.bart7"
FIRST_TEXT = {"general": "GENERAL", "cabal": "CABAL", INBOX: "INBOX-ADA", INBOX2: "INBOX-BART"}
STATUS = {"invalid": 400, "forbidden": 403, "not_found": 404}


# --- who may: each actor named exactly once ----------------------------------------------------

def who(*, ok="", forbidden="", not_found="", invalid="") -> dict:
    out = {}
    for outcome, names in (("ok", ok), ("forbidden", forbidden), ("not_found", not_found), ("invalid", invalid)):
        for name in names.split():
            assert name in ACTORS and name not in out, name
            out[name] = outcome
    assert set(out) == set(ACTORS), sorted(set(ACTORS) - set(out))
    return out


EVERYONE = who(ok="owner editor viewer outsider agent agent2")
READ_STORY = who(ok="owner editor viewer agent agent2", not_found="outsider")
WRITE_STORY = who(ok="owner editor agent agent2", forbidden="viewer", not_found="outsider")
OWNER_ONLY = who(ok="owner", forbidden="editor viewer agent agent2", not_found="outsider")
# The writers' room: humans decide (the owner and human editors pause it; agents never).
HUMAN_EDITORS = who(ok="owner editor", forbidden="viewer agent agent2", not_found="outsider")
AGENTS_ONLY = who(ok="agent agent2", forbidden="owner editor viewer outsider")
NO_WEBHOOK = who(not_found="agent agent2", forbidden="owner editor viewer outsider")
# The private channel: its members (eddie7 its creator, bart7) and the story owner; nobody else knows of it.
READ_CABAL = who(ok="owner editor agent2", not_found="viewer outsider agent")
MANAGE_CABAL = who(ok="owner editor", forbidden="agent2", not_found="viewer outsider agent")
# An inbox: the agent and the story owner read it; editors post to it, so they know it (403).
READ_INBOX = who(ok="owner agent", forbidden="editor viewer agent2", not_found="outsider")
# The public story: everyone reads; outsiders and viewers do not write.
PUBLIC_WRITE = who(ok="owner editor agent agent2", forbidden="viewer outsider")
READ = {"general": READ_STORY, "cabal": READ_CABAL, INBOX: READ_INBOX}
POST = {"general": WRITE_STORY, "cabal": READ_CABAL, INBOX: WRITE_STORY}


# A post in vault/general replying to a message the sender may not read: the same `invalid` as
# for an id that does not exist (it must not tell whether the message exists, nor show it).
REPLY_TO = {
    "cabal": who(ok="owner editor agent2", invalid="agent", forbidden="viewer", not_found="outsider"),
    INBOX: who(ok="owner agent", invalid="editor agent2", forbidden="viewer", not_found="outsider"),
}


def unknown(rule: dict) -> dict:
    """A message one may not read is not known of: 404, also where its channel answers 403."""
    return {a: "not_found" if o == "forbidden" else o for a, o in rule.items()}


def after_subscribe(subscribe: dict, rule: dict) -> dict:
    """A frame that needs the subscription: `invalid` (not subscribed) where the subscribe was refused."""
    return {a: rule[a] if subscribe[a] == "ok" else "invalid" for a in ACTORS}


# --- the table ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    surface: str  # rest | ws | ws-events | sse | mcp
    label: str
    expect: dict  # actor -> "ok" | error code (ws-events: "delivered" | "withheld")
    request: object  # rest: (method, path, body); ws: frame; sse: (story, channel); mcp: (tool, arguments)
    sees: str = ""  # an allowed answer shows this (the probe is not blind)
    status: int = 200  # rest: the status of an allowed answer
    story: str = "vault"  # the story the cell is about ("" for none): refusals about vault name nobody
    reveals: tuple = ()  # markers an allowed answer may show (an invite link names its story)


def rest(method, path, expect, body=None, *, status=None, sees="", story="vault", reveals=(), label=""):
    status = status or {"POST": 201, "DELETE": 204}.get(method, 200)
    label = label or f"{method} {path}"
    return Row("rest", label, expect, (method, path, body), sees=sees, status=status, story=story, reveals=reveals)


def rest_rows() -> list[Row]:
    v = "/api/stories/vault"
    rows = [
        rest("GET", "/api/stories", EVERYONE, story=""),
        rest("POST", "/api/stories", EVERYONE, {"slug": "fresh7", "title": "Fresh"}, story=""),
        rest("GET", "/api/inbox", EVERYONE, story=""),
        rest("GET", "/api/activity", EVERYONE, story=""),
        rest("PUT", "/api/agents/me/status", AGENTS_ONLY, {"status": "working"}, story=""),
        # Webhooks: agents only, each its own; none is registered in this world (404 until a PUT).
        rest("PUT", "/api/agents/me/webhook", AGENTS_ONLY, {"url": "https://93.184.216.34/hook"}, status=201,
             story=""),
        rest("GET", "/api/agents/me/webhook", NO_WEBHOOK, story=""),
        rest("POST", "/api/agents/me/webhook/rotate", NO_WEBHOOK, story=""),
        rest("GET", "/api/agents/me/webhook/deliveries", NO_WEBHOOK, story=""),
        rest("DELETE", "/api/agents/me/webhook", AGENTS_ONLY, story=""),
        rest("GET", "/api/activity?story=vault", READ_STORY, sees="VAULT-GENERAL"),
        # Search: what the caller reads and nothing else (every answer is checked for leaks).
        rest("GET", "/api/search?q=vault", EVERYONE, story=""),
        rest("GET", "/api/search?q=vault&story=vault", READ_STORY, sees="VAULT-GENERAL"),
        rest("GET", "/api/search?q=vault&story=vault&channel=cabal", READ_CABAL, sees="VAULT-CABAL"),
        rest("GET", f"/api/search?q=vault&story=vault&channel={INBOX}", READ_INBOX, sees="VAULT-INBOX-ADA"),
        rest("GET", "/api/search?q=agora&story=agora", EVERYONE, sees="AGORA-GENERAL", story="agora"),
        # Notifications: each caller's own feed (every answer is checked for leaks, excerpts included).
        rest("GET", "/api/notifications", EVERYONE, story=""),
        rest("POST", "/api/notifications/read", EVERYONE, {"all": True}, status=200, story=""),
        rest("GET", v, READ_STORY, sees="VAULT-TITLE"),
        rest("PATCH", v, OWNER_ONLY, {"title": "Renamed"}),
        rest("POST", f"{v}/join", READ_STORY, status=200),  # already in: 200, the role unchanged
        rest("GET", f"{v}/participants", READ_STORY, sees="vera7"),
        rest("POST", f"{v}/participants", OWNER_ONLY, {"username": "nina7", "role": "viewer"}),
        rest("DELETE", f"{v}/participants/vera7",  # the owner, or vera7 leaving
             who(ok="owner viewer", forbidden="editor agent agent2", not_found="outsider")),
        rest("GET", f"{v}/export", OWNER_ONLY, sees="VAULT-CABAL"),
        rest("GET", f"{v}/invites", OWNER_ONLY),
        rest("POST", f"{v}/invites", OWNER_ONLY, {"role": "viewer", "expires_in_hours": 2}),
        rest("DELETE", f"{v}/invites/{{vault.invite}}", OWNER_ONLY),
        # The link is the key: any signed-in human (201 for a newcomer, 200 for one already in); no agent.
        rest("POST", "/api/invites/{vault.invite-token}/accept", who(ok="owner editor viewer outsider",
                                                                     forbidden="agent agent2"),
             status=200, reveals=("vault",)),
        rest("GET", f"{v}/presence", READ_STORY),
        rest("POST", f"{v}/route", WRITE_STORY, {"msg_type": "narration", "payload": {"text": "routed"}}),
        rest("GET", f"{v}/channels", READ_STORY, sees="general"),
        rest("POST", f"{v}/channels", WRITE_STORY, {"name": "fresh", "kind": "public"}),
        rest("GET", f"{v}/documents", READ_STORY, sees="main"),
        rest("POST", f"{v}/documents", WRITE_STORY, {"name": "draft", "text": "a draft"}),
        rest("GET", f"{v}/documents/main", READ_STORY, sees="VAULT-DOC"),
        rest("GET", f"{v}/documents/main/ops?after=0", READ_STORY, sees="olga7"),
        rest("GET", f"{v}/documents/main/export?format=md", READ_STORY, sees="VAULT-DOC"),
        rest("GET", f"{v}/export/book?format=txt", READ_STORY, sees="VAULT-DOC"),
        rest("POST", f"{v}/documents/main/ops", WRITE_STORY, {"append": " more"}, status=200),
        # Document versions (versions/): readers list and compare, editors (agents included) change them.
        rest("GET", f"{v}/documents/main/versions", READ_STORY, sees="VAULT-VERSION"),
        rest("POST", f"{v}/documents/main/versions", WRITE_STORY, {"name": "A version"}),
        rest("GET", f"{v}/documents/main/versions/{{vault.version}}", READ_STORY, sees="VAULT-VERSION"),
        rest("PATCH", f"{v}/documents/main/versions/{{vault.version}}", WRITE_STORY, {"note": "changed"}),
        rest("DELETE", f"{v}/documents/main/versions/{{vault.version}}", WRITE_STORY),
        rest("GET", f"{v}/documents/main/compare?from=0", READ_STORY, sees="VAULT-DOC"),
        rest("POST", f"{v}/documents/main/restore", WRITE_STORY, {"revision": 0}, status=200),
        rest("GET", f"{v}/documents/main/suggestions", READ_STORY, sees="VAULT-DOC"),
        rest("POST", f"{v}/documents/main/suggestions", WRITE_STORY, {"append": " more", "note": "why"}),
        rest("GET", f"{v}/documents/main/suggestions/{{vault.suggestion}}", READ_STORY, sees="VAULT-DOC"),
        rest("POST", f"{v}/documents/main/suggestions/{{vault.suggestion}}/accept", HUMAN_EDITORS, {}, status=200),
        rest("POST", f"{v}/documents/main/suggestions/{{vault.suggestion}}/reject", HUMAN_EDITORS, {}, status=200),
        rest("POST", f"{v}/documents/main/suggestions/decide", HUMAN_EDITORS, {"decision": "reject"}, status=200),
        # `main` is no fork: writers are told so (invalid), the others as for any write.
        rest("POST", f"{v}/documents/main/merge", who(invalid="owner editor agent agent2", forbidden="viewer",
                                                      not_found="outsider"), {}),
        # Comments (comments/): readers read them, writers (agents too) comment, reply and resolve.
        rest("GET", f"{v}/documents/main/comments", READ_STORY, sees="VAULT-COMMENT"),
        rest("POST", f"{v}/documents/main/comments", WRITE_STORY, {"from": 0, "to": 0, "body": "a note"}),
        rest("GET", f"{v}/documents/main/comments/{{vault.comment}}", READ_STORY, sees="VAULT-COMMENT"),
        rest("POST", f"{v}/documents/main/comments/{{vault.comment}}/replies", WRITE_STORY, {"body": "a reply"}),
        rest("POST", f"{v}/documents/main/comments/{{vault.comment}}/resolve", WRITE_STORY, {"resolved": True},
             status=200),
        rest("GET", f"{v}/crew", READ_STORY, sees="narrator-"),
        rest("POST", f"{v}/crew", OWNER_ONLY, {"roles": ["critic"]}, status=200),  # it has a crew: roles changed
        rest("PATCH", f"{v}/crew", HUMAN_EDITORS, {"paused": True}),
        rest("DELETE", f"{v}/crew", OWNER_ONLY, status=204),
        rest("GET", f"{v}/outline", READ_STORY, sees="VAULT-SCENE"),
        rest("POST", f"{v}/outline", WRITE_STORY, {"title": "A scene"}),
        rest("GET", f"{v}/outline/{{vault.scene}}", READ_STORY, sees="VAULT-SCENE"),
        rest("PATCH", f"{v}/outline/{{vault.scene}}", WRITE_STORY, {"status": "drafting"}),
        rest("POST", f"{v}/outline/{{vault.scene}}/move", WRITE_STORY, {"position": 1}, status=200),
        rest("DELETE", f"{v}/outline/{{vault.scene}}", WRITE_STORY),
        rest("GET", f"{v}/bible", READ_STORY, sees="VAULT-BIBLE"),
        rest("POST", f"{v}/bible", WRITE_STORY, {"kind": "lore", "name": "A rule"}),
        rest("GET", f"{v}/bible/vault-bible", READ_STORY, sees="VAULT-BIBLE"),
        rest("PATCH", f"{v}/bible/vault-bible", WRITE_STORY, {"description": "changed"}),
        rest("DELETE", f"{v}/bible/vault-bible", WRITE_STORY),
        rest("POST", f"{v}/bible/vault-bible/progressions", WRITE_STORY, {"from_scene": 5, "description": "later"}),
        rest("DELETE", f"{v}/bible/vault-bible/progressions/{{vault.progression}}", WRITE_STORY),
    ]
    manage = {"general": OWNER_ONLY, "cabal": MANAGE_CABAL, INBOX: READ_INBOX}
    add_member = {  # {"username": "vera7"}; public channels and inboxes take no members (400)
        "general": who(invalid="owner", forbidden="editor viewer agent agent2", not_found="outsider"),
        "cabal": MANAGE_CABAL,
        INBOX: who(invalid="owner agent", forbidden="editor viewer agent2", not_found="outsider"),
    }
    remove_member = {  # managers, or the member leaving; bart7 is in cabal only, ada7 stays in its inbox
        "general": ("bart7", who(not_found="owner outsider agent2", forbidden="editor viewer agent")),
        "cabal": ("bart7", who(ok="owner editor agent2", not_found="viewer outsider agent")),
        INBOX: ("ada7", who(invalid="owner agent", forbidden="editor viewer agent2", not_found="outsider")),
    }
    for channel in ("general", "cabal", INBOX):
        c = f"{v}/channels/{channel}"
        text = f"VAULT-{FIRST_TEXT[channel]}"
        target, remove = remove_member[channel]
        rows += [
            rest("GET", c, READ[channel], sees=channel),
            rest("PATCH", c, manage[channel], {"topic": "New topic"}),
            rest("GET", f"{c}/members", READ[channel]),
            rest("POST", f"{c}/members", add_member[channel], {"username": "vera7"}),
            rest("DELETE", f"{c}/members/{target}", remove),
            rest("GET", f"{c}/messages?after=0", READ[channel], sees=text),
            rest("POST", f"{c}/messages", POST[channel], {"msg_type": "text", "payload": {"text": "hello"}}),
            rest("POST", f"{c}/messages/batch", POST[channel],
                 {"messages": [{"msg_type": "text", "payload": {"text": "hello in a batch"}}]}, status=200),
            rest("POST", f"{c}/ack", READ[channel], {"seq": 1}, status=200),
            rest("GET", f"/api/messages/{{vault.{channel}}}", unknown(READ[channel]), sees=text),
            rest("GET", f"/api/messages/{{vault.{channel}}}/thread", unknown(READ[channel]), sees=text),
            rest("GET", f"{c}/streams", READ[channel], sees=STREAM_TEXT[channel]),
            rest("POST", f"{c}/streams", POST[channel], {"msg_type": "narration"}),
        ]
    # Streams: only the opener (eddie7) writes; the channel's managers cancel; who may not read the
    # channel does not know the stream (404).
    general_writer = who(ok="editor", forbidden="owner viewer agent agent2", not_found="outsider")
    cabal_writer = who(ok="editor", forbidden="owner agent2", not_found="viewer outsider agent")
    for sid, writer, cancel, text in (
            ("vault.stream", general_writer, who(ok="owner editor", forbidden="viewer agent agent2",
                                                 not_found="outsider"), "VAULT-STREAM"),
            ("vault.cabal-stream", cabal_writer, MANAGE_CABAL, "VAULT-CABAL-STREAM")):
        rows += [
            rest("POST", f"/api/streams/{{{sid}}}/append", writer, {"text": " more"}, status=200),
            rest("POST", f"/api/streams/{{{sid}}}/complete", writer, sees=text),
            rest("POST", f"/api/streams/{{{sid}}}/cancel", cancel, status=200),
        ]
    for channel, rule in REPLY_TO.items():
        rows.append(rest("POST", f"{v}/channels/general/messages", rule,
                         {"msg_type": "text", "payload": {"text": "re"}, "reply_to": f"{{vault.{channel}}}"},
                         label=f"POST {v}/channels/general/messages reply_to={channel}"))
    a = "/api/stories/agora"
    rows += [
        rest("GET", a, EVERYONE, sees="AGORA-TITLE", story="agora"),
        rest("POST", f"{a}/join", EVERYONE, status=200, story="agora"),  # the outsider joins: 201
        rest("GET", f"{a}/channels/general/messages?after=0", EVERYONE, sees="AGORA-GENERAL", story="agora"),
        rest("POST", f"{a}/channels/general/messages", PUBLIC_WRITE, {"msg_type": "text", "payload": {"text": "hi"}},
             story="agora"),
        rest("GET", f"{a}/channels/cabal/messages?after=0", READ_CABAL, sees="AGORA-CABAL", story="agora"),
        rest("GET", f"{a}/channels/{INBOX}/messages?after=0", READ_INBOX, sees="AGORA-INBOX-ADA", story="agora"),
        rest("GET", "/api/messages/{agora.general}/thread", EVERYONE, sees="AGORA-GENERAL", story="agora"),
        rest("POST", f"{a}/documents/main/ops", PUBLIC_WRITE, {"append": " more"}, status=200, story="agora"),
        rest("GET", f"{a}/documents/main/compare?from=0", EVERYONE, sees="AGORA-DOC", story="agora"),
        rest("POST", f"{a}/documents/main/versions", PUBLIC_WRITE, {"name": "A version"}, story="agora"),
        rest("POST", f"{a}/documents/main/restore", PUBLIC_WRITE, {"revision": 0}, status=200, story="agora"),
        rest("GET", f"{a}/outline", EVERYONE, sees="AGORA-SCENE", story="agora"),
        rest("POST", f"{a}/outline", PUBLIC_WRITE, {"title": "A scene"}, story="agora"),
        rest("GET", f"{a}/bible", EVERYONE, sees="AGORA-BIBLE", story="agora"),
        rest("POST", f"{a}/bible", PUBLIC_WRITE, {"kind": "lore", "name": "A rule"}, story="agora"),
    ]
    return rows


STREAM_TEXT = {"general": "VAULT-STREAM", "cabal": "VAULT-CABAL-STREAM", INBOX: ""}
REST_STATUS_OVERRIDE = {  # (label, actor) -> the status of an allowed answer, where it differs from the row's
    ("POST /api/invites/{vault.invite-token}/accept", "outsider"): 201,
    ("POST /api/stories/agora/join", "outsider"): 201,
}


def ws(frame_type, topic, expect, sees="", label="", **fields):
    story = topic.split(":", 1)[1].split("/")[0]
    return Row("ws", label or f"{frame_type} {topic}", expect, {"type": frame_type, "topic": topic, **fields},
               sees=sees, story=story)


def ws_rows() -> list[Row]:
    subscribe = {
        "channel:vault/general": READ_STORY, "channel:vault/cabal": READ_CABAL, f"channel:vault/{INBOX}": READ_INBOX,
        "channel:vault/room": READ_STORY, "story:vault": READ_STORY, "doc:vault/main": READ_STORY,
        "channel:agora/general": EVERYONE, "channel:agora/cabal": READ_CABAL, f"channel:agora/{INBOX}": READ_INBOX,
        "doc:agora/main": EVERYONE,
    }
    sees = {"channel:vault/general": "VAULT-GENERAL", "channel:vault/cabal": "VAULT-CABAL",
            f"channel:vault/{INBOX}": "VAULT-INBOX-ADA", "doc:vault/main": "VAULT-DOC",
            "channel:agora/general": "AGORA-GENERAL", "channel:agora/cabal": "AGORA-CABAL",
            f"channel:agora/{INBOX}": "AGORA-INBOX-ADA", "doc:agora/main": "AGORA-DOC"}
    # Subscribes first (with `after: 0`: the replay is part of the answer), then the other frames.
    rows = [ws("subscribe", topic, rule, sees.get(topic, ""), **({"after": 0} if topic.startswith("channel:") else {}))
            for topic, rule in subscribe.items()]
    for channel in ("general", "cabal", INBOX):
        topic = f"channel:vault/{channel}"
        rows += [
            ws("publish", topic, POST[channel], msg_type="text", payload={"text": "published"}),
            ws("ack", topic, READ[channel], seq=1),
            ws("typing", topic, after_subscribe(subscribe[topic], POST[channel]), typing=True),
            ws("stream.open", topic, POST[channel], msg_type="narration"),
        ]
    # olga7's streams in general: she alone writes them (and, as its manager, cancels).
    rows += [Row("ws", f"{kind} {{{sid}}}", OWNER_ONLY, {"type": kind, "id": f"{{{sid}}}", **extra})
             for kind, sid, extra in (("stream.append", "vault.ws-stream", {"text": " ws"}),
                                      ("stream.complete", "vault.ws-stream", {}),
                                      ("stream.cancel", "vault.ws-cancel", {}))]
    for channel, rule in REPLY_TO.items():
        rows.append(ws("publish", "channel:vault/general", rule, msg_type="text", payload={"text": "re"},
                       reply_to=f"{{vault.{channel}}}", label=f"publish channel:vault/general reply_to={channel}"))
    doc = "doc:vault/main"
    rows += [
        ws("doc.pull", doc, after_subscribe(subscribe[doc], READ_STORY), sees="olga7", after=0),
        ws("doc.push", doc, after_subscribe(subscribe[doc], WRITE_STORY)),
        ws("cursor", doc, after_subscribe(subscribe[doc], WRITE_STORY), anchor=0),
        # Suggestions and comments over the socket: the REST rules (suggestions/frames.py, comments/frames.py).
        ws("suggest", doc, after_subscribe(subscribe[doc], WRITE_STORY), note="why"),
        ws("suggestion.decide", doc, after_subscribe(subscribe[doc], HUMAN_EDITORS), decision="reject"),
        ws("comment", doc, after_subscribe(subscribe[doc], WRITE_STORY), body="a note", **{"from": 0, "to": 0}),
        ws("comment.reply", doc, after_subscribe(subscribe[doc], WRITE_STORY), thread="{int:vault.comment}",
           body="a reply"),
        ws("comment.resolve", doc, after_subscribe(subscribe[doc], WRITE_STORY), thread="{int:vault.comment}",
           resolved=True),
        # Notifications: one's own feed only (notifications:<username>), whatever one's role.
        Row("ws", "subscribe notifications:olga7", who(ok="owner", forbidden="editor viewer outsider agent agent2"),
            {"type": "subscribe", "topic": "notifications:olga7"}, story=""),
        ws("publish", "channel:agora/general", PUBLIC_WRITE, msg_type="text", payload={"text": "published"}),
        ws("typing", "channel:agora/general", PUBLIC_WRITE, typing=True),
        ws("doc.push", "doc:agora/main", PUBLIC_WRITE),
        ws("cursor", "doc:agora/main", PUBLIC_WRITE, anchor=0),
    ]
    return rows


# Frames that name no story resource (connection-level), outside the matrix.
NOT_STORY_FRAMES = {"ping", "heartbeat", "unsubscribe"}
# What an allowed frame is answered with (typing and cursor: nothing, and no error).
REPLY = {"subscribe": "subscribed", "publish": "published", "ack": "acked", "doc.pull": "doc.changes",
         "doc.push": "doc.change", "suggest": "suggestion", "suggestion.decide": "suggestions.decided",
         "comment": "comment.thread", "comment.reply": "comment", "comment.resolve": "comment.thread",
         "stream.open": "stream.opened", "stream.append": "stream.appended", "stream.complete": "published",
         "stream.cancel": "stream.cancelled"}


def story_event_rows() -> list[Row]:
    """Story events pushed to `story:` subscribers while cabal's creator changes its topic (in both
    stories): only those who read cabal get `channel.updated`; the rest see nothing of it. The
    outsider holds `story:agora` only (its subscribe to `story:vault` is a cell above)."""
    expect = {actor: "delivered" if READ_CABAL[actor] == "ok" else "withheld" for actor in ACTORS}
    return [Row("ws-events", "story events while cabal's topic changes (PATCH by its creator)", expect,
                {"cabal_topic": "CABAL-TOPIC-2"}, sees="CABAL-TOPIC-2")]


def sse_rows() -> list[Row]:
    rows = []
    for story in ("vault", "agora"):
        for channel, rule in (("general", READ_STORY if story == "vault" else EVERYONE), ("cabal", READ_CABAL),
                              (INBOX, READ_INBOX)):
            rows.append(Row("sse", f"GET /api/stories/{story}/channels/{channel}/events?after=0", rule,
                            (story, channel), sees=f"{PREFIX[story]}-{FIRST_TEXT[channel]}", story=story))
    return rows


def mcp(tool, expect, sees="", on="vault", **arguments):
    """`on`: the story the cell is about (for the leak check); the tool's arguments follow."""
    label = f"{tool}({', '.join(f'{k}={v}' for k, v in arguments.items())})"
    return Row("mcp", label, expect, (tool, arguments), sees=sees, story=on)


def mcp_rows() -> list[Row]:
    rows = []
    for channel in ("general", "cabal", INBOX):
        text = f"VAULT-{FIRST_TEXT[channel]}"
        rows += [
            mcp("post_message", POST[channel], story="vault", channel=channel, msg_type="text",
                payload={"text": f"mcp {channel}"}),
            mcp("post_messages", POST[channel], story="vault", channel=channel,
                messages=[{"msg_type": "text", "payload": {"text": f"mcp batch {channel}"}}]),
            mcp("read_messages", READ[channel], text, story="vault", channel=channel, after=0),
            mcp("get_channel_history", READ[channel], text, story="vault", channel=channel),
            mcp("get_conversation_thread", unknown(READ[channel]), text, message_id=f"{{vault.{channel}}}"),
        ]
    for channel, rule in REPLY_TO.items():
        rows.append(mcp("post_message", rule, story="vault", channel="general", msg_type="text",
                        payload={"text": "re"}, reply_to=f"{{vault.{channel}}}"))
    # Relations (edits, deletions, reactions): post rights in the channel, and the target readable
    # (an inbox's message is not known to an editor who may post there: 404 as for any unreadable one).
    # Editing is the author's (olga7's) only; deleting too, or the story owner's: olga7 again.
    rows += [
        mcp("react", WRITE_STORY, story="vault", channel="general", message_id="{vault.general}", key="👍"),
        mcp("react", READ_CABAL, story="vault", channel="cabal", message_id="{vault.cabal}", key="👍"),
        mcp("react", who(ok="owner agent", forbidden="viewer", not_found="editor agent2 outsider"),
            story="vault", channel=INBOX, message_id=f"{{vault.{INBOX}}}", key="👍"),
        mcp("edit_message", OWNER_ONLY, story="vault", channel="general", message_id="{vault.general}",
            payload={"text": "VAULT-GENERAL (edited)"}),
        mcp("delete_message", OWNER_ONLY, story="vault", channel="general", message_id="{vault.doomed}"),
        mcp("edit_message", who(ok="editor", forbidden="owner agent2", not_found="viewer outsider agent"),
            story="vault", channel="cabal", message_id="{vault.cabal}", payload={"text": "VAULT-CABAL (edited)"}),
    ]
    # Streams: open where one may post; olga7's streams in general are hers alone to write and cancel.
    rows += [mcp("stream_open", POST[channel], story="vault", channel=channel, msg_type="narration")
             for channel in ("general", "cabal", INBOX)]
    rows += [
        mcp("stream_append", OWNER_ONLY, stream_id="{vault.mcp-stream}", text=" mcp"),
        mcp("stream_complete", OWNER_ONLY, "VAULT-MCP mcp", stream_id="{vault.mcp-stream}"),
        mcp("stream_cancel", OWNER_ONLY, stream_id="{vault.mcp-cancel}"),
    ]
    rows += [
        mcp("get_all_activity", READ_STORY, "VAULT-GENERAL", story="vault"),
        mcp("get_all_activity", EVERYONE, on=""),
        mcp("search_messages", EVERYONE, on="", q="vault"),
        mcp("search_messages", READ_STORY, "VAULT-GENERAL", story="vault", q="vault"),
        mcp("search_messages", READ_CABAL, "VAULT-CABAL", story="vault", channel="cabal", q="vault"),
        mcp("search_messages", READ_INBOX, "VAULT-INBOX-ADA", story="vault", channel=INBOX, q="vault"),
        mcp("search_messages", EVERYONE, "AGORA-GENERAL", on="agora", story="agora", q="agora"),
        mcp("list_notifications", EVERYONE, on=""),
        mcp("mark_notifications_read", EVERYONE, on="", all=True),
        mcp("list_channels", READ_STORY, "general", story="vault"),
        mcp("get_document", READ_STORY, "VAULT-DOC", story="vault", document="main"),
        mcp("export_document", READ_STORY, "VAULT-DOC", story="vault", doc="main"),
        mcp("export_story", READ_STORY, "VAULT-DOC", story="vault", format="txt"),
        mcp("edit_document", WRITE_STORY, story="vault", document="main", append=" mcp"),
        mcp("set_status", AGENTS_ONLY, on="", status="working"),
        mcp("read_messages", EVERYONE, "AGORA-GENERAL", on="agora", story="agora", channel="general", after=0),
        mcp("read_messages", READ_CABAL, "AGORA-CABAL", on="agora", story="agora", channel="cabal", after=0),
        mcp("post_message", PUBLIC_WRITE, on="agora", story="agora", channel="general", msg_type="text",
            payload={"text": "mcp agora"}),
        mcp("edit_document", PUBLIC_WRITE, on="agora", story="agora", document="main", append=" mcp"),
        mcp("get_outline", READ_STORY, "VAULT-SCENE", story="vault"),
        mcp("add_outline_scene", WRITE_STORY, story="vault", title="mcp scene"),
        mcp("update_outline_scene", WRITE_STORY, story="vault", scene="{int:vault.scene}", status="drafting"),
        mcp("move_outline_scene", WRITE_STORY, story="vault", scene="{int:vault.scene}", position=1),
        # An id that is no scene: 404 for those who may write, after the story's own answer for the rest.
        mcp("delete_outline_scene", who(not_found="owner editor outsider agent agent2", forbidden="viewer"),
            story="vault", scene=0),
        mcp("get_outline", EVERYONE, "AGORA-SCENE", on="agora", story="agora"),
        mcp("add_outline_scene", PUBLIC_WRITE, on="agora", story="agora", title="mcp scene"),
        mcp("list_suggestions", READ_STORY, "VAULT-DOC-NOTE", story="vault", document="main"),
        mcp("suggest_edit", WRITE_STORY, story="vault", document="main", append=" mcp", note="why"),
        mcp("merge_fork", who(invalid="owner editor agent agent2", forbidden="viewer", not_found="outsider"),
            story="vault", document="main"),
        mcp("list_comments", READ_STORY, "VAULT-COMMENT", story="vault", document="main"),
        mcp("add_comment", WRITE_STORY, story="vault", document="main", to=0, body="mcp note", **{"from": 0}),
        mcp("reply_to_comment", WRITE_STORY, story="vault", document="main", thread="{int:vault.comment}",
            body="mcp reply"),
        mcp("list_bible", READ_STORY, "VAULT-BIBLE", story="vault"),
        mcp("get_bible_entry", READ_STORY, "VAULT-BIBLE", story="vault", entry="vault-bible"),
        mcp("find_bible_mentions", READ_STORY, "VAULT-BIBLE", story="vault", text="Here is the warden."),
        mcp("upsert_bible_entry", WRITE_STORY, story="vault", name="mcp rule", kind="lore"),
        # A slug that is no entry: 404 for those who may write, after the story's own answer for the rest.
        mcp("delete_bible_entry", who(not_found="owner editor outsider agent agent2", forbidden="viewer"),
            story="vault", entry="no-such-entry"),
        mcp("list_bible", EVERYONE, "AGORA-BIBLE", on="agora", story="agora"),
        mcp("upsert_bible_entry", PUBLIC_WRITE, on="agora", story="agora", name="mcp rule", kind="lore"),
        mcp("list_versions", READ_STORY, "VAULT-VERSION", story="vault", document="main"),
        mcp("compare_revisions", READ_STORY, "VAULT-DOC", story="vault", document="main", from_revision=0),
        # A revision past the current one: `invalid` for those who may write (a name is unique, and the
        # actors run at once), after the story's own answer for the rest.
        mcp("name_version", who(invalid="owner editor agent agent2", forbidden="viewer", not_found="outsider"),
            story="vault", document="main", name="mcp version", revision=10**6),
        mcp("restore_revision", WRITE_STORY, story="vault", document="main", revision=1),  # the same text: ok
        mcp("compare_revisions", EVERYONE, "AGORA-DOC", on="agora", story="agora", document="main", from_revision=0),
    ]
    return rows


SURFACES = rest_rows() + ws_rows() + story_event_rows() + sse_rows() + mcp_rows()
_labels = [(row.surface, row.label) for row in SURFACES]
assert len(_labels) == len(set(_labels)), "two rows of a surface share a label"


# --- what each actor must never see -------------------------------------------------------------

def _texts(*names):
    return tuple(f"{p}-{n}" for p in PREFIX.values() for n in names)


# Texts and names the actor may not know, anywhere. (Inbox names are no secret to participants:
# editors post to inboxes, and reading one that is not yours is 403, not 404.)
HIDDEN = {
    "owner": (),
    "editor": _texts("INBOX-ADA", "INBOX-BART"),
    "viewer": _texts("CABAL", "INBOX-ADA", "INBOX-BART") + ("CABAL-TOPIC", "cabal"),
    "outsider": tuple(f"VAULT-{n}" for n in ("GENERAL", "CABAL", "INBOX-ADA", "INBOX-BART", "DOC", "TITLE", "VERSION"))
    + ("AGORA-CABAL", "AGORA-INBOX-ADA", "AGORA-INBOX-BART", "CABAL-TOPIC", "cabal", INBOX, INBOX2, "vault"),
    "agent": _texts("CABAL", "INBOX-BART") + ("CABAL-TOPIC", "cabal"),
    "agent2": _texts("INBOX-ADA"),
}
# A refusal about the private story names none of its people to the outsider.
VAULT_PEOPLE = tuple(name for actor, name in USERNAMES.items() if actor != "outsider")


def assert_no_leak(row: Row, actor: str, outcome: str, answer: str, request: str):
    markers = set(HIDDEN[actor])
    if actor == "outsider" and row.story == "vault" and outcome != "ok":
        markers |= set(VAULT_PEOPLE)
    if outcome == "ok":
        markers -= set(row.reveals)
    for marker in sorted(markers):
        if marker in request:  # what the caller typed may be echoed; that is no leak
            continue
        assert marker not in answer, f"LEAK: {actor} learns {marker!r} from {row.surface} {row.label}: {answer[:600]}"


def check_cell(row: Row, actor: str, outcome: str, answer: str, request: str):
    expected = row.expect[actor]
    assert outcome == expected, f"{row.surface} {row.label} as {actor}: {outcome}, not {expected}: {answer[:600]}"
    if expected == "ok" and row.sees:
        assert row.sees in answer, f"{actor} should see {row.sees!r} in {row.label}: {answer[:600]}"
    assert_no_leak(row, actor, outcome, answer, request)


# --- the world -----------------------------------------------------------------------------------

@dataclass
class World:
    ids: dict  # "vault.general" -> message id, "vault.invite" -> invite id, "vault.invite-token" -> token
    tokens: dict  # actor -> bearer token
    server: object = None  # BackgroundServer

    def fill(self, value):
        """Replace `{vault.general}`-style placeholders with the world's ids, in strings, lists, dicts."""
        if isinstance(value, str):
            if value.startswith("{int:") and value.endswith("}"):  # an id an argument takes as a number
                return int(self.ids[value[5:-1]])
            for name, real in self.ids.items():
                value = value.replace("{" + name + "}", real)
            return value
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.fill(v) for v in value)
        return value


def _build_world() -> World:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    people = {actor: User.objects.create_user(username=name)
              for actor, name in USERNAMES.items() if actor not in ("agent", "agent2")}
    User.objects.create_user(username="nina7")
    olga, eddie = people["owner"], people["editor"]
    ids = {}
    stories = {}
    for slug, visibility in (("vault", "private"), ("agora", "public")):
        p = PREFIX[slug]
        story = story_create(owner=olga, slug=slug, title=f"{p}-TITLE", premise=f"{p}-PREMISE", visibility=visibility)
        participant_add(story=story, user=eddie, role=Participant.Role.EDITOR)
        participant_add(story=story, user=people["viewer"], role=Participant.Role.VIEWER)
        stories[slug] = story
    agents = {"agent": agent_create(username="ada7", capabilities=["narration"], stories=list(stories.values())),
              "agent2": agent_create(username="bart7", capabilities=["dialogue"], stories=list(stories.values()))}
    people.update(agents)

    def post(slug, sender, channel, text, **extra):
        access = access_channel(sender, slug, channel, for_write=True)
        result = message_post(sender=sender, access=access, data={"msg_type": "text", "payload": {"text": text}, **extra})
        return str(result.message.id)

    for slug, story in stories.items():
        p = PREFIX[slug]
        cabal = channel_create(story=story, creator=eddie, name="cabal", kind="private", topic="CABAL-TOPIC")
        member_add(channel=cabal, user=agents["agent2"], by=eddie)
        root = ids[f"{slug}.general"] = post(slug, olga, "general", f"{p}-GENERAL")
        ids[f"{slug}.cabal"] = post(slug, eddie, "cabal", f"{p}-CABAL", reply_to=root)
        ids[f"{slug}.{INBOX}"] = post(slug, olga, INBOX, f"{p}-INBOX-ADA", reply_to=root)
        ids[f"{slug}.{INBOX2}"] = post(slug, olga, INBOX2, f"{p}-INBOX-BART", reply_to=root)
        document_edit(doc=Document.objects.get(story=story, name="main"), author=olga, body={"append": f"{p}-DOC"})
        ids[f"{slug}.scene"] = str(scene_create(story=story, by=olga, data={"title": f"{p}-SCENE"}).pk)
        crew_add(story=story, by=olga, roles=[])
        ids[f"{slug}.suggestion"] = str(suggestion_create(
            doc=Document.objects.get(story=story, name="main"), author=olga,
            body={"append": " suggested", "note": f"{p}-DOC-NOTE"}).pk)
        ids[f"{slug}.comment"] = str(thread_create(
            doc=Document.objects.get(story=story, name="main"), author=olga,
            body={"from": 0, "to": 5, "body": f"{p}-COMMENT"}).pk)
        entry = entry_create(story=story, by=olga, kind="character", name=f"{p}-BIBLE", aliases=["the warden"])
        ids[f"{slug}.progression"] = str(progression_add(entry=entry, by=olga, from_scene=2, description="later").pk)
        ids[f"{slug}.version"] = str(version_create(doc=Document.objects.get(story=story, name="main"), by=olga,
                                                    name=f"{p}-VERSION", revision=1).pk)
    # A message the story owner deletes in the table (delete_message), so no other row loses its text.
    ids["vault.doomed"] = post("vault", olga, "general", "VAULT-DOOMED")
    # Open streams with text (streaming/): eddie7's in general and in cabal (REST cells, in
    # savepoints); olga7's in general for the socket and MCP cells, which write (one each to append
    # and complete, one to cancel).
    with override_settings(MYTHLINE_STREAM_MAX_OPEN=100):
        for name, opener, channel, text in (
                ("stream", eddie, "general", "VAULT-STREAM"), ("cabal-stream", eddie, "cabal", "VAULT-CABAL-STREAM"),
                ("ws-stream", olga, "general", "VAULT-WS"), ("ws-cancel", olga, "general", "VAULT-WS"),
                ("mcp-stream", olga, "general", "VAULT-MCP"), ("mcp-cancel", olga, "general", "VAULT-MCP")):
            stream, _ = stream_start(sender=opener, access=access_channel(opener, "vault", channel, for_write=True),
                                     data={"msg_type": "narration"})
            stream_append(user=opener, stream_id=stream.pk, text=text)
            ids[f"vault.{name}"] = str(stream.pk)
    invite, raw = invite_create(story=stories["vault"], by=olga, role="editor")
    ids["vault.invite"], ids["vault.invite-token"] = str(invite.pk), raw
    return World(ids=ids, tokens={actor: token_issue(user=user) for actor, user in people.items()})


class BackgroundServer:
    """The live server, started in a thread as soon as the world is built: it boots (seconds)
    while the REST cells run."""

    def __init__(self):
        self.live = LiveServer(env=LIVE_ENV)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._start, daemon=True)
        self.thread.start()

    def _start(self):
        try:
            self.live.start(timeout=120)
        except BaseException as exc:  # noqa: BLE001 - reported by ready()
            self.failure = exc

    def ready(self) -> LiveServer:
        self.thread.join()
        if self.failure is not None:
            raise self.failure
        return self.live

    def stop(self):
        self.thread.join()
        self.live.__exit__(None, None, None)


@pytest.fixture(scope="module")
def module_world(django_db_setup, django_db_blocker):
    """Committed (the live server reads it), and flushed away when the module ends."""
    with django_db_blocker.unblock():
        server = None
        try:
            world = _build_world()
            world.server = server = BackgroundServer()
            yield world
        finally:
            if server is not None:
                server.stop()
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def world(module_world, db):
    """Each test runs in a savepoint rolled back after it: one cell's writes never reach the next."""
    return module_world


_clients: dict = {}


def client_for(world: World, actor: str) -> APIClient:
    if actor not in _clients or _clients[actor][0] != world.tokens[actor]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.tokens[actor]}")
        _clients[actor] = (world.tokens[actor], client)
    client = _clients[actor][1]
    client.cookies.clear()
    return client


# --- REST: in process -----------------------------------------------------------------------------

def cells(surface):
    return [pytest.param(row, actor, id=f"{row.label} | {actor} -> {row.expect[actor]}")
            for row in SURFACES if row.surface == surface for actor in ACTORS]


@pytest.mark.parametrize(("row", "actor"), cells("rest"))
def test_rest(world, row, actor):
    method, path, body = row.request
    path, body = world.fill(path), world.fill(body)
    client = client_for(world, actor)
    if method == "GET":
        response = client.get(path)
    else:
        response = getattr(client, method.lower())(path, body, format="json")
    answer = (b"".join(response.streaming_content) if response.streaming else response.content).decode()
    if 200 <= response.status_code < 300:
        outcome = "ok"
        assert response.status_code == REST_STATUS_OVERRIDE.get((row.label, actor), row.status), answer[:300]
    else:
        error = json.loads(answer)["error"]
        outcome = error["code"]
        assert response.status_code == STATUS.get(outcome), answer[:300]
    check_cell(row, actor, outcome, answer, f"{path} {json.dumps(body)}")


# --- socket, SSE, MCP: one live server ------------------------------------------------------------

LIVE_ENV = {"MYTHLINE_LOOP_WINDOW_SECONDS": "0", "MYTHLINE_POST_BURST": "10000", "MYTHLINE_READ_BURST": "10000",
            "MYTHLINE_WRITE_BURST": "10000", "MYTHLINE_STREAM_MAX_OPEN": "100"}


@dataclass
class Answer:
    outcome: str
    text: str  # everything the actor received for the cell
    request: str


def auth(token):
    return {"Authorization": f"Bearer {token}"}


async def socket_answers(live, world, actor, rows) -> dict:
    """All of an actor's socket cells over one socket, in table order. Each request is followed by
    a ping: the frame's answer (and a replay) arrive before the pong."""
    answers, docs = {}, {}  # docs: topic -> (revision, length) from doc.state and own changes
    async with connect(live.ws, additional_headers=auth(world.tokens[actor])) as sock:
        await frames_until(sock, lambda f: f["type"] == "welcome")
        for i, row in enumerate(rows):
            ref, sync = f"cell{i}", f"sync{i}"
            frame = {**world.fill(row.request), "ref": ref}
            if frame["type"] == "doc.push":
                revision, length = docs.get(frame["topic"], (0, 0))
                frame.update(revision=revision, client_id=ref,
                             changes=[[0, "X"], length] if length else [[0, "X"]])
            elif frame["type"] == "suggest":  # a change of the text as this socket last saw it
                revision, length = docs.get(frame["topic"], (0, 0))
                frame.update(revision=revision, changes=[[0, "X"], length] if length else [[0, "X"]])
            await sock.send(json.dumps(frame))
            await sock.send(json.dumps({"type": "ping", "ref": sync}))
            got = await frames_until(sock, lambda f, sync=sync: f.get("ref") == sync)
            errors = [f for f in got if f["type"] == "error" and f.get("ref") == ref]
            mine = lambda f, ref=ref: f["type"] == "doc.change" and f.get("client_id") == ref  # noqa: E731
            if frame["type"] == "doc.push" and not errors and not any(mine(f) for f in got):
                got += await frames_until(sock, mine)  # the change comes through the topic, maybe after the pong
            for f in got:
                if f["type"] == "doc.state":
                    docs[f["topic"]] = (f["revision"], len(f["text"]))
                elif f["type"] == "doc.change" and f.get("client_id") == ref:
                    docs[f["topic"]] = (f["revision"], docs[f["topic"]][1] + 1)
            if errors:
                outcome = errors[0]["code"]
            elif frame["type"] in REPLY and not any(f["type"] == REPLY[frame["type"]] for f in got):
                outcome = f"no {REPLY[frame['type']]} frame"
            else:
                outcome = "ok"
            answers[(row.surface, row.label, actor)] = Answer(outcome, json.dumps(got), json.dumps(frame))
    return answers


async def story_event_answers(live, world, row) -> dict:
    """One socket per actor on `story:agora` (and `story:vault` where allowed) while cabal's topic
    changes in both stories; then the owner renames both stories, and each socket reads until it
    has that rename: everything that came before it is the actor's answer."""
    subscribed = {actor: asyncio.Event() for actor in ACTORS}
    stories = {actor: ["agora"] + ([] if READ_STORY[actor] != "ok" else ["vault"]) for actor in ACTORS}

    async def watch(actor):
        async with connect(live.ws, additional_headers=auth(world.tokens[actor])) as sock:
            await frames_until(sock, lambda f: f["type"] == "welcome")
            for slug in stories[actor]:
                await sock.send(json.dumps({"type": "subscribe", "topic": f"story:{slug}", "ref": slug}))
                await frames_until(sock, lambda f, slug=slug: f.get("ref") == slug and f["type"] == "subscribed")
            subscribed[actor].set()
            waiting = {f"SYNC-{PREFIX[slug]}" for slug in stories[actor]}

            def synced(frame):
                waiting.discard(frame.get("data", {}).get("title"))
                return not waiting
            got = await frames_until(sock, synced, timeout=20)
        text = json.dumps(got)
        outcome = "delivered" if row.sees in text else "withheld"
        return {(row.surface, row.label, actor): Answer(outcome, text, "")}  # the actor asked for nothing

    async def drive():
        await asyncio.gather(*(event.wait() for event in subscribed.values()))
        async with (httpx.AsyncClient(base_url=live.base, headers=auth(world.tokens["editor"])) as eddie,
                    httpx.AsyncClient(base_url=live.base, headers=auth(world.tokens["owner"])) as olga):
            for slug in PREFIX:
                r = await eddie.patch(f"/api/stories/{slug}/channels/cabal", json={"topic": row.request["cabal_topic"]})
                assert r.status_code == 200, r.text
            for slug in PREFIX:
                r = await olga.patch(f"/api/stories/{slug}", json={"title": f"SYNC-{PREFIX[slug]}"})
                assert r.status_code == 200, r.text
        return {}

    answers = {}
    for done in await asyncio.gather(drive(), *(watch(actor) for actor in ACTORS)):
        answers |= done
    return answers


async def sse_answers(live, world, actor, rows) -> dict:
    answers = {}
    async with httpx.AsyncClient(base_url=live.base, headers=auth(world.tokens[actor]), timeout=10) as http:
        for row in rows:
            story, channel = row.request
            url = f"/api/stories/{story}/channels/{channel}/events"
            async with http.stream("GET", url, params={"after": "0"}) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode()
                    code = json.loads(text)["error"]["code"]
                    outcome = code if response.status_code == STATUS.get(code) else f"{response.status_code} {code}"
                else:
                    assert response.headers["content-type"].startswith("text/event-stream")
                    lines = []
                    async with asyncio.timeout(10):
                        async for line in response.aiter_lines():  # the `subscribed` comment, then the replay
                            lines.append(line)
                            if line.startswith("data: "):
                                break
                    text, outcome = "\n".join(lines), "ok"
            answers[(row.surface, row.label, actor)] = Answer(outcome, text, url)
    return answers


@asynccontextmanager
async def mcp_session(live, token):
    async with (httpx.AsyncClient(headers=auth(token), timeout=30) as http,
                streamable_http_client(f"{live.base}/mcp", http_client=http) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


async def mcp_answers(live, world, actor, rows) -> dict:
    answers = {}
    async with mcp_session(live, world.tokens[actor]) as session:
        for row in rows:
            tool, arguments = row.request
            arguments = world.fill(arguments)
            result = await session.call_tool(tool, arguments)
            body = result.structuredContent or {}
            text = json.dumps(body) + "".join(getattr(c, "text", "") for c in result.content)
            outcome = body.get("error", {}).get("code", "no error code") if result.isError else "ok"
            answers[(row.surface, row.label, actor)] = Answer(outcome, text, json.dumps([tool, arguments]))
    return answers


@pytest.fixture(scope="module")
def live_answers(module_world):
    """Every socket, SSE and MCP cell, run once against one live server."""
    by_surface = {s: [row for row in SURFACES if row.surface == s] for s in ("ws", "ws-events", "sse", "mcp")}

    async def run(live):
        answers = {}
        for actor in ACTORS:  # sockets one actor at a time: each push is made at the revision it saw
            answers |= await socket_answers(live, module_world, actor, by_surface["ws"])
        for row in by_surface["ws-events"]:
            answers |= await story_event_answers(live, module_world, row)
        for done in await asyncio.gather(
                *(sse_answers(live, module_world, actor, by_surface["sse"]) for actor in ACTORS),
                *(mcp_answers(live, module_world, actor, by_surface["mcp"]) for actor in ACTORS)):
            answers |= done
        return answers

    return asyncio.run(run(module_world.server.ready()))


@pytest.mark.parametrize(("row", "actor"), cells("ws") + cells("ws-events") + cells("sse") + cells("mcp"))
def test_live(live_answers, row, actor):
    answer = live_answers[(row.surface, row.label, actor)]
    check_cell(row, actor, answer.outcome, answer.text, answer.request)


# --- the table covers every surface ---------------------------------------------------------------

def test_every_api_route_is_in_the_table():
    from mythline_site.urls import api_urls

    fake = World(ids={"vault.invite": "1", "vault.invite-token": "t0ken", "vault.scene": "1", "vault.progression": "1", "vault.version": "1",
                      "vault.suggestion": "1",
                      "vault.comment": "1",
                      **{f"{s}.{c}": "00000000-0000-0000-0000-000000000000"
                         for s in PREFIX for c in ("general", "cabal", INBOX, INBOX2)}}, tokens={})
    covered = {resolve(fake.fill(row.request[1]).split("?")[0]).route for row in SURFACES if row.surface == "rest"}
    covered |= {resolve(f"/api/stories/{s}/channels/{c}/events").route
                for s, c in (row.request for row in SURFACES if row.surface == "sse")}
    routes = {str(p.pattern) for p in api_urls} - {"api/schema", "api/docs", "api/asyncapi.json"}
    assert routes - covered == set()


def test_every_socket_frame_is_in_the_table():
    from messaging.consumers import FRAMES

    in_table = {row.request["type"] for row in SURFACES if row.surface == "ws"}
    assert set(FRAMES) - NOT_STORY_FRAMES == in_table


def test_every_mcp_tool_is_in_the_table():
    from agents.mcp import build_server

    tools = {tool.name for tool in asyncio.run(build_server().list_tools())}
    assert tools == {row.request[0] for row in SURFACES if row.surface == "mcp"}
