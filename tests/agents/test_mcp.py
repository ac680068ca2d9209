"""MCP (SPEC 12) with the official `mcp` client: streamable HTTP at /mcp on a real server, and
stdio through `manage.py mcp_stdio --agent NAME`; the same tools, results and error codes."""
import asyncio
import json
import os
import sys
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from django.core.management import CommandError, call_command
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from accounts.models import ApiToken
from accounts.services import token_issue
from agents.models import AgentProfile
from messaging.models import Message
from stories.models import Document
from tests.live import ROOT, LiveServer
from tests.live import test_database_url as database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

TOOLS = {"post_message", "read_messages", "get_channel_history", "get_conversation_thread", "get_all_activity",
         "list_channels", "get_document", "edit_document", "set_status"}
# The outline's tools (outline/mcp.py; tests/outline/test_live.py exercises them).
TOOLS |= {"get_outline", "add_outline_scene", "update_outline_scene", "move_outline_scene", "delete_outline_scene"}
TOOLS |= {"list_bible", "get_bible_entry", "upsert_bible_entry", "delete_bible_entry", "find_bible_mentions"}  # bible/mcp.py
TOOLS |= {"suggest_edit", "list_suggestions", "merge_fork"}  # suggestions/mcp.py
TOOLS |= {"add_comment", "reply_to_comment", "list_comments"}  # comments/mcp.py
TOOLS |= {"export_document", "export_story"}  # exports/mcp.py
TOOLS |= {"list_versions", "name_version", "compare_revisions", "restore_revision"}  # versions/mcp.py
TOOLS |= {"search_messages"}  # search/mcp.py
TOOLS |= {"edit_message", "delete_message", "react", "post_messages"}  # relations and batches, agents/mcp.py
TOOLS |= {"list_notifications", "mark_notifications_read"}  # notifications/mcp.py
TOOLS |= {"stream_open", "stream_append", "stream_complete", "stream_cancel"}  # streaming/mcp.py


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, outsider = make_user("alice"), make_user("olga")
    story = make_story(alice, slug="tale", title="The Lighthouse")
    make_story(outsider, slug="secret", visibility="private")
    scribe = make_agent("scribe", capabilities=["narration"], stories=[story])
    return {"story": story, "alice": token_issue(user=alice), "scribe": token_issue(user=scribe),
            "scribe_user": scribe}


@pytest.fixture
def server():
    with LiveServer() as live:
        yield live


@asynccontextmanager
async def http_session(live, token):
    async with (httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
                streamable_http_client(f"{live.base}/mcp", http_client=http) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(agent):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mythline_site.settings", "DATABASE_URL": database_url(),
           "MYTHLINE_ARCHIVE_SWEEP_SECONDS": "0"}
    env.pop("REDIS_URL", None)
    params = StdioServerParameters(command=sys.executable, args=["manage.py", "mcp_stdio", "--agent", agent],
                                   env=env, cwd=str(ROOT))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def assert_describes_every_type(post_tool):
    """post_message's description lists every built-in msg_type with its payload fields (required
    ones without `?`), and says that other types are accepted."""
    from messaging.schemas import BUILT_IN_TYPES, SCHEMAS

    lines = {line[2:].split(":", 1)[0]: line for line in post_tool.description.splitlines() if line.startswith("- ")}
    assert list(lines) == list(BUILT_IN_TYPES)
    for msg_type, fields in SCHEMAS.items():
        for field in fields:
            assert f"{field.name}{'' if field.required else '?'} (" in lines[msg_type], (msg_type, field.name)
    assert "rating? (integer 1-5)" in lines["feedback"] and "beats (list of strings)" in lines["scene_plan"]
    assert "Any other msg_type" in post_tool.description and "any JSON object" in post_tool.description


async def ok(session, tool, **arguments) -> dict:
    result = await session.call_tool(tool, arguments)
    assert not result.isError, result
    assert isinstance(result.structuredContent, dict)
    return result.structuredContent


async def error(session, tool, **arguments) -> dict:
    """An error result: isError, and the REST error body as structured content."""
    result = await session.call_tool(tool, arguments)
    assert result.isError, result
    body = result.structuredContent
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


async def exercise_every_tool(session, alice_token: str, base: str | None):
    """The tour both transports take: list, post, read, thread, activity, documents, status, errors."""
    tools = await session.list_tools()
    assert {t.name for t in tools.tools} == TOOLS
    post_tool = next(t for t in tools.tools if t.name == "post_message")
    assert {"story", "channel", "msg_type", "payload"} <= set(post_tool.inputSchema["required"])
    assert "sender" not in post_tool.inputSchema["properties"]
    assert post_tool.inputSchema["additionalProperties"] is False
    assert_describes_every_type(post_tool)

    # post_message: the sender is the authenticated agent; an id makes a retry safe.
    first_id = str(uuid.uuid4())
    posted = await ok(session, "post_message", story="tale", channel="general", msg_type="narration",
                      payload={"text": "The lamp guttered."}, id=first_id, correlation_id="scene-1")
    assert posted["created"] is True
    message = posted["message"]
    assert message["id"] == first_id and message["seq"] == 1 and message["correlation_id"] == "scene-1"
    assert message["sender"] == {"username": "scribe", "display_name": "Scribe", "kind": "agent"}
    again = await ok(session, "post_message", story="tale", channel="general", msg_type="narration",
                     payload={"text": "The lamp guttered."}, id=first_id, correlation_id="scene-1")
    assert again == {"created": False, "message": message}
    reply = (await ok(session, "post_message", story="tale", channel="general", msg_type="dialogue",
                      payload={"character": "Mara", "line": "Who is there?"}, reply_to=first_id,
                      audience="all"))["message"]
    assert reply["seq"] == 2 and reply["reply_to"] == first_id

    # read_messages / get_channel_history
    page = await ok(session, "read_messages", story="tale", channel="general")
    assert [m["seq"] for m in page["results"]] == [1, 2] and page["next_after"] == 2 and page["last_seq"] == 2
    page = await ok(session, "read_messages", story="tale", channel="general", after=1, msg_type="dialogue", limit=10)
    assert [m["id"] for m in page["results"]] == [reply["id"]]
    history = await ok(session, "get_channel_history", story="tale", channel="general", limit=1)
    assert [m["seq"] for m in history["results"]] == [2] and history["has_more"] is True

    # get_conversation_thread, get_all_activity, list_channels
    thread = await ok(session, "get_conversation_thread", message_id=reply["id"])
    assert thread["root"] == first_id and [m["id"] for m in thread["results"]] == [first_id, reply["id"]]
    activity = await ok(session, "get_all_activity", story="tale", limit=1)
    assert [m["id"] for m in activity["results"]] == [first_id]
    activity = await ok(session, "get_all_activity", after=activity["next_after"])
    assert [m["id"] for m in activity["results"]] == [reply["id"]]
    channels = await ok(session, "list_channels", story="tale")
    assert {"general", "room", "inbox.scribe"} <= {c["name"] for c in channels["results"]}

    # post_messages: a batch, each message answered on its own (stored in the channel "room").
    batch = await ok(session, "post_messages", story="tale", channel="room", messages=[
        {"msg_type": "narration", "payload": {"text": "Fog."}, "id": first_id},
        {"msg_type": "narration", "payload": {"text": "Gulls."}}, {"msg_type": "narration", "payload": {}},
        "not an object", {"msg_type": "narration", "payload": {"text": "Rain."}}])
    assert [item["status"] for item in batch["results"]] == [409, 201, 400, 400, 201]
    assert batch["results"][0]["error"]["code"] == "conflict" and batch["results"][1]["message"]["seq"] == 1
    assert "payload.text" in batch["results"][2]["error"]["details"]
    # An item that is not an object is refused on its own, as over REST; the others are stored.
    assert batch["results"][3]["error"]["code"] == "invalid"
    assert batch["results"][3]["error"]["message"] == "The message must be a JSON object."
    assert batch["results"][4]["message"]["seq"] == 2
    assert (await error(session, "post_messages", story="tale", channel="room", messages=[]))["code"] == "invalid"

    # Relations: each edit, reaction and deletion is a new entry of the log (docs/protocol.md 4.4).
    fixed = await ok(session, "edit_message", story="tale", channel="general", message_id=first_id,
                     payload={"text": "The lamp went out."})
    assert fixed["created"] is True and fixed["message"]["rel_type"] == "replace"
    assert fixed["message"]["target"]["payload"] == {"text": "The lamp went out."}
    nod = await ok(session, "react", story="tale", channel="general", message_id=reply["id"], key="👍")
    assert nod["created"] is True and nod["message"]["target"]["reactions"][0]["count"] == 1
    again = await ok(session, "react", story="tale", channel="general", message_id=reply["id"], key="👍")
    assert again["created"] is False and again["message"]["id"] == nod["message"]["id"]
    await ok(session, "delete_message", story="tale", channel="general", message_id=nod["message"]["id"])
    gone = await ok(session, "delete_message", story="tale", channel="general", message_id=reply["id"], reason="cut")
    assert gone["message"]["target"]["deleted"] is True and gone["message"]["target"]["payload"] is None
    via_post = await ok(session, "post_message", story="tale", channel="general", msg_type="reaction",
                        payload={"key": "ok"}, relates_to=first_id)
    assert via_post["message"]["relates_to"] == first_id and via_post["message"]["rel_type"] == "annotate"
    page = await ok(session, "read_messages", story="tale", channel="general", after=2)
    assert [m["msg_type"] for m in page["results"]] == ["edit", "reaction", "delete", "delete", "reaction"]
    now = (await ok(session, "read_messages", story="tale", channel="general", limit=2))["results"]
    assert now[0]["payload"] == {"text": "The lamp went out."} and now[0]["edited_at"] is not None
    assert now[0]["reactions"] == [{"key": "ok", "count": 1, "me": True}] and now[1]["deleted"] is True
    unknown = await error(session, "react", story="tale", channel="general", message_id=str(uuid.uuid4()), key="x")
    assert unknown["code"] == "not_found" and "relates_to" in unknown["details"]

    # get_document / edit_document: append, edits against a revision, find/replace, a conflict
    doc = await ok(session, "get_document", story="tale")
    assert doc["name"] == "main" and doc["revision"] == 0
    edited = await ok(session, "edit_document", story="tale", document="main", append="The sea was grey.")
    assert edited["revision"] == 1 and edited["change"]["author"] == "scribe" and edited["change"]["via"] == "mcp"
    edited = await ok(session, "edit_document", story="tale", document="main", base_revision=1,
                      edits=[{"from": 4, "to": 7, "insert": "ocean"}])
    assert edited["revision"] == 2
    await ok(session, "edit_document", story="tale", document="main", base_revision=2, find="grey", replace="slate")
    assert (await ok(session, "get_document", story="tale", document="main"))["text"] == "The ocean was slate."
    assert (await ok(session, "get_document", story="tale", revision=1))["text"] == "The sea was grey."
    conflict = await error(session, "edit_document", story="tale", document="main", base_revision=1,
                           find="grey", replace="blue")
    assert conflict["code"] == "conflict"

    # set_status
    status = await ok(session, "set_status", status="working", task="scene 1", progress=0.5)
    assert status["status"] == "working" and status["task"] == "scene 1" and status["progress"] == 0.5
    if base:  # and the REST presence shows it
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {alice_token}"}) as alice:
            agents = alice.get("/api/stories/tale/presence").json()["agents"]
            assert {"username": "scribe", "status": "working"}.items() <= next(
                a for a in agents if a["username"] == "scribe").items()

    # Errors carry the REST codes.
    assert (await error(session, "read_messages", story="secret", channel="general"))["code"] == "not_found"
    assert (await error(session, "read_messages", story="tale", channel="nope"))["code"] == "not_found"
    assert (await error(session, "get_conversation_thread", message_id="not-a-uuid"))["code"] == "not_found"
    invalid = await error(session, "post_message", story="tale", channel="general", msg_type="dialogue",
                          payload={"line": "Hm."})
    assert invalid["code"] == "invalid" and "payload.character" in invalid["details"]
    bad_args = await error(session, "read_messages", story="tale", channel="general", after="soon")
    assert bad_args["code"] == "invalid" and "after" in bad_args["details"]
    assert (await error(session, "set_status", status="dancing"))["code"] == "invalid"
    loop = await error(session, "post_message", story="tale", channel="general", msg_type="narration",
                       payload={"text": "The lamp guttered."})  # no id: the same payload again
    assert loop["code"] == "loop_detected" and loop["details"]["previous"] == first_id
    assert (await error(session, "no_such_tool"))["code"] == "not_found"


async def cannot_spoof_the_sender(session):
    spoof = await error(session, "post_message", story="tale", channel="general", msg_type="text",
                        payload={"text": "I am alice."}, sender="alice")
    assert spoof["code"] == "invalid" and "sender" in spoof["details"]
    assert "authenticated user" in spoof["details"]["sender"]
    posted = await ok(session, "post_message", story="tale", channel="general", msg_type="text",
                      payload={"text": "I am scribe."})
    return posted["message"]["id"]


def check_stored(tale, spoofed_id):
    assert not Message.objects.filter(payload__text="I am alice.").exists()
    assert Message.objects.get(pk=spoofed_id).sender.username == "scribe"
    assert Message.objects.get(seq=1, channel__name="general").sender.username == "scribe"
    assert Document.objects.get(story=tale["story"], name="main").text == "The ocean was slate."
    assert AgentProfile.objects.get(user__username="scribe").status == "working"


# --- streamable HTTP ------------------------------------------------------------------------------

def test_http_transport_runs_every_tool_as_the_tokens_user(tale, server):
    async def go():
        async with http_session(server, tale["scribe"]) as session:
            await exercise_every_tool(session, tale["alice"], server.base)
            return await cannot_spoof_the_sender(session)
    check_stored(tale, asyncio.run(go()))


def test_http_without_a_valid_token_is_401(tale, server):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YTpi"}):
        r = httpx.post(f"{server.base}/mcp", headers={**headers, "Accept": "application/json, text/event-stream"},
                       json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthenticated"
        assert r.headers["www-authenticate"].startswith("Bearer")

    async def client_without_token():
        async with (streamable_http_client(f"{server.base}/mcp") as (read, write, _),
                    ClientSession(read, write) as session):
            await session.initialize()
    with pytest.raises(BaseException) as raised:  # the client surfaces the 401, maybe in an exception group
        asyncio.run(asyncio.wait_for(client_without_token(), 30))
    assert any(isinstance(e, httpx.HTTPStatusError) and e.response.status_code == 401
               for e in leaves(raised.value)), raised.value


def leaves(exc):
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc
        if exc.__cause__ is not None:
            yield from leaves(exc.__cause__)


def test_http_with_a_trailing_slash_and_a_revoked_token(tale, server):
    async def go():
        async with (httpx.AsyncClient(headers={"Authorization": f"Bearer {tale['alice']}"}, timeout=30) as http,
                    streamable_http_client(f"{server.base}/mcp/", http_client=http) as (read, write, _),
                    ClientSession(read, write) as session):
            await session.initialize()
            # A human may use the tools too, but only agents report a status.
            posted = await ok(session, "post_message", story="tale", channel="general", msg_type="text",
                              payload={"text": "Hello, crew."})
            assert posted["message"]["sender"]["kind"] == "human"
            assert (await error(session, "set_status", status="idle"))["code"] == "forbidden"
    asyncio.run(go())
    ApiToken.objects.filter(user=tale["scribe_user"]).update(revoked_at="2020-01-01T00:00:00Z")
    r = httpx.post(f"{server.base}/mcp", headers={"Authorization": f"Bearer {tale['scribe']}"}, json={})
    assert r.status_code == 401


def test_http_refuses_hosts_outside_allowed_hosts(tale, server):
    r = httpx.post(f"{server.base}/mcp", headers={"Authorization": f"Bearer {tale['scribe']}", "Host": "evil.example"},
                   json={})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"


# --- stdio ------------------------------------------------------------------------------------------

def test_stdio_transport_runs_every_tool_as_the_agent(tale):
    async def go():
        async with stdio_session("scribe") as session:
            await exercise_every_tool(session, tale["alice"], None)
            return await cannot_spoof_the_sender(session)
    check_stored(tale, asyncio.run(asyncio.wait_for(go(), 120)))


def test_mcp_stdio_needs_an_existing_agent(tale, make_user):
    make_user("hugo")
    with pytest.raises(CommandError, match="No agent 'nobody'"):
        call_command("mcp_stdio", agent="nobody")
    with pytest.raises(CommandError, match="No agent 'hugo'") as raised:  # a human is not an agent
        call_command("mcp_stdio", agent="hugo")
    # It says why, and does not suggest creating an agent named like the human (the name is taken).
    assert "'hugo' is a human account" in str(raised.value) and "create_agent NAME" in str(raised.value)
    assert "create_agent hugo" not in str(raised.value)


def test_post_message_description_lists_every_built_in_type():
    """The same check as in the transport tours, on the server in-process (no server to start)."""
    from agents.mcp import build_server

    tools = asyncio.run(build_server().list_tools())
    assert_describes_every_type(next(t for t in tools if t.name == "post_message"))


def test_edit_document_description_states_the_edit_and_lag_caps(settings):
    """An agent learns the bounds before it hits them: edits per call and how far behind
    base_revision may be, from the settings (MYTHLINE_DOC_MAX_EDITS, MYTHLINE_DOC_MAX_LAG)."""
    from agents.mcp import build_server

    settings.MYTHLINE_DOC_MAX_EDITS, settings.MYTHLINE_DOC_MAX_LAG = 7, 11
    tools = asyncio.run(build_server().list_tools())
    description = next(t for t in tools if t.name == "edit_document").description
    assert "at most 7 edits per call" in description and "`payload_too_large`" in description
    assert "at most 11 revisions behind" in description and "`conflict`" in description


def test_post_message_audience_says_who_may_be_named():
    """The model is told the rule it is held to: usernames of the story's participants only, any
    other refused with one generic error (messaging.services.AUDIENCE_NOT_PARTICIPANTS)."""
    from agents.mcp import build_server
    from messaging.services import AUDIENCE_NOT_PARTICIPANTS

    tools = asyncio.run(build_server().list_tools())
    post_tool = next(t for t in tools if t.name == "post_message")
    text = json.dumps(post_tool.inputSchema["properties"]["audience"])
    assert "usernames of participants of this story" in text and AUDIENCE_NOT_PARTICIPANTS in text
    assert "one generic error" in text
