"""The outline on a real server: `outline.scene.*` story events on a live WebSocket, in the order the
writes committed; and the MCP tools over streamable HTTP with the official client, as an editor
agent and as a viewer."""
import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from accounts.services import token_issue
from outline.models import OutlineScene
from tests.agents.test_mcp import error, http_session, ok
from tests.live import LiveServer, frames_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, vera = make_user("alice"), make_user("vera")
    story = make_story(alice, slug="tale", viewers=[vera])
    scribe = make_agent("scribe", capabilities=["narration"], stories=[story])
    return {"story": story, "alice": token_issue(user=alice), "vera": token_issue(user=vera),
            "scribe": token_issue(user=scribe)}


@pytest.fixture
def server():
    with LiveServer() as live:
        yield live


def test_every_outline_change_is_an_event_on_the_story_topic(server, tale):
    def writes():
        with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['alice']}"},
                          timeout=10) as alice:
            url = "/api/stories/tale/outline"
            first = alice.post(url, json={"title": "The storm", "beats": ["Wind"]}).json()
            second = alice.post(url, json={"title": "The boat"}).json()
            assert alice.patch(f"{url}/{first['id']}", json={"status": "drafting", "version": 1}).status_code == 200
            assert alice.post(f"{url}/{second['id']}/move", json={"position": 1}).status_code == 200
            assert alice.delete(f"{url}/{first['id']}").status_code == 204
            return first, second

    async def go():
        async with connect(server.ws, additional_headers={"Authorization": f"Bearer {tale['vera']}"}) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "story:tale", "ref": "1"}))
            await frames_until(ws, lambda f: f["type"] == "subscribed")
            first, second = await asyncio.to_thread(writes)
            seen = await frames_until(ws, lambda f: f.get("event") == "outline.scene.deleted")
            return first, second, [f for f in seen if f["type"] == "event"]

    first, second, events = asyncio.run(go())
    assert [e["event"] for e in events] == ["outline.scene.created", "outline.scene.created", "outline.scene.updated",
                                            "outline.scene.moved", "outline.scene.deleted"]
    assert all(e["topic"] == "story:tale" for e in events)
    assert events[0]["data"]["scene"] == first and events[1]["data"]["scene"] == second
    updated = events[2]["data"]
    assert updated["scene"]["status"] == "drafting" and updated["scene"]["version"] == 2
    assert updated["fields"] == ["status"]
    assert events[3]["data"] == {"id": second["id"], "from_position": 2, "position": 1, "version": 2,
                                 "updated_by": "alice"}
    assert events[4]["data"] == {"id": first["id"], "position": 2, "deleted_by": "alice"}


def test_mcp_tools_edit_the_outline_with_the_storys_rules(server, tale):
    async def as_scribe():
        async with http_session(server, tale["scribe"]) as session:
            assert (await ok(session, "get_outline", story="tale")) == {"results": [], "count": 0}
            await ok(session, "edit_document", story="tale", document="main", append="The storm broke. Dawn.")
            storm = await ok(session, "add_outline_scene", story="tale", title="The storm", beats=["Wind", "Rain"],
                             characters=["Mara"], range={"document": "main", "from": 0, "to": 16})
            assert storm["position"] == 1 and storm["created_by"] == "scribe"
            assert storm["range"] == {"document": "main", "from": 0, "to": 16, "revision": 1, "gone": False}
            dawn = await ok(session, "add_outline_scene", story="tale", title="Dawn", position=1)
            moved = await ok(session, "move_outline_scene", story="tale", scene=storm["id"], position=1)
            assert moved["position"] == 1 and moved["version"] == 2
            await ok(session, "edit_document", story="tale", document="main", base_revision=1,
                     edits=[{"from": 0, "insert": "I. "}])
            updated = await ok(session, "update_outline_scene", story="tale", scene=storm["id"], status="drafted",
                               version=2)
            assert updated["status"] == "drafted" and updated["version"] == 3
            assert updated["range"]["from"] == 3 and updated["range"]["to"] == 19
            outline = await ok(session, "get_outline", story="tale")
            assert [s["title"] for s in outline["results"]] == ["The storm", "Dawn"] and outline["count"] == 2
            stale = await error(session, "update_outline_scene", story="tale", scene=storm["id"], title="X", version=2)
            assert stale["code"] == "conflict" and stale["details"] == {"version": 3}
            cleared = await ok(session, "update_outline_scene", story="tale", scene=storm["id"], clear_range=True)
            assert cleared["range"] is None
            bad = await error(session, "add_outline_scene", story="tale", title="X", status="done")
            assert bad["code"] == "invalid" and "status" in bad["details"]
            assert (await error(session, "move_outline_scene", story="tale", scene=dawn["id"], position=9))["code"] \
                == "invalid"
            assert (await error(session, "get_outline", story="nope"))["code"] == "not_found"
            assert (await error(session, "delete_outline_scene", story="tale", scene=999999))["code"] == "not_found"
            assert await ok(session, "delete_outline_scene", story="tale", scene=dawn["id"]) == {"deleted": dawn["id"]}
            return storm

    async def as_viewer(storm):
        async with http_session(server, tale["vera"]) as session:
            assert [s["title"] for s in (await ok(session, "get_outline", story="tale"))["results"]] == ["The storm"]
            for tool, args in (("add_outline_scene", {"title": "X"}),
                               ("update_outline_scene", {"scene": storm["id"], "title": "X"}),
                               ("move_outline_scene", {"scene": storm["id"], "position": 1}),
                               ("delete_outline_scene", {"scene": storm["id"]})):
                assert (await error(session, tool, story="tale", **args))["code"] == "forbidden", tool

    storm = asyncio.run(as_scribe())
    asyncio.run(as_viewer(storm))
    assert list(OutlineScene.objects.values_list("title", "position", "status")) == [("The storm", 1, "drafted")]
