"""Real servers, real sockets: a `websockets` client, an `httpx` SSE client, two Daphne processes
sharing Postgres/SQLite and Redis, and clients that misbehave."""
import asyncio
import json
import socket
import threading
import time

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from channels.db import database_sync_to_async
from channels_redis.core import RedisChannelLayer

from accounts.services import token_issue
from messaging.models import Channel, Message
from tests.conftest import require
from tests.live import DEFAULT_TEST_REDIS, LiveServer, frames_until, redis_available, sse_events

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    agent = make_agent("narrator", capabilities=["narration"], stories=[story])
    return {"story": story, "alice": token_issue(user=alice), "narrator": token_issue(user=agent)}


# These tests have an agent post numbered or repeated lines in bulk, which loop prevention would
# (rightly) refuse; they test delivery, so its window is off here (tests/messaging/test_loop_policies.py).
SYNTHETIC_TRAFFIC = {"MYTHLINE_LOOP_WINDOW_SECONDS": "0"}


@pytest.fixture
def server():
    with LiveServer(env=SYNTHETIC_TRAFFIC) as live:
        yield live


def rest(live, token):
    return httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def post(client, text, channel="general"):
    r = client.post(f"/api/stories/tale/channels/{channel}/messages",
                    json={"msg_type": "narration", "payload": {"text": text}})
    assert r.status_code == 201, r.text
    return r.json()


def messages(frames):
    return [f["message"]["seq"] for f in frames if f["type"] == "message"]


def test_websocket_client_gets_live_messages_in_order(server, tale):
    async def go():
        async with connect(server.ws, additional_headers={"Authorization": f"Bearer {tale['alice']}"}) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general", "ref": "1"}))
            await frames_until(ws, lambda f: f["type"] == "subscribed")
            with rest(server, tale["narrator"]) as agent:
                for i in range(20):
                    await asyncio.to_thread(post, agent, f"line {i}")
            got = await frames_until(ws, lambda f: f.get("message", {}).get("seq") == 20)
            assert messages(got) == list(range(1, 21))
    asyncio.run(go())


def test_replay_then_live_under_a_concurrent_writer(server, tale):
    """Subscribe with `after` while another thread keeps posting: exactly after+1..last, in order."""
    with rest(server, tale["narrator"]) as agent:
        for i in range(30):
            post(agent, f"before {i}")
    stop = threading.Event()
    written = []

    def writer():
        with rest(server, tale["narrator"]) as agent:
            while not stop.is_set() and len(written) < 150:
                written.append(post(agent, "during")["seq"])

    async def go():
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while len(written) < 5:
                await asyncio.sleep(0.01)
            async with connect(server.ws, additional_headers={"Authorization": f"Bearer {tale['alice']}"}) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general", "after": 10}))
                seen = await frames_until(ws, lambda f: f["type"] == "message" and f["message"]["seq"] >= 60, 30)
                stop.set()
                await asyncio.to_thread(thread.join, 30)
                last = max(written)
                if messages(seen)[-1] < last:
                    seen += await frames_until(ws, lambda f: f["type"] == "message" and f["message"]["seq"] == last, 30)
                assert messages(seen) == list(range(11, last + 1))
                assert any(f.get("replay") for f in seen) and not seen[-1].get("replay")
        finally:
            stop.set()
            thread.join(30)
    asyncio.run(go())


def test_sse_replays_then_streams_live_and_resumes_with_last_event_id(server, tale):
    with rest(server, tale["narrator"]) as agent:
        for i in range(3):
            post(agent, f"old {i}")

        def read_events(headers, params, count):
            with httpx.stream("GET", f"{server.base}/api/stories/tale/channels/general/events", params=params,
                              headers={"Authorization": f"Bearer {tale['alice']}", **headers}, timeout=10) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                return sse_events(r.iter_lines(), count)

        poster = threading.Timer(0.5, lambda: post(agent, "new"))
        poster.start()
        events = read_events({}, {"after": 1}, 3)
        poster.join()
        assert [e["id"] for e in events] == ["2", "3", "4"]
        assert all(e["event"] == "message" for e in events)
        assert json.loads(events[-1]["data"])["payload"] == {"text": "new"}
        resumed = read_events({"Last-Event-ID": "3"}, {}, 1)
        assert [e["id"] for e in resumed] == ["4"]


def test_sse_errors_are_json(server, tale):
    r = httpx.get(f"{server.base}/api/stories/tale/channels/general/events", timeout=5)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = httpx.get(f"{server.base}/api/stories/tale/channels/nope/events", timeout=5,
                  headers={"Authorization": f"Bearer {tale['alice']}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_hostile_clients_do_not_hurt_others(server, tale):
    async def go():
        auth = {"Authorization": f"Bearer {tale['alice']}"}
        async with connect(server.ws, additional_headers=auth) as good:
            await good.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general"}))
            await frames_until(good, lambda f: f["type"] == "subscribed")
            # garbage, then a huge frame
            async with connect(server.ws, additional_headers=auth, max_size=None) as bad:
                await bad.send("{{{{")
                assert (await frames_until(bad, lambda f: f["type"] == "error"))[-1]["code"] == "invalid"
                await bad.send("x" * (300 * 1024))
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(10):
                        while True:
                            await bad.recv()
                assert closed.value.rcvd.code == 1009
            # a flood of frames
            async with connect(server.ws, additional_headers=auth) as flood:
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(20):
                        for _ in range(2000):
                            await flood.send('{"type":"ping"}')
                        while True:
                            await flood.recv()
                assert closed.value.rcvd.code == 1008
            with rest(server, tale["narrator"]) as agent:
                await asyncio.to_thread(post, agent, "still here")
            got = await frames_until(good, lambda f: f["type"] == "message")
            assert got[-1]["message"]["payload"] == {"text": "still here"}
    asyncio.run(go())


def _raw_websocket(port, token):
    """A socket that completes the WebSocket handshake and then never reads again."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall((f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head
    payload = json.dumps({"type": "subscribe", "topic": "channel:tale/general"}).encode()
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return s


def test_a_client_that_never_reads_is_closed_and_others_keep_receiving(tale):
    with LiveServer(env={"MYTHLINE_WS_SEND_BUFFER_BYTES": str(256 * 1024), "MYTHLINE_POST_RATE": "1000/s",
                         "MYTHLINE_POST_BURST": "1000", **SYNTHETIC_TRAFFIC}) as live:
        stuck = _raw_websocket(live.port, tale["alice"])
        big = "x" * 30000

        async def go():
            async with connect(live.ws, additional_headers={"Authorization": f"Bearer {tale['alice']}"}) as good:
                await good.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general"}))
                await frames_until(good, lambda f: f["type"] == "subscribed")
                with rest(live, tale["narrator"]) as agent:
                    for i in range(120):
                        r = await asyncio.to_thread(agent.post, "/api/stories/tale/channels/general/messages",
                                                    json={"msg_type": "narration", "payload": {"text": big, "i": i}})
                        assert r.status_code == 201
                        if i % 10 == 9:  # the good client keeps up
                            await frames_until(good, lambda f, i=i: f.get("message", {}).get("payload", {}).get("i") == i)
                metrics = httpx.get(live.base + "/metrics").text
                assert "mythline_slow_clients_closed_total 1.0" in metrics
        asyncio.run(go())
        stuck.close()


def test_two_processes_share_delivery_and_resume_across_them(tale, settings):
    require(redis_available(), f"Redis at {DEFAULT_TEST_REDIS}")
    prefix = f"mythline-test-{time.monotonic_ns()}"
    env = {"MYTHLINE_REDIS_PREFIX": prefix, **SYNTHETIC_TRAFFIC}
    with LiveServer(redis_url=DEFAULT_TEST_REDIS, env=env) as one, LiveServer(redis_url=DEFAULT_TEST_REDIS, env=env) as two:
        async def go():
            auth = {"Authorization": f"Bearer {tale['alice']}"}
            async with connect(one.ws, additional_headers=auth) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general"}))
                await frames_until(ws, lambda f: f["type"] == "subscribed")
                with rest(two, tale["narrator"]) as agent:
                    for i in range(5):
                        await asyncio.to_thread(post, agent, f"via two {i}")
                got = await frames_until(ws, lambda f: f.get("message", {}).get("seq") == 5)
                assert messages(got) == [1, 2, 3, 4, 5]
                last_seen = 5
            # Offline for a while; the agent keeps posting through process one.
            with rest(one, tale["narrator"]) as agent:
                for i in range(4):
                    await asyncio.to_thread(post, agent, f"while away {i}")
            async with connect(two.ws, additional_headers=auth) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general", "after": last_seen}))
                with rest(one, tale["narrator"]) as agent:
                    await asyncio.to_thread(post, agent, "live again")
                got = await frames_until(ws, lambda f: f.get("message", {}).get("seq") == 10)
                assert messages(got) == [6, 7, 8, 9, 10]
        asyncio.run(go())
    assert Message.objects.filter(channel__story__slug="tale").count() == 10


def test_comma_separated_redis_urls_shard_the_channel_layer(tale, make_user):
    require(redis_available(), f"Redis at {DEFAULT_TEST_REDIS}")
    base = DEFAULT_TEST_REDIS.rsplit("/", 1)[0]
    shards = f"{base}/1,{base}/2"
    env = {"MYTHLINE_REDIS_PREFIX": f"mythline-test-{time.monotonic_ns()}", **SYNTHETIC_TRAFFIC}
    with LiveServer(redis_url=shards, env=env) as live:
        names = [f"ch{i}" for i in range(12)]
        with rest(live, tale["alice"]) as alice:
            for name in names:
                assert alice.post("/api/stories/tale/channels", json={"name": name, "kind": "public"}).status_code == 201

        async def go():
            async with connect(live.ws, additional_headers={"Authorization": f"Bearer {tale['alice']}"}) as ws:
                for name in names:
                    await ws.send(json.dumps({"type": "subscribe", "topic": f"channel:tale/{name}", "ref": name}))
                    await frames_until(ws, lambda f, name=name: f.get("ref") == name)
                with rest(live, tale["narrator"]) as agent:
                    for name in names:
                        await asyncio.to_thread(post, agent, f"to {name}", name)
                got = await frames_until(ws, lambda f: f.get("message", {}).get("channel") == names[-1])
                assert [f["message"]["channel"] for f in got if f["type"] == "message"] == names
                # Each channel's group lives on the shard channels-redis hashes it to.
                urls = shards.split(",")
                ring = RedisChannelLayer(hosts=urls)
                placed = {u: set() for u in urls}
                for channel in await database_sync_to_async(list)(Channel.objects.filter(name__in=names)):
                    placed[urls[ring.consistent_hash(channel.group_name)]].add(channel.group_name)
                for url, expected in placed.items():
                    # (the rights groups, rights.user.* and rights.story.*, are placed by the same ring)
                    keys = {k.decode().rsplit(":", 1)[-1]
                            for k in redis.Redis.from_url(url).keys(f"{env['MYTHLINE_REDIS_PREFIX']}:asgi:group:chan.*")}
                    assert keys == expected, url
        asyncio.run(go())


def test_healthz_answers_while_sockets_listen_on_redis(tale):
    """The fan-out's blocking read of the layer must not starve the health check's round trip
    (channels-redis reads a process's channels one prefix at a time)."""
    require(redis_available(), f"Redis at {DEFAULT_TEST_REDIS}")
    env = {"MYTHLINE_REDIS_PREFIX": f"mythline-test-{time.monotonic_ns()}", **SYNTHETIC_TRAFFIC}
    with LiveServer(redis_url=DEFAULT_TEST_REDIS, env=env) as live:
        async def go():
            async with connect(live.ws, additional_headers={"Authorization": f"Bearer {tale['alice']}"}) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general"}))
                await frames_until(ws, lambda f: f["type"] == "subscribed")
                async with httpx.AsyncClient(base_url=live.base, timeout=10) as http:
                    for _ in range(3):
                        r = await http.get("/healthz")
                        assert r.status_code == 200 and r.json()["channel_layer"]["ok"], r.text
                with rest(live, tale["narrator"]) as agent:
                    await asyncio.to_thread(post, agent, "still delivered")
                await frames_until(ws, lambda f: f.get("message", {}).get("seq") == 1)
        asyncio.run(go())
