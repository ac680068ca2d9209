"""A PostgreSQL outage seen from an open socket and from SSE: frames that need the database answer
an `error` frame `unavailable` (with their `ref`, `details.retry_after`) and the socket stays open;
an SSE stream opened meanwhile is 503 `unavailable` with Retry-After. Before, such a frame crashed
the socket with 1011 and the SSE request answered 500.

Runs a real server (Daphne) on a private PostgreSQL cluster this test creates, stops and starts
itself (bench/faults.py `PrivatePostgres`; never the shared one). A frame during the outage waits
the pool's 10 s for a connection before its answer.
"""
import asyncio
import json
import os
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.live import LiveServer, frames_until
from tests.mythline_site.test_db_outage import SETUP, assert_unavailable, manage, private_postgres  # noqa: F401

pytestmark = pytest.mark.live

TOPIC = "channel:outage/general"


def test_socket_frames_answer_unavailable_during_a_database_outage(private_postgres, settings):  # noqa: F811
    pg = private_postgres
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mythline_site.settings", "DATABASE_URL": pg.url,
           "SECRET_KEY": settings.SECRET_KEY, "DEBUG": "0"}
    env.pop("REDIS_URL", None)
    manage(env, "migrate", "--noinput")
    token = next(line for line in manage(env, "shell", "-c", SETUP).splitlines() if line.startswith("TOKEN "))[6:]
    auth = {"Authorization": f"Bearer {token}"}
    message_id = str(uuid.uuid4())

    def publish(ref, text, **extra):
        return json.dumps({"type": "publish", "topic": TOPIC, "ref": ref, "msg_type": "narration",
                           "payload": {"text": text}, **extra})

    with LiveServer(env={"DATABASE_URL": pg.url}) as server:
        async def go():
            async with connect(server.ws, additional_headers=auth) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC, "after": 0, "ref": "s1"}))
                await ws.send(publish("p1", "Before the storm."))
                seen = await frames_until(ws, lambda f: f.get("ref") == "p1")
                if not any(f["type"] == "message" for f in seen):
                    seen += await frames_until(ws, lambda f: f["type"] == "message")
                assert [f["type"] for f in seen if f.get("ref")] == ["subscribed", "published"]

                await asyncio.to_thread(pg.stop, "fast")
                # A post, a re-subscribe (which needs the database) and a ping, while it is down; an
                # SSE stream opened meanwhile.
                sse = asyncio.create_task(asyncio.to_thread(
                    httpx.get, f"{server.base}/api/stories/outage/channels/general/events", headers=auth,
                    timeout=60))
                await ws.send(publish("p2", "The lamp went dark.", id=message_id))
                await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC, "after": 1, "ref": "s2"}))
                await ws.send(json.dumps({"type": "ping", "ref": "ping"}))
                during = {f["ref"]: f for f in await frames_until(ws, lambda f: f.get("ref") == "ping", 60)
                          if f.get("ref")}
                for ref in ("p2", "s2"):
                    assert during[ref]["type"] == "error" and during[ref]["code"] == "unavailable", during[ref]
                    assert during[ref]["details"]["retry_after"] >= 1 and during[ref]["topic"] == TOPIC
                    assert "OperationalError" not in json.dumps(during[ref])  # logged, never sent
                assert during["ping"]["type"] == "pong"  # the socket is still open
                assert_unavailable(await sse)

                # Back: the same post is stored once; a subscribe with `after` replays it.
                await asyncio.to_thread(pg.start)
                await ws.send(publish("p3", "The lamp went dark.", id=message_id))
                retried = (await frames_until(ws, lambda f: f.get("ref") == "p3", 30))[-1]
                assert retried["type"] == "published" and retried["seq"] == 2 and retried["created"], retried
                await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC, "after": 1, "ref": "s3"}))
                resumed = await frames_until(ws, lambda f: f["type"] == "message", 10)
                assert [f["message"]["seq"] for f in resumed if f["type"] == "message"] == [2]
                assert any(f.get("ref") == "s3" and f["type"] == "subscribed" for f in resumed)
        asyncio.run(go())
        assert "unavailable on ws." in server.output()  # the cause is logged
