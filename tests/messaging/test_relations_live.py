"""Relations over real sockets and SSE (issue 17): edits, deletions and reactions made while a client
was away come back on resume, in seq order with no gap, on the in-memory layer and on Redis; a live
relation carries `target`, the related message's aggregated view after the change."""
import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from accounts.services import token_issue
from tests.live import layered_server, frames_until, sse_events

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture(params=["memory", "redis"])
def server(request):
    with layered_server(request.param, name="rel", env={"MYTHLINE_LOOP_WINDOW_SECONDS": "0"}) as live:
        yield live


@pytest.fixture
def tale(make_user, make_story):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    make_story(alice, slug="tale", editors=[bob, carol])
    return {name: token_issue(user=user) for name, user in (("alice", alice), ("bob", bob), ("carol", carol))}


def poster(live, token):
    client = httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def send(msg_type, payload, relates_to=None):
        body = {"msg_type": msg_type, "payload": payload}
        if relates_to:
            body["relates_to"] = relates_to
        r = client.post("/api/stories/tale/channels/general/messages", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    return send


def message_frames(frames):
    return [f for f in frames if f["type"] == "message"]


def test_replay_after_a_disconnect_carries_edits_deletions_and_reactions(server, tale):
    bob, carol, alice = (poster(server, tale[n]) for n in ("bob", "carol", "alice"))
    first = bob("text", {"text": "The lamp gutered."})
    second = bob("text", {"text": "A line posted by mistake."})
    auth = {"Authorization": f"Bearer {tale['alice']}"}

    async def go():
        async with connect(server.ws, additional_headers=auth) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general", "after": 0}))
            seen = await frames_until(ws, lambda f: f.get("message", {}).get("seq") == 2)
            assert [f["message"]["seq"] for f in message_frames(seen)] == [1, 2]
        # Away: an edit, reactions, a reaction taken back, a deletion.
        fix = await asyncio.to_thread(bob, "edit", {"payload": {"text": "The lamp guttered."}}, first["id"])
        like = await asyncio.to_thread(carol, "reaction", {"key": "👍"}, first["id"])
        await asyncio.to_thread(alice, "reaction", {"key": "👀"}, second["id"])
        await asyncio.to_thread(carol, "delete", {}, like["id"])
        await asyncio.to_thread(bob, "delete", {"reason": "mistake"}, second["id"])
        async with connect(server.ws, additional_headers=auth) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general", "after": 2}))
            seen = await frames_until(ws, lambda f: f.get("message", {}).get("seq") == 7)
            replayed = [f["message"] for f in message_frames(seen)]
            assert [m["seq"] for m in replayed] == [3, 4, 5, 6, 7]  # gapless, in order
            assert all(f.get("replay") for f in message_frames(seen))
            assert [(m["msg_type"], m["rel_type"], m["relates_to"]) for m in replayed] == [
                ("edit", "replace", first["id"]), ("reaction", "annotate", first["id"]),
                ("reaction", "annotate", second["id"]), ("delete", "redact", like["id"]),
                ("delete", "redact", second["id"])]
            assert replayed[0]["id"] == fix["id"] and replayed[0]["payload"] == {"payload": {"text": "The lamp guttered."}}
            assert replayed[1]["deleted"] is True  # the reaction taken back, as it is now
            # Then live, published on the socket: the relation's frame carries the target's view after the change.
            await ws.send(json.dumps({"type": "publish", "topic": "channel:tale/general", "ref": "r1",
                                      "msg_type": "reaction", "payload": {"key": "🎉"}, "relates_to": first["id"]}))
            seen = await frames_until(ws, lambda f: f.get("message", {}).get("seq") == 8)
            published = next(f for f in seen if f["type"] == "published")
            assert published["ref"] == "r1" and published["seq"] == 8 and published["created"] is True
            live = message_frames(seen)[-1]
            assert not live.get("replay") and live["message"]["id"] == published["id"]
            assert live["message"]["rel_type"] == "annotate" and live["message"]["relates_to"] == first["id"]
            target = live["message"]["target"]
            assert target["id"] == first["id"] and target["payload"] == {"text": "The lamp guttered."}
            assert target["edited_at"] == fix["created_at"] and target["deleted"] is False
            assert target["reactions"] == [{"key": "🎉", "count": 1, "me": None}]
        # A fresh read (after=0) gives every message as it is now, and still the whole log.
        async with connect(server.ws, additional_headers=auth) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general", "after": 0}))
            seen = await frames_until(ws, lambda f: f.get("message", {}).get("seq") == 8)
            now = {m["message"]["id"]: m["message"] for m in message_frames(seen)}
            assert [m["message"]["seq"] for m in message_frames(seen)] == list(range(1, 9))
            assert now[first["id"]]["payload"] == {"text": "The lamp guttered."}
            assert now[first["id"]]["reactions"] == [{"key": "🎉", "count": 1, "me": True}]  # alice reads
            assert now[second["id"]]["deleted"] is True and now[second["id"]]["payload"] is None
            # The same reaction again on the socket: the earlier one answers, nothing is stored.
            await ws.send(json.dumps({"type": "publish", "topic": "channel:tale/general", "ref": "r2",
                                      "msg_type": "reaction", "payload": {"key": "🎉"}, "relates_to": first["id"]}))
            again = (await frames_until(ws, lambda f: f.get("ref") == "r2"))[-1]
            assert again["type"] == "published" and again["created"] is False and again["seq"] == 8
            # A refused relation is an error frame with the REST code, naming the field.
            await ws.send(json.dumps({"type": "publish", "topic": "channel:tale/general", "ref": "r3",
                                      "msg_type": "edit", "payload": {"payload": {"text": "mine now"}},
                                      "relates_to": first["id"]}))
            refused = (await frames_until(ws, lambda f: f.get("ref") == "r3"))[-1]
            assert refused["type"] == "error" and refused["code"] == "forbidden"
            assert refused["details"] == {"relates_to": "not your message"}
    asyncio.run(go())


def test_sse_resume_carries_relations(server, tale):
    bob, carol = poster(server, tale["bob"]), poster(server, tale["carol"])
    first = bob("text", {"text": "Once."})
    bob("edit", {"payload": {"text": "Once more."}}, first["id"])
    carol("reaction", {"key": "ok"}, first["id"])
    bob("delete", {}, first["id"])
    with httpx.stream("GET", f"{server.base}/api/stories/tale/channels/general/events",
                      headers={"Authorization": f"Bearer {tale['alice']}", "Last-Event-ID": "1"}, timeout=10) as r:
        assert r.status_code == 200
        events = sse_events(r.iter_lines(), 3)
    assert [e["id"] for e in events] == ["2", "3", "4"]
    data = [json.loads(e["data"]) for e in events]
    assert [(d["msg_type"], d["rel_type"], d["relates_to"]) for d in data] == [
        ("edit", "replace", first["id"]), ("reaction", "annotate", first["id"]), ("delete", "redact", first["id"])]
