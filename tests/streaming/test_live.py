"""Streams over real sockets, SSE and MCP, on the in-memory layer and on Redis: subscribers watch a
stream grow (started, chunks in order, ended, then the stored message), a subscriber that joins
mid-stream gets the text so far and then only what follows, an `agents` stream never reaches a
human, SSE carries the same events without ids, and the MCP tools do what REST does."""
import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from accounts.services import token_issue
from tests.agents.test_mcp import error, http_session, ok
from tests.live import frames_until, layered_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]
TOPIC = "channel:tale/general"
STREAM_FRAMES = ("stream.started", "stream.chunk", "stream.ended")


@pytest.fixture(params=["memory", "redis"])
def server(request):
    with layered_server(request.param, name="stream", env={"MYTHLINE_LOOP_WINDOW_SECONDS": "0"}) as live:
        yield live


@pytest.fixture
def tokens(tale):
    return {name: token_issue(user=tale[name]) for name in ("alice", "bob", "carol", "vera", "narrator")}


def auth(token):
    return {"Authorization": f"Bearer {token}"}


async def subscribed(live, token, after=None):
    ws = await connect(live.ws, additional_headers=auth(token))
    frame = {"type": "subscribe", "topic": TOPIC, "ref": "s"}
    if after is not None:
        frame["after"] = after
    await ws.send(json.dumps(frame))
    await frames_until(ws, lambda f: f.get("ref") == "s")
    return ws


async def request(ws, frame, ref):
    await ws.send(json.dumps({**frame, "ref": ref}))
    return (await frames_until(ws, lambda f: f.get("ref") == ref))[-1]


def of_stream(frames):
    return [f for f in frames if f["type"] in STREAM_FRAMES]


def test_subscribers_watch_a_stream_grow_then_get_the_message(server, tale, tokens):
    async def go():
        watcher = await subscribed(server, tokens["alice"])
        async with await subscribed(server, tokens["bob"]) as bob, watcher:
            opened = await request(bob, {"type": "stream.open", "topic": TOPIC, "msg_type": "narration",
                                         "payload": {"mood": "grim"}}, "o")
            assert opened["type"] == "stream.opened" and opened["created"] is True
            sid = opened["id"]
            lengths = []
            for i, chunk in enumerate(["The ", "lamp ", "guttered."]):
                appended = await request(bob, {"type": "stream.append", "id": sid, "text": chunk}, f"a{i}")
                lengths.append(appended["length"])
            assert lengths == [4, 9, 18]
            done = await request(bob, {"type": "stream.complete", "id": sid}, "c")
            assert done["type"] == "published" and done["id"] == sid and done["seq"] == 1 and done["created"]
            seen = await frames_until(watcher, lambda f: f["type"] == "message")
            streamed = of_stream(seen)
            assert [f["type"] for f in streamed] == ["stream.started"] + ["stream.chunk"] * 3 + ["stream.ended"]
            started = streamed[0]["stream"]
            assert (started["id"], started["text"], started["payload"], started["field"]) == (sid, "", {"mood": "grim"},
                                                                                               "text")
            assert started["sender"]["username"] == "bob"
            assert [(f["offset"], f["text"]) for f in streamed[1:4]] == [(0, "The "), (4, "lamp "), (9, "guttered.")]
            assert streamed[4] == {"type": "stream.ended", "topic": TOPIC, "id": sid, "status": "completed", "seq": 1}
            message = seen[-1]["message"]
            assert message["id"] == sid and message["payload"] == {"mood": "grim", "text": "The lamp guttered."}
            # Completing again (a retry) answers with the same message.
            again = await request(bob, {"type": "stream.complete", "id": sid}, "c2")
            assert (again["type"], again["seq"], again["created"]) == ("published", 1, False)
            # A refusal is an error frame with the REST code, naming the field.
            refused = await request(bob, {"type": "stream.append", "id": sid, "text": "more"}, "late")
            assert (refused["type"], refused["code"]) == ("error", "conflict")
            bad = await request(bob, {"type": "stream.open", "topic": TOPIC, "msg_type": "narration",
                                      "colour": "red"}, "bad")
            assert bad["code"] == "invalid" and bad["details"] == {"colour": "unknown field"}
    asyncio.run(go())


def test_a_late_joiner_gets_the_text_so_far_then_what_follows(server, tale, tokens):
    bob = httpx.Client(base_url=server.base, headers=auth(tokens["bob"]), timeout=10)
    r = bob.post("/api/stories/tale/channels/general/streams", json={"msg_type": "narration"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert bob.post(f"/api/streams/{sid}/append", json={"text": "Once ", "offset": 0}).json()["length"] == 5

    async def go():
        async with await subscribed(server, tokens["carol"], after=0) as carol:
            first = await frames_until(carol, lambda f: f["type"] == "stream.started")
            assert first[-1]["stream"]["text"] == "Once " and first[-1]["stream"]["id"] == sid
            await asyncio.to_thread(bob.post, f"/api/streams/{sid}/append", json={"text": "upon", "offset": 5})
            cancel = await asyncio.to_thread(bob.post, f"/api/streams/{sid}/cancel")
            assert cancel.json() == {"id": sid, "status": "cancelled"}
            seen = await frames_until(carol, lambda f: f["type"] == "stream.ended")
            assert [(f["type"], f.get("offset"), f.get("text")) for f in of_stream(seen)] == [
                ("stream.chunk", 5, "upon"), ("stream.ended", None, None)]
            assert seen[-1]["status"] == "cancelled" and "seq" not in seen[-1]
        # Nothing was stored; a new subscriber gets no stream.
        assert bob.get("/api/stories/tale/channels/general/streams").json() == {"results": []}
        assert bob.get("/api/stories/tale/channels/general/messages?after=0").json()["results"] == []
    asyncio.run(go())


def test_an_agents_stream_is_not_seen_by_a_human(server, tale, tokens):
    narrator = httpx.Client(base_url=server.base, headers=auth(tokens["narrator"]), timeout=10)
    r = narrator.post("/api/stories/tale/channels/general/streams", json={"msg_type": "narration",
                                                                          "audience": "agents"})
    assert r.status_code == 201, r.text
    hidden = r.json()["id"]
    narrator.post(f"/api/streams/{hidden}/append", json={"text": "for agents"})

    async def go():
        # carol joins mid-stream (no snapshot of it), alice (the story owner) sees it.
        async with await subscribed(server, tokens["carol"]) as carol, \
                await subscribed(server, tokens["alice"]) as alice:
            owner_saw = await frames_until(alice, lambda f: f["type"] == "stream.started")
            assert owner_saw[-1]["stream"]["text"] == "for agents"
            await asyncio.to_thread(narrator.post, f"/api/streams/{hidden}/append", json={"text": " only"})
            await asyncio.to_thread(narrator.post, f"/api/streams/{hidden}/complete")
            await frames_until(alice, lambda f: f["type"] == "message")
            # Then a message for all: carol sees it, and nothing of the stream before it.
            shown = narrator.post("/api/stories/tale/channels/general/messages",
                                  json={"msg_type": "narration", "payload": {"text": "for all"}})
            assert shown.status_code == 201, shown.text
            seen = await frames_until(carol, lambda f: f["type"] == "message")
            assert [f["type"] for f in seen] == ["message"] and seen[0]["message"]["payload"]["text"] == "for all"
    asyncio.run(go())


def test_sse_gets_the_snapshot_and_the_chunks_without_ids(server, tale, tokens):
    bob = httpx.Client(base_url=server.base, headers=auth(tokens["bob"]), timeout=10)
    sid = bob.post("/api/stories/tale/channels/general/streams", json={"msg_type": "narration"}).json()["id"]
    bob.post(f"/api/streams/{sid}/append", json={"text": "Hello"})

    async def go():
        async with httpx.AsyncClient(timeout=10) as client, client.stream(
                "GET", f"{server.base}/api/stories/tale/channels/general/events",
                headers=auth(tokens["alice"])) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            events, event = [], {}

            async def next_event():
                nonlocal event
                async for line in lines:
                    if line.startswith(":") or line.startswith("retry:"):
                        continue
                    if line == "":
                        if event:
                            out, event = event, {}
                            return out
                        continue
                    field, _, value = line.partition(": ")
                    event[field] = value

            async with asyncio.timeout(10):
                events.append(await next_event())
                await asyncio.to_thread(bob.post, f"/api/streams/{sid}/append", json={"text": ", world"})
                await asyncio.to_thread(bob.post, f"/api/streams/{sid}/complete")
                while len(events) < 4:
                    events.append(await next_event())
        assert [e["event"] for e in events] == ["stream.started", "stream.chunk", "stream.ended", "message"]
        assert all("id" not in e for e in events[:3]) and events[3]["id"] == "1"
        data = [json.loads(e["data"]) for e in events]
        assert data[0]["stream"]["text"] == "Hello" and data[0]["stream"]["id"] == sid
        assert data[1] == {"id": sid, "offset": 5, "text": ", world"}
        assert data[2] == {"id": sid, "status": "completed", "seq": 1}
        assert data[3]["payload"] == {"text": "Hello, world"}
    asyncio.run(go())


def test_the_mcp_tools_stream_a_message(server, tale, tokens):
    async def go():
        async with http_session(server, tokens["narrator"]) as session, \
                await subscribed(server, tokens["alice"]) as alice:
            opened = await ok(session, "stream_open", story="tale", channel="general", msg_type="narration")
            sid = opened["stream"]["id"]
            assert opened["created"] is True and opened["stream"]["status"] == "open"
            assert await ok(session, "stream_append", stream_id=sid, text="Night ", offset=0) == {"id": sid,
                                                                                                  "length": 6}
            assert (await ok(session, "stream_append", stream_id=sid, text="Night ", offset=0))["length"] == 6
            gap = await error(session, "stream_append", stream_id=sid, text="x", offset=9)
            assert gap["code"] == "conflict" and gap["details"] == {"offset": 9, "length": 6}
            await ok(session, "stream_append", stream_id=sid, text="fell.", offset=6)
            done = await ok(session, "stream_complete", stream_id=sid)
            assert done["created"] and done["message"]["id"] == sid
            assert done["message"]["payload"] == {"text": "Night fell."}
            seen = await frames_until(alice, lambda f: f["type"] == "message")
            assert [f["type"] for f in of_stream(seen)] == ["stream.started", "stream.chunk", "stream.chunk",
                                                            "stream.ended"]
            other = (await ok(session, "stream_open", story="tale", channel="general", msg_type="note",
                              field="body"))["stream"]["id"]
            assert await ok(session, "stream_cancel", stream_id=other) == {"id": other, "status": "cancelled"}
            refused = await error(session, "stream_open", story="tale", channel="cabal", msg_type="narration")
            assert refused["code"] == "not_found"
    asyncio.run(go())


def test_a_reader_removed_mid_stream_gets_nothing_more_of_it(server, tale, tokens):
    """carol watches bob's stream in the private `cabal`, is removed from it mid-stream: her socket
    gets `unsubscribed`, then no frame of the stream (the chunk and the end bob writes after). The
    proof is a marker: bob then posts in `general`, which carol still reads; on the layer a
    socket's events arrive in the order they were sent, so had the chunk reached her it would be
    before the marker. Her SSE stream of `cabal` ends."""
    cabal = "channel:tale/cabal"
    bob = httpx.Client(base_url=server.base, headers=auth(tokens["bob"]), timeout=10)

    async def go():
        async with await subscribed(server, tokens["carol"]) as carol, \
                httpx.AsyncClient(timeout=10) as client, client.stream(
                    "GET", f"{server.base}/api/stories/tale/channels/cabal/events",
                    headers=auth(tokens["carol"])) as sse:
            assert sse.status_code == 200
            lines = sse.aiter_lines()
            async with asyncio.timeout(10):
                async for line in lines:
                    if line.startswith(": subscribed"):
                        break
            await carol.send(json.dumps({"type": "subscribe", "topic": cabal, "ref": "c"}))
            await frames_until(carol, lambda f: f.get("ref") == "c")
            r = await asyncio.to_thread(bob.post, "/api/stories/tale/channels/cabal/streams",
                                        json={"msg_type": "narration"})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            await asyncio.to_thread(bob.post, f"/api/streams/{sid}/append", json={"text": "The plan: "})
            seen = await frames_until(carol, lambda f: f["type"] == "stream.chunk")
            assert [f["type"] for f in of_stream(seen)] == ["stream.started", "stream.chunk"]
            removed = await asyncio.to_thread(bob.delete, "/api/stories/tale/channels/cabal/members/carol")
            assert removed.status_code == 204, removed.text
            gone = await frames_until(carol, lambda f: f["type"] == "unsubscribed")
            assert gone[-1]["topic"] == cabal and gone[-1]["reason"] == "access_revoked"
            assert not of_stream(gone)
            # Her SSE stream of the channel ends (before bob writes on).
            async with asyncio.timeout(10):
                async for _ in lines:
                    pass
            # bob writes on, completes, then posts the marker where carol still reads.
            appended = await asyncio.to_thread(bob.post, f"/api/streams/{sid}/append",
                                               json={"text": "burn the lighthouse."})
            assert appended.status_code == 200, appended.text
            done = await asyncio.to_thread(bob.post, f"/api/streams/{sid}/complete")
            assert done.status_code == 201, done.text
            marker = await asyncio.to_thread(bob.post, "/api/stories/tale/channels/general/messages",
                                             json={"msg_type": "text", "payload": {"text": "marker"}})
            assert marker.status_code == 201, marker.text
            later = await frames_until(carol, lambda f: f["type"] == "message")
            assert [f["type"] for f in later] == ["message"], later
            assert later[0]["message"]["payload"] == {"text": "marker"}
    asyncio.run(go())
