"""The story bible on a real server: `story:` events on a live socket as REST changes it, and the
MCP tools over streamable HTTP with the story's access rules."""
import asyncio
import json

import httpx
import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect

from accounts.services import token_issue
from bible.models import BibleEntry
from stories.services import participant_add
from tests.agents.test_mcp import http_session
from tests.live import LiveServer, frames_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def tale(make_user, make_story, make_agent):
    owner, viewer, outsider = make_user("owner"), make_user("vera"), make_user("olga")
    story = make_story(owner, slug="tale", viewers=[viewer])
    make_story(owner, slug="hush", visibility="private")
    scribe = make_agent("scribe", stories=[story])
    watcher = make_agent("watcher")
    participant_add(story=story, user=watcher, role="viewer")
    return {name: token_issue(user=user) for name, user in
            (("owner", owner), ("vera", viewer), ("olga", outsider), ("scribe", scribe), ("watcher", watcher))}


@pytest.fixture
def server():
    with LiveServer() as live:
        yield live


def test_changes_reach_a_live_socket_subscribed_to_the_story(server, tale):
    async def go():
        headers = {"Authorization": f"Bearer {tale['vera']}"}  # a viewer: reads the bible, sees its events
        async with connect(server.ws, additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "story:tale", "ref": "s"}))
            await frames_until(ws, lambda f: f["type"] == "subscribed")
            with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['scribe']}"},
                              timeout=10) as agent:
                def changes():
                    base = "/api/stories/tale/bible"
                    assert agent.post(base, json={"kind": "character", "name": "Mara",
                                                  "aliases": ["the keeper's daughter"]}).status_code == 201
                    assert agent.patch(f"{base}/mara", json={"description": "Nineteen.",
                                                             "version": 1}).status_code == 200
                    assert agent.patch(f"{base}/mara", json={"description": "Late.",
                                                             "version": 1}).status_code == 409  # no event
                    assert agent.post(f"{base}/mara/progressions",
                                      json={"from_scene": 4, "fields": {"age": "20"}}).status_code == 201
                    assert agent.delete(f"{base}/mara").status_code == 204
                await asyncio.to_thread(changes)
            got = await frames_until(ws, lambda f: f.get("event") == "bible.entry.deleted")
            events = [f for f in got if f["type"] == "event" and f["event"].startswith("bible.")]
            assert [(e["event"], e["topic"]) for e in events] == [
                ("bible.entry.created", "story:tale"), ("bible.entry.updated", "story:tale"),
                ("bible.entry.updated", "story:tale"), ("bible.entry.deleted", "story:tale")]
            created, updated, progressed, deleted = (e["data"] for e in events)
            assert created["name"] == "Mara" and created["version"] == 1 and created["created_by"] == "scribe"
            assert created["aliases"] == ["the keeper's daughter"]
            assert updated["description"] == "Nineteen." and updated["version"] == 2
            assert progressed["version"] == 3 and progressed["progressions"][0]["fields"] == {"age": "20"}
            assert deleted == {"slug": "mara"}
        # An outsider cannot subscribe to a private story's events (as for every story topic).
        async with connect(server.ws, additional_headers={"Authorization": f"Bearer {tale['olga']}"}) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "story:hush", "ref": "s"}))
            reply = (await frames_until(ws, lambda f: f.get("ref") == "s"))[-1]
            assert reply["type"] == "error" and reply["code"] == "not_found"
    asyncio.run(go())


def entries_stored():
    return sorted(BibleEntry.objects.values_list("slug", "version", "description"))


BIBLE_TOOLS = {"list_bible", "get_bible_entry", "upsert_bible_entry", "delete_bible_entry", "find_bible_mentions"}


def test_mcp_tools(server, tale):
    async def go():
        async with http_session(server, tale["scribe"]) as mcp:
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            assert BIBLE_TOOLS <= set(tools)
            assert tools["delete_bible_entry"].annotations.destructiveHint is True
            assert tools["list_bible"].annotations.readOnlyHint is True

            async def ok(tool, /, **args):
                result = await mcp.call_tool(tool, args)
                assert not result.isError, (tool, result.structuredContent)
                return result.structuredContent

            async def refused(tool, /, **args):
                result = await mcp.call_tool(tool, args)
                assert result.isError, (tool, args)
                return result.structuredContent["error"]["code"]

            made = await ok("upsert_bible_entry", story="tale", name="Mara Quinn", kind="character",
                            aliases=["Mara"], fields={"voice": "short"})
            assert made["created"] is True and made["entry"]["slug"] == "mara-quinn"
            # by name, any case: an update of the same entry, only what was given changes
            same = await ok("upsert_bible_entry", story="tale", name="mara quinn", description="The keeper's daughter.")
            assert same["created"] is False and same["entry"]["version"] == 2
            assert same["entry"]["name"] == "mara quinn" and same["entry"]["fields"] == {"voice": "short"}
            renamed = await ok("upsert_bible_entry", story="tale", slug="mara-quinn", name="Mara Quinn", version=2)
            assert renamed["entry"]["name"] == "Mara Quinn" and renamed["entry"]["version"] == 3
            assert await refused("upsert_bible_entry", story="tale", slug="mara-quinn", description="x",
                                 version=2) == "conflict"
            assert await refused("upsert_bible_entry", story="tale", slug="nobody", description="x") == "not_found"
            assert await refused("upsert_bible_entry", story="tale", name="Elias") == "invalid"  # a kind is needed
            assert await refused("upsert_bible_entry", story="tale", name="Elias", kind="monster") == "invalid"
            assert await refused("upsert_bible_entry", story="tale", name="E" * 121, kind="lore") == "invalid"
            assert await refused("upsert_bible_entry", story="tale", name="Elias", kind="lore",
                                 description="x" * 20_001) == "payload_too_large"
            assert await refused("upsert_bible_entry", story="tale", name="Elias", kind="lore",
                                 sender="owner") == "invalid"
            await ok("upsert_bible_entry", story="tale", name="Skerry Rock", kind="place")

            listed = await ok("list_bible", story="tale")
            assert [e["slug"] for e in listed["results"]] == ["mara-quinn", "skerry-rock"]
            assert listed["next_offset"] is None
            page = await ok("list_bible", story="tale", limit=1)
            assert len(page["results"]) == 1 and page["next_offset"] == 1
            assert [e["slug"] for e in (await ok("list_bible", story="tale", kind="place"))["results"]] == ["skerry-rock"]
            assert [e["slug"] for e in (await ok("list_bible", story="tale", query="KEEPER"))["results"]] == \
                ["mara-quinn"]
            assert await refused("list_bible", story="tale", scene=0) == "invalid"
            assert await refused("list_bible", story="tale", offset=10**30) == "invalid"  # not a database error
            assert (await ok("list_bible", story="tale", offset=2000))["results"] == []
            assert (await ok("get_bible_entry", story="tale", entry="mara-quinn"))["version"] == 3
            assert await refused("get_bible_entry", story="tale", entry="nobody") == "not_found"

            mentions = await ok("find_bible_mentions", story="tale", text="Mara walked to skerry rock, MARA QUINN too.")
            assert [(m["entry"]["slug"], m["spans"]) for m in mentions["results"]] == [
                ("mara-quinn", [[0, 4], [28, 38]]), ("skerry-rock", [[15, 26]])]
            assert await refused("find_bible_mentions", story="tale", text="x" * 200_001) == "payload_too_large"

            assert await ok("delete_bible_entry", story="tale", entry="skerry-rock") == {"deleted": "skerry-rock"}
            assert await refused("delete_bible_entry", story="tale", entry="skerry-rock") == "not_found"
            assert await refused("list_bible", story="hush") == "not_found"

        stored = await database_sync_to_async(entries_stored)()
        async with http_session(server, tale["watcher"]) as mcp:  # an agent with the viewer role reads only
            assert (await mcp.call_tool("get_bible_entry", {"story": "tale", "entry": "mara-quinn"})).isError is False
            for name, args in (("upsert_bible_entry", {"name": "Mara Quinn", "description": "defaced"}),
                               ("upsert_bible_entry", {"name": "New", "kind": "lore"}),
                               ("delete_bible_entry", {"entry": "mara-quinn"})):
                result = await mcp.call_tool(name, {"story": "tale", **args})
                assert result.isError and result.structuredContent["error"]["code"] == "forbidden", name
        async with http_session(server, tale["olga"]) as mcp:  # an outsider: the public story reads, no writes
            result = await mcp.call_tool("find_bible_mentions", {"story": "tale", "text": "Mara"})
            assert not result.isError and len(result.structuredContent["results"]) == 1
            result = await mcp.call_tool("delete_bible_entry", {"story": "tale", "entry": "mara-quinn"})
            assert result.structuredContent["error"]["code"] == "forbidden"
            result = await mcp.call_tool("get_bible_entry", {"story": "hush", "entry": "mara-quinn"})
            assert result.structuredContent["error"]["code"] == "not_found"
        assert await database_sync_to_async(entries_stored)() == stored
    asyncio.run(go())
