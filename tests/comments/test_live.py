"""Comments on a real server: the `comment.*` story events a live socket sees (a thread opened, a
reply, a resolution, a thread orphaned by an edit), and the MCP tools with the story's access rules
(agents comment; a viewer agent reads, does not comment)."""
import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.agents.test_mcp import http_session
from tests.annotating import live_story_tokens
from tests.live import frames_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def tale(make_user, make_story, make_agent):
    return live_story_tokens(make_user, make_story, make_agent, "The lamp 🔥 burned low.")


def test_comment_events_reach_open_sockets(server, tale):
    async def go():
        async with connect(server.ws, additional_headers={"Authorization": f"Bearer {tale['vera']}"}) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "story:tale", "ref": "s"}))
            await frames_until(ws, lambda f: f.get("ref") == "s")

            def act():
                with (httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['scribe']}"},
                                   timeout=10) as agent,
                      httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['owner']}"},
                                   timeout=10) as owner):
                    base = "/api/stories/tale/documents/main/comments"
                    t = agent.post(base, json={"from": 11, "to": 21, "body": "Too quiet?"}).json()
                    assert owner.post(f"{base}/{t['id']}/replies", json={"body": "No."}).status_code == 201
                    assert owner.post(f"{base}/{t['id']}/resolve", json={"resolved": True}).status_code == 200
                    # All of its text deleted: orphaned, noticed on the next read.
                    assert owner.post("/api/stories/tale/documents/main/ops", json={
                        "base_revision": 1, "edits": [{"from": 10, "to": 22, "insert": ""}]}).status_code == 200
                    assert owner.get(base).json()["results"][0]["orphaned"] is True
                    return t
            made = await asyncio.to_thread(act)
            got = await frames_until(ws, lambda f: f.get("event") == "comment.thread.updated"
                                     and f["data"].get("orphaned"))
            events = [f for f in got if f["type"] == "event" and f["event"].startswith("comment.")]
            assert [e["event"] for e in events] == ["comment.thread.created", "comment.created",
                                                    "comment.thread.updated", "comment.thread.updated"]
            created, reply, resolved, orphaned = (e["data"] for e in events)
            assert created["id"] == made["id"] and created["quote"] == "burned low"
            assert created["anchor"] == {"from": 11, "to": 21} and created["created_by"] == "scribe"
            assert (reply["thread"], reply["author"], reply["body"]) == (made["id"], "owner", "No.")
            assert resolved["resolved"] is True and resolved["resolved_by"] == "owner"
            assert orphaned["orphaned"] is True and orphaned["revision"] == 2
    asyncio.run(go())


def test_agents_comment_over_mcp(server, tale):
    async def go():
        async with http_session(server, tale["scribe"]) as mcp:
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            assert {"add_comment", "reply_to_comment", "list_comments"} <= set(tools)
            assert tools["list_comments"].annotations.readOnlyHint is True
            assert "from" in tools["add_comment"].inputSchema["properties"]
            made = await mcp.call_tool("add_comment", {"story": "tale", "document": "main", "from": 4, "to": 8,
                                                       "body": "Which lamp?", "revision": 1})
            assert not made.isError, made.structuredContent
            t = made.structuredContent
            assert (t["quote"], t["created_by"], t["anchor"]) == ("lamp", "scribe", {"from": 4, "to": 8})
            replied = await mcp.call_tool("reply_to_comment", {"story": "tale", "document": "main",
                                                               "thread": t["id"], "body": "The keeper's."})
            assert not replied.isError, replied.structuredContent
            assert [c["body"] for c in replied.structuredContent["comments"]] == ["Which lamp?", "The keeper's."]
            listed = await mcp.call_tool("list_comments", {"story": "tale", "document": "main"})
            assert [x["id"] for x in listed.structuredContent["results"]] == [t["id"]]
            one = await mcp.call_tool("list_comments", {"story": "tale", "document": "main", "thread": t["id"]})
            assert one.structuredContent["comment_count"] == 2
            bad = await mcp.call_tool("add_comment", {"story": "tale", "document": "main", "from": 8, "to": 4,
                                                      "body": "x"})
            assert bad.isError and bad.structuredContent["error"]["code"] == "invalid"
        async with http_session(server, tale["watcher"]) as mcp:  # a viewer agent reads, does not comment
            refused = await mcp.call_tool("add_comment", {"story": "tale", "document": "main", "from": 0, "to": 3,
                                                          "body": "x"})
            assert refused.isError and refused.structuredContent["error"]["code"] == "forbidden"
            refused = await mcp.call_tool("reply_to_comment", {"story": "tale", "document": "main",
                                                               "thread": t["id"], "body": "x"})
            assert refused.isError and refused.structuredContent["error"]["code"] == "forbidden"
            listed = await mcp.call_tool("list_comments", {"story": "tale", "document": "main"})
            assert not listed.isError and len(listed.structuredContent["results"]) == 1
    asyncio.run(go())
