"""Notifications over a real server and real sockets, on the in-memory layer and on Redis: a
mention posted over REST reaches the mentioned user's `notifications:<username>` topic, with the
unread count; marking read reaches every socket of theirs; no one subscribes to another's feed."""
import json
import os
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from accounts.services import token_issue
from tests.conftest import require
from tests.live import DEFAULT_TEST_REDIS, LiveServer, frames_until, redis_available

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]
REDIS = os.environ.get("REDIS_URL") or DEFAULT_TEST_REDIS


@pytest.fixture(params=["memory", "redis"])
def server(request):
    if request.param == "memory":
        with LiveServer() as live:
            yield live
        return
    require(redis_available(REDIS), f"Redis at {REDIS}")
    with LiveServer(redis_url=REDIS, env={"MYTHLINE_REDIS_PREFIX": f"mythline-test-notif-{time.monotonic_ns()}"}) as live:
        yield live


@pytest.fixture
def tokens(cast):
    return {name: token_issue(user=cast[name]) for name in ("bob", "carol", "vera")}


def test_a_mention_reaches_the_mentioned_users_socket(server, tokens):
    import asyncio

    bob = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=10)
    carol = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tokens['carol']}"}, timeout=10)
    auth = {"Authorization": f"Bearer {tokens['carol']}"}

    async def go():
        async with connect(server.ws, additional_headers=auth) as ws, \
                connect(server.ws, additional_headers=auth) as ws2, \
                connect(server.ws, additional_headers={"Authorization": f"Bearer {tokens['vera']}"}) as spy:
            for sock in (ws, ws2, spy):
                await frames_until(sock, lambda f: f["type"] == "welcome")
            await ws.send(json.dumps({"type": "subscribe", "topic": "notifications:carol", "ref": "s"}))
            ok = (await frames_until(ws, lambda f: f.get("ref") == "s"))[-1]
            assert ok == {"type": "subscribed", "topic": "notifications:carol", "unread": 0, "ref": "s"}
            await ws2.send(json.dumps({"type": "subscribe", "topic": "notifications:carol", "ref": "s"}))
            await frames_until(ws2, lambda f: f.get("ref") == "s")
            # Someone else's feed is refused, whatever the spelling.
            for i, topic in enumerate(("notifications:carol", "notifications:Carol", "notifications:nobody")):
                await spy.send(json.dumps({"type": "subscribe", "topic": topic, "ref": f"x{i}"}))
                refused = (await frames_until(spy, lambda f, i=i: f.get("ref") == f"x{i}"))[-1]
                assert refused["type"] == "error" and refused["code"] == "forbidden", refused
            r = await asyncio.to_thread(bob.post, "/api/stories/tale/channels/general/messages",
                                        json={"msg_type": "text", "payload": {"text": "Your watch, @carol."}})
            assert r.status_code == 201, r.text
            for sock in (ws, ws2):
                frame = (await frames_until(sock, lambda f: f["type"] == "notification"))[-1]
                assert frame["topic"] == "notifications:carol" and frame["unread"] == 1
                n = frame["notification"]
                assert (n["kind"], n["message_id"], n["excerpt"]) == ("mention", r.json()["id"], "Your watch, @carol.")
                assert n["actor"]["username"] == "bob" and n["story"] == "tale" and n["channel"] == "general"
            listed = (await asyncio.to_thread(carol.get, "/api/notifications")).json()
            assert listed["unread"] == 1 and listed["results"][0] == n
            marked = await asyncio.to_thread(carol.post, "/api/notifications/read", json={"ids": [n["id"]]})
            assert marked.json() == {"unread": 0}
            for sock in (ws, ws2):
                frame = (await frames_until(sock, lambda f: f["type"] == "notifications.read"))[-1]
                assert frame == {"type": "notifications.read", "topic": "notifications:carol", "ids": [n["id"]],
                                 "unread": 0}
            # A mention in a channel carol may not read reaches no one's socket; the next one does.
            r = await asyncio.to_thread(bob.post, "/api/stories/tale/channels/cabal/messages",
                                        json={"msg_type": "text", "payload": {"text": "@carol secret"}})
            assert r.status_code == 201, r.text
            await asyncio.to_thread(bob.post, "/api/stories/tale/channels/general/messages",
                                    json={"msg_type": "text", "payload": {"text": "open"}, "mentions": ["carol"]})
            frame = (await frames_until(ws, lambda f: f["type"] == "notification"))[-1]
            assert frame["notification"]["excerpt"] == "open" and frame["unread"] == 1

    asyncio.run(go())
