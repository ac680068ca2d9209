"""Presence across real server processes sharing Redis (SPEC 8): a process dies with SIGKILL (no
disconnect handler runs) and the survivors sort out who is still there.

Three Daphne processes with MYTHLINE_HEARTBEAT_SECONDS=1, one presence store in Redis:
- bob is connected to process 1 and to process 2, carol only to process 1;
- alice observes the room from process 2, olga from process 3, dave sits on process 3.
Process 1 is killed. Expected: bob stays present (an `updates` entry with one connection, never a
leave); carol leaves once her last heartbeat is two intervals old; alice and olga each see exactly
one leave for carol, and later exactly one for dave, who closes his socket normally.
"""
import asyncio
import json
import threading
import time

from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts.services import token_issue
from tests.conftest import require
from tests.live import DEFAULT_TEST_REDIS, LiveServer, redis_available

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

HEARTBEAT = 1.0
ROOM = "channel:tale/room"


class Sock:
    """A `websockets` client in the room: keeps every frame it reads (with its arrival time) and
    heartbeats every interval until told to stop."""

    def __init__(self, server, token, label):
        self.server, self.token, self.label = server, token, label
        self.frames: list[tuple[float, dict]] = []
        self.arrived = asyncio.Event()
        self.beating = True
        self.tasks = []

    async def open(self):
        self.ws = await connect(self.server.ws, additional_headers={"Authorization": f"Bearer {self.token}"},
                                ping_interval=None, open_timeout=10)
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._beat())]
        await self.ws.send(json.dumps({"type": "subscribe", "topic": ROOM, "ref": "sub"}))
        await self.wait(lambda f: f["type"] == "presence.state")
        return self

    async def _read(self):
        try:
            async for raw in self.ws:
                self.frames.append((time.monotonic(), json.loads(raw)))
                self.arrived.set()
        except ConnectionClosed:
            pass

    async def _beat(self):
        try:
            while True:
                await asyncio.sleep(HEARTBEAT)
                if self.beating:
                    await self.ws.send(json.dumps({"type": "heartbeat", "state": "active"}))
        except ConnectionClosed:
            pass

    async def wait(self, predicate, timeout=10.0, start=0):
        """The first frame from index `start` on for which `predicate` holds: (index, time, frame)."""
        async with asyncio.timeout(timeout):
            seen = start
            while True:
                for i in range(seen, len(self.frames)):
                    if predicate(self.frames[i][1]):
                        return i, *self.frames[i]
                seen = len(self.frames)
                self.arrived.clear()
                await self.arrived.wait()

    async def heartbeat_acked(self):
        """One heartbeat the server has processed (its entry refreshed): the time of the ack."""
        mark = len(self.frames)
        await self.ws.send(json.dumps({"type": "heartbeat", "state": "active", "ref": "last"}))
        _, at, _ = await self.wait(lambda f: f.get("ref") == "last", start=mark)
        return at

    def diffs(self, start=0):
        return [f for _, f in self.frames[start:] if f["type"] == "presence.diff"]

    async def close(self):
        for task in self.tasks:
            task.cancel()
        await self.ws.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def leaves_of(diffs, username):
    return [e for d in diffs for e in d["leaves"] if e["username"] == username]


def start_all(servers):
    errors = []

    def start(server):
        try:
            server.start()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        for server in servers:
            server.stop()
        raise errors[0]


def presence(server, token):
    r = httpx.get(f"{server.base}/api/stories/tale/presence", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return {m["username"]: m for m in r.json()["members"]}


def test_a_killed_process_drops_only_its_connections_and_each_leave_is_announced_once(make_user, make_story):
    require(redis_available(), f"Redis at {DEFAULT_TEST_REDIS}")
    users = {name: make_user(name) for name in ("alice", "bob", "carol", "dave", "olga")}
    make_story(users["alice"], slug="tale", editors=[users[n] for n in ("bob", "carol", "dave", "olga")])
    tokens = {name: token_issue(user=user) for name, user in users.items()}
    env = {"MYTHLINE_REDIS_PREFIX": f"mythline-test-{time.monotonic_ns()}",
           "MYTHLINE_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    servers = [LiveServer(redis_url=DEFAULT_TEST_REDIS, env=env) for _ in range(3)]
    one, two, three = servers
    start_all(servers)

    async def go():
        socks = []
        try:
            alice = await Sock(two, tokens["alice"], "alice@2").open()
            olga = await Sock(three, tokens["olga"], "olga@3").open()
            socks += [alice, olga]
            bob1 = await Sock(one, tokens["bob"], "bob@1").open()
            bob2 = await Sock(two, tokens["bob"], "bob@2").open()
            carol = await Sock(one, tokens["carol"], "carol@1").open()
            dave = await Sock(three, tokens["dave"], "dave@3").open()
            socks += [bob1, bob2, carol, dave]
            # Everyone is in, as seen from every process.
            for server in servers:
                deadline = time.monotonic() + 10
                while True:
                    members = await asyncio.to_thread(presence, server, tokens["alice"])
                    if {n: m["connections"] for n, m in members.items()} == {
                            "alice": 1, "bob": 2, "carol": 1, "dave": 1, "olga": 1}:
                        break
                    assert time.monotonic() < deadline, members
                    await asyncio.sleep(0.05)
            # Let the joins reach the observers before the mark.
            for observer in (alice, olga):
                await observer.wait(lambda f: any(e["username"] == "dave" for e in f.get("joins", [])))
            marks = {alice: len(alice.frames), olga: len(olga.frames)}

            # Process 1's sockets heartbeat one last time, then the process dies without a word.
            for sock in (bob1, carol):
                sock.beating = False
            last_beat = max([await bob1.heartbeat_acked(), await carol.heartbeat_acked()])
            killed_at = time.monotonic()
            await asyncio.to_thread(one.kill)

            for observer in (alice, olga):
                _, left_at, diff = await observer.wait(
                    lambda f: f["type"] == "presence.diff" and leaves_of([f], "carol"), timeout=4 * HEARTBEAT + 5,
                    start=marks[observer])
                silent = left_at - last_beat
                assert silent >= 2 * HEARTBEAT - 0.2, f"{observer.label}: carol dropped after only {silent:.2f}s"
                # two intervals, plus up to one sweep period (a quarter interval), the coalescing
                # window (0.1 s) and delivery, with some room for a busy machine
                assert silent <= 2.25 * HEARTBEAT + 0.75, f"{observer.label}: carol left {silent:.2f}s after her last beat"
                _, _, diff = await observer.wait(
                    lambda f: f["type"] == "presence.diff" and any(
                        e["username"] == "bob" and e["connections"] == 1 for e in f["updates"]),
                    timeout=5, start=marks[observer])
            assert time.monotonic() - killed_at < 4 * HEARTBEAT

            # Every surviving process has swept that expiry several times over in one more interval.
            await asyncio.sleep(HEARTBEAT)
            for observer in (alice, olga):
                diffs = observer.diffs(marks[observer])
                assert len(leaves_of(diffs, "carol")) == 1, (observer.label, diffs)
                assert leaves_of(diffs, "bob") == [], (observer.label, diffs)
                assert not [e for d in diffs for e in d["joins"]], (observer.label, diffs)
                assert not [e for d in diffs for e in d["leaves"] if e["username"] != "carol"], diffs
            for server in (two, three):
                members = await asyncio.to_thread(presence, server, tokens["olga"])
                assert {n: m["connections"] for n, m in members.items()} == {
                    "alice": 1, "bob": 1, "dave": 1, "olga": 1}

            # A normal close on process 3: one leave, seen once by the observer on each process.
            marks = {alice: len(alice.frames), olga: len(olga.frames)}
            await dave.close()
            socks.remove(dave)
            for observer in (alice, olga):
                await observer.wait(lambda f: f["type"] == "presence.diff" and leaves_of([f], "dave"),
                                    start=marks[observer])
            await asyncio.sleep(HEARTBEAT / 2)
            for observer in (alice, olga):
                assert len(leaves_of(observer.diffs(marks[observer]), "dave")) == 1
        finally:
            for sock in socks:
                try:
                    await sock.close()
                except Exception:  # noqa: BLE001 - sockets of the killed process are already gone
                    pass

    try:
        asyncio.run(go())
        for server in (two, three):
            assert "Traceback" not in server.output(), server.output()[-3000:]
    finally:
        for server in servers:
            server.stop()
            server.log.close()
            Path(server.log.name).unlink(missing_ok=True)
        client = redis.Redis.from_url(DEFAULT_TEST_REDIS)
        keys = list(client.scan_iter(f"{env['MYTHLINE_REDIS_PREFIX']}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
