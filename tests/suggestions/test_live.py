"""Suggestions on a real server: the `suggestion.*` story events a live socket sees, the accepted
change reaching a socket subscribed to the document like any change, and the MCP tools with the
story's access rules (agents suggest; a viewer agent cannot)."""
import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from stories.models import Document
from tests.agents.test_mcp import http_session
from tests.annotating import live_story_tokens
from tests.live import frames_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def tale(make_user, make_story, make_agent):
    return live_story_tokens(make_user, make_story, make_agent, "The lamp burned low.")


def test_a_suggestion_and_its_acceptance_reach_open_sockets(server, tale):
    async def go():
        async with connect(server.ws, additional_headers={"Authorization": f"Bearer {tale['vera']}"}) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "story:tale", "ref": "s"}))
            await ws.send(json.dumps({"type": "subscribe", "topic": "doc:tale/main", "ref": "d"}))
            await frames_until(ws, lambda f: f.get("ref") == "d" and f["type"] in ("subscribed", "doc.state"))

            def act():
                with (httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['scribe']}"},
                                   timeout=10) as agent,
                      httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['owner']}"},
                                   timeout=10) as owner):
                    base = "/api/stories/tale/documents/main/suggestions"
                    s = agent.post(base, json={"base_revision": 1, "find": "low", "replace": "out",
                                               "note": "darker"}).json()
                    assert owner.post(f"{base}/{s['id']}/accept", json={}).status_code == 200
                    return s
            made = await asyncio.to_thread(act)
            got = await frames_until(ws, lambda f: f.get("event") == "suggestion.updated")
            events = [f for f in got if f["type"] == "event"]
            assert [e["event"] for e in events] == ["suggestion.created", "suggestion.updated"]
            assert events[0]["data"]["id"] == made["id"] and events[0]["data"]["note"] == "darker"
            assert events[1]["data"]["status"] == "accepted" and events[1]["data"]["accepted_revision"] == 2
            changes = [f for f in got if f["type"] == "doc.change"]
            if not changes:
                changes = [f for f in await frames_until(ws, lambda f: f["type"] == "doc.change")
                           if f["type"] == "doc.change"]
            assert changes[0]["revision"] == 2 and changes[0]["author"] == "owner"
    asyncio.run(go())


def test_agents_suggest_over_mcp(server, tale):
    async def go():
        async with http_session(server, tale["scribe"]) as mcp:
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            assert {"suggest_edit", "list_suggestions"} <= set(tools)
            assert tools["list_suggestions"].annotations.readOnlyHint is True
            made = await mcp.call_tool("suggest_edit", {"story": "tale", "document": "main", "base_revision": 1,
                                                        "find": "lamp", "replace": "lantern", "note": "period"})
            assert not made.isError, made.structuredContent
            assert made.structuredContent["status"] == "open" and made.structuredContent["author"] == "scribe"
            listed = await mcp.call_tool("list_suggestions", {"story": "tale", "document": "main"})
            assert [s["id"] for s in listed.structuredContent["results"]] == [made.structuredContent["id"]]
            bad = await mcp.call_tool("suggest_edit", {"story": "tale", "document": "main", "base_revision": 1,
                                                       "find": "nothing like it", "replace": "x"})
            assert bad.isError and bad.structuredContent["error"]["code"] == "conflict"
        async with http_session(server, tale["watcher"]) as mcp:  # a viewer agent reads, does not suggest
            refused = await mcp.call_tool("suggest_edit", {"story": "tale", "document": "main", "base_revision": 1,
                                                           "find": "lamp", "replace": "torch"})
            assert refused.isError and refused.structuredContent["error"]["code"] == "forbidden"
            listed = await mcp.call_tool("list_suggestions", {"story": "tale", "document": "main"})
            assert not listed.isError and len(listed.structuredContent["results"]) == 1
    asyncio.run(go())
    assert Document.objects.get(story__slug="tale", name="main").text == "The lamp burned low."


def test_where_agents_suggest_the_mcp_edit_becomes_a_suggestion(server, tale):
    from stories.models import Story
    Story.objects.filter(slug="tale").update(agents_suggest=True)

    async def go():
        async with http_session(server, tale["scribe"]) as mcp:
            result = await mcp.call_tool("edit_document", {"story": "tale", "document": "main", "base_revision": 1,
                                                           "find": "low", "replace": "out"})
            assert not result.isError, result.structuredContent
            answer = result.structuredContent
            assert answer["revision"] is None and answer["suggestion"]["status"] == "open"
    asyncio.run(go())
    assert Document.objects.get(story__slug="tale", name="main").text == "The lamp burned low."
