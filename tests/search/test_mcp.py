"""search_messages over MCP on a real server (streamable HTTP): the same answers, refusals and
validation as GET /api/search."""
import asyncio

import pytest

from accounts.services import token_issue
from messaging.services import channel_create
from tests.agents.test_mcp import error, http_session, ok
from tests.live import LiveServer
from tests.search.conftest import post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    make_story(alice, slug="hush", visibility="private")
    scribe = make_agent("scribe", stories=[story])
    channel_create(story=story, creator=bob, name="cabal", kind="private")
    post(alice, "tale", "general", payload={"text": "The <lamp> of the lighthouse"})
    post(bob, "tale", "cabal", payload={"text": "a secret lighthouse plan"})
    post(alice, "tale", "general", payload={"text": "lighthouse for humans only"}, audience="humans")
    post(scribe, "tale", "general", msg_type="narration", payload={"text": "The lighthouse glowed."})
    return {"scribe": token_issue(user=scribe)}


@pytest.fixture
def server():
    with LiveServer() as live:
        yield live


def test_search_messages_over_mcp(server, tale):
    async def go():
        async with http_session(server, tale["scribe"]) as mcp:
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            tool = tools["search_messages"]
            assert tool.annotations.readOnlyHint is True
            assert set(tool.inputSchema["properties"]) == {"q", "story", "channel", "sender", "type", "after",
                                                           "before", "limit", "offset"}
            assert tool.inputSchema["required"] == ["q"]
            body = await ok(mcp, "search_messages", q="lighthouse")
            # The agent reads general (not cabal, not the message for humans).
            assert sorted(r["message"]["payload"]["text"] for r in body["results"]) == \
                ["The <lamp> of the lighthouse", "The lighthouse glowed."]
            assert body["next_offset"] is None
            lamp = next(r for r in body["results"] if "lamp" in r["message"]["payload"]["text"])
            assert "&lt;lamp&gt;" in lamp["highlight"] and "<mark>lighthouse</mark>" in lamp["highlight"]
            assert (lamp["story"], lamp["channel"]) == ("tale", "general")
            only = await ok(mcp, "search_messages", q="lighthouse", type="narration", sender="scribe", limit=5)
            assert [r["message"]["msg_type"] for r in only["results"]] == ["narration"]
            assert (await error(mcp, "search_messages", q="lighthouse", story="hush"))["code"] == "not_found"
            assert (await error(mcp, "search_messages", q="x", story="tale", channel="cabal"))["code"] == "not_found"
            bad = await error(mcp, "search_messages", q="")
            assert bad["code"] == "invalid" and "q" in bad["details"]
            bad = await error(mcp, "search_messages", q="a", after="soon")
            assert bad["code"] == "invalid" and "after" in bad["details"]
            bad = await error(mcp, "search_messages", q="a", limit="ten")  # strict: no string for a number
            assert bad["code"] == "invalid"
            bad = await error(mcp, "search_messages", q="a", sender_id=3)  # no argument it does not list
            assert bad["code"] == "invalid"
    asyncio.run(go())
