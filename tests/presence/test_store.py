"""One contract, two presence stores: the in-process `MemoryPresenceStore` and the Redis one.

Every test runs against both (`store` is parametrized). Time is passed explicitly (`now=`), so
expiry is exact and nothing sleeps. The Redis store gets a key prefix unique to the test and its
keys are deleted afterwards; without Redis those cases skip (and fail under MYTHLINE_REQUIRE_ALL=1).
"""
import asyncio
import threading
import uuid

import pytest

from presence.store import MemoryPresenceStore, RedisPresenceStore, Removal, Touch
from tests.conftest import require
from tests.live import DEFAULT_TEST_REDIS, redis_available

HEARTBEAT = 10.0
TTL = 2 * HEARTBEAT
T0 = 1_000_000.0
ROOM, OTHER_ROOM = 7, 8


@pytest.fixture(autouse=True)
def _expiry(settings):
    settings.MYTHLINE_HEARTBEAT_SECONDS = HEARTBEAT
    settings.MYTHLINE_PRESENCE_EXPIRY_FACTOR = 2


class Stores:
    """`new()` gives another handle on the same presence data: for Redis a separate store object
    with its own client (as another server process has); in memory the same store (one process)."""

    def __init__(self, backend):
        self.backend = backend
        self.prefix = f"mythline-test-{uuid.uuid4().hex[:12]}:presence"
        self.made = []

    def new(self):
        if self.backend == "memory":
            if not self.made:
                self.made.append(MemoryPresenceStore())
            return self.made[0]
        store = RedisPresenceStore(DEFAULT_TEST_REDIS, self.prefix)
        self.made.append(store)
        return store

    async def close(self):
        """Close the Redis clients of the running loop (each loop has its own)."""
        loop = asyncio.get_running_loop()
        for store in self.made:
            client = getattr(store, "_clients", {}).pop(loop, None)
            if client is not None:
                await client.aclose()

    def run(self, coro_fn):
        async def go():
            try:
                return await coro_fn()
            finally:
                await self.close()
        return asyncio.run(go())

    def cleanup(self):
        if self.backend == "redis":
            import redis

            client = redis.Redis.from_url(DEFAULT_TEST_REDIS)
            keys = list(client.scan_iter(f"{self.prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture(params=["memory", "redis"])
def stores(request):
    if request.param == "redis":
        require(redis_available(), f"Redis at {DEFAULT_TEST_REDIS}")
    made = Stores(request.param)
    yield made
    made.cleanup()


def meta(uid, state="active", **extra):
    return {"u": uid, "n": f"user{uid}", "d": f"User {uid}", "k": "human", "s": state, "j": T0, "t": 0, "c": None,
            **extra}


def test_touch_reports_new_connection_join_and_change(stores):
    store = stores.new()

    async def go():
        assert await store.touch(ROOM, "c1", meta(1), now=T0) == Touch(new_connection=True, joined=True, changed=True)
        # A heartbeat with nothing new: a refresh only.
        assert await store.touch(ROOM, "c1", meta(1), now=T0 + 5) == Touch(False, False, False)
        assert await store.touch(ROOM, "c1", meta(1, "away"), now=T0 + 6) == Touch(False, False, True)
        assert await store.touch(ROOM, "c1", meta(1, "away", t=T0 + 12), now=T0 + 7) == Touch(False, False, True)
        # The user's second tab: a new connection, not a join.
        assert await store.touch(ROOM, "c2", meta(1), now=T0 + 8) == Touch(True, False, True)
        # Another user, and the same connection id in another room, are joins of their own.
        assert await store.touch(ROOM, "c3", meta(2), now=T0 + 8) == Touch(True, True, True)
        assert await store.touch(OTHER_ROOM, "c1", meta(1), now=T0 + 8) == Touch(True, True, True)
        live = await store.connections(ROOM, now=T0 + 9)
        assert sorted((m["u"], m["s"]) for m, _ in live) == [(1, "active"), (1, "away"), (2, "active")]
        assert {m["u"]: m for m, _ in live if m["s"] == "away"}[1] == meta(1, "away", t=T0 + 12)
        assert sorted(expires for _, expires in live) == [T0 + 7 + TTL, T0 + 8 + TTL, T0 + 8 + TTL]
    stores.run(go)


def test_join_on_first_connection_leave_on_last(stores):
    store = stores.new()

    async def go():
        assert (await store.touch(ROOM, "a1", meta(1), now=T0)).joined
        assert not (await store.touch(ROOM, "a2", meta(1), now=T0)).joined
        assert not (await store.touch(ROOM, "a3", meta(1), now=T0)).joined
        assert (await store.touch(ROOM, "b1", meta(2), now=T0)).joined
        assert (await store.touch(OTHER_ROOM, "a1", meta(1), now=T0)).joined

        assert await store.remove(ROOM, "a2") == Removal("a2", meta(1), left=False)
        assert await store.remove(ROOM, "a2") is None  # already gone: nobody reports it twice
        assert await store.remove(ROOM, "nope") is None
        assert (await store.remove(ROOM, "a1")).left is False
        last = await store.remove(ROOM, "a3")
        assert last.left is True and last.user_id == 1 and last.meta == meta(1)
        # user 2 and the other room are untouched
        assert [m["u"] for m, _ in await store.connections(ROOM, now=T0)] == [2]
        assert [m["u"] for m, _ in await store.connections(OTHER_ROOM, now=T0)] == [1]
        # Back after leaving: a join again.
        assert (await store.touch(ROOM, "a4", meta(1), now=T0 + 1)).joined
        assert (await store.remove(ROOM, "b1")).left is True
    stores.run(go)


def test_expiry_by_sweep(stores):
    store = stores.new()

    async def go():
        await store.touch(ROOM, "a1", meta(1), now=T0)
        await store.touch(ROOM, "b1", meta(2), now=T0 + 5)
        await store.touch(ROOM, "b2", meta(2), now=T0 + 6)
        await store.touch(ROOM, "a1", meta(1), now=T0 + 15)  # a heartbeat pushes a1's expiry to T0 + 35

        assert await store.sweep(ROOM, now=T0 + 24.9) == []
        gone = await store.sweep(ROOM, now=T0 + 25)  # b1 expires at T0 + 25 exactly
        assert gone == [Removal("b1", meta(2), left=False)]  # user 2 still has b2
        gone = await store.sweep(ROOM, now=T0 + 30)
        assert gone == [Removal("b2", meta(2), left=True)]
        assert await store.sweep(ROOM, now=T0 + 30) == []
        assert [m["u"] for m, _ in await store.connections(ROOM, now=T0 + 30)] == [1]
        assert await store.sweep(ROOM, now=T0 + 34.9) == []
        assert await store.sweep(ROOM, now=T0 + 36) == [Removal("a1", meta(1), left=True)]
        assert await store.remove(ROOM, "a1") is None  # swept entries are gone for their owner too
        assert await store.connections(ROOM, now=T0) == []
        # A swept connection that heartbeats again is new, and its user joins again.
        assert await store.touch(ROOM, "a1", meta(1), now=T0 + 40) == Touch(True, True, True)
    stores.run(go)


def _expiring_population(store):
    """40 users with 1-3 connections each expiring at T0 + TTL; users 100-104 also hold a connection
    refreshed later, so they must not leave."""
    async def fill():
        expected = {}
        for uid in range(1, 41):
            for k in range(1 + uid % 3):
                await store.touch(ROOM, f"c{uid}-{k}", meta(uid), now=T0)
                expected[f"c{uid}-{k}"] = uid
        for uid in range(100, 105):
            await store.touch(ROOM, f"old{uid}", meta(uid), now=T0)
            await store.touch(ROOM, f"new{uid}", meta(uid), now=T0 + 30)
            expected[f"old{uid}"] = uid
        return expected
    return fill


def _check_removals(removals, expected):
    ids = [r.conn_id for r in removals]
    assert sorted(ids) == sorted(expected), "each expired connection is reported by exactly one sweeper"
    leaves = sorted(r.user_id for r in removals if r.left)
    assert leaves == list(range(1, 41)), "each leave is announced exactly once; users still connected stay"


def test_two_concurrent_sweepers_announce_each_leave_once(stores):
    one, two = stores.new(), stores.new()

    async def go():
        expected = await _expiring_population(one)()
        results = await asyncio.gather(*[(one if i % 2 else two).sweep(ROOM, now=T0 + TTL + 1) for i in range(8)])
        _check_removals([r for batch in results for r in batch], expected)
        assert sorted(m["u"] for m, _ in await one.connections(ROOM, now=T0 + TTL + 1)) == list(range(100, 105))
    stores.run(go)


def test_sweepers_in_two_threads_announce_each_leave_once(stores):
    """Two event loops in two threads, as two hubs (or processes) sweeping at the same moment."""
    one, two = stores.new(), stores.new()
    expected = stores.run(_expiring_population(one))
    barrier = threading.Barrier(2)
    found, errors = [], []

    def sweeper(store):
        async def sweep_many():
            barrier.wait(5)
            return [r for _ in range(5) for r in await store.sweep(ROOM, now=T0 + TTL + 1)]
        try:
            found.extend(stores.run(sweep_many))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweeper, args=(s,)) for s in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    _check_removals(found, expected)


def test_connections_hide_expired_entries(stores):
    store = stores.new()

    async def go():
        await store.touch(ROOM, "a1", meta(1), now=T0)
        await store.touch(ROOM, "b1", meta(2, "idle"), now=T0 + 15)
        assert sorted(m["u"] for m, _ in await store.connections(ROOM, now=T0 + 10)) == [1, 2]
        # a1 expired at T0 + 20 and nobody swept yet: it is not shown anyway.
        assert await store.connections(ROOM, now=T0 + 20) == [(meta(2, "idle"), T0 + 15 + TTL)]
        assert await store.connections(ROOM, now=T0 + 21) == [(meta(2, "idle"), T0 + 15 + TTL)]
        assert await store.connections(ROOM, now=T0 + 36) == []
        assert await store.connections(OTHER_ROOM, now=T0) == []
        # ... but it is still there to be swept, once.
        assert [r.conn_id for r in await store.sweep(ROOM, now=T0 + 21)] == ["a1"]
    stores.run(go)


def test_rooms_lists_rooms_with_connections(stores):
    store = stores.new()

    async def go():
        assert await store.rooms() == []
        await store.touch(ROOM, "a1", meta(1), now=T0)
        await store.touch(OTHER_ROOM, "a1", meta(1), now=T0 + 10)
        await store.touch(OTHER_ROOM, "b1", meta(2), now=T0 + 10)
        assert sorted(await store.rooms()) == [ROOM, OTHER_ROOM]
        await store.remove(ROOM, "a1")
        assert await store.rooms() == [OTHER_ROOM]
        await store.remove(OTHER_ROOM, "a1")
        assert await store.rooms() == [OTHER_ROOM]
        assert len(await store.sweep(OTHER_ROOM, now=T0 + 10 + TTL)) == 1
        assert await store.rooms() == []
    stores.run(go)


def test_shown_entries_are_swapped_and_shared_by_every_handle(stores):
    """What clients were last told about each user: every process compares with the same record."""
    one, two = stores.new(), stores.new()

    async def go():
        assert await one.swap_shown(ROOM, {}) == {}
        assert await one.swap_shown(ROOM, {1: '{"s":"active"}', 2: '{"s":"idle"}'}) == {1: None, 2: None}
        assert await two.swap_shown(ROOM, {1: '{"s":"away"}', 2: None}) == {1: '{"s":"active"}', 2: '{"s":"idle"}'}
        assert await one.swap_shown(ROOM, {1: '{"s":"away"}', 2: None}) == {1: '{"s":"away"}', 2: None}
        assert await one.swap_shown(OTHER_ROOM, {1: "x"}) == {1: None}
    stores.run(go)


def test_many_concurrent_touches_all_succeed(stores):
    """A server process with a thousand sockets heartbeats many at once: the store queues them
    (redis-py's asyncio pool used to refuse the 101st concurrent command with MaxConnectionsError,
    and the socket whose heartbeat failed was closed with 1011)."""
    store = stores.new()

    async def go():
        results = await asyncio.gather(*[store.touch(ROOM, f"c{i}", meta(i), now=T0) for i in range(600)])
        assert all(r.joined for r in results)
        assert len(await store.connections(ROOM, now=T0)) == 600
    stores.run(go)


def test_connections_of_some_users_only(stores):
    """A diff reads only its changed users' connections; ids start with the user id and ':'."""
    store = stores.new()

    async def go():
        for uid, conn in ((1, "1:a"), (1, "1:b"), (12, "12:a"), (2, "2:a")):
            await store.touch(ROOM, conn, meta(uid), now=T0)
        await store.touch(ROOM, "1:old", meta(1, "away"), now=T0 - TTL)  # expired by T0 + 1
        await store.touch(OTHER_ROOM, "2:x", meta(2), now=T0)
        got = await store.connections(ROOM, now=T0 + 1, user_ids=[1, 2])
        assert sorted((m["u"], m["s"]) for m, _ in got) == [(1, "active"), (1, "active"), (2, "active")]
        assert await store.connections(ROOM, now=T0 + 1, user_ids=[3]) == []
        assert [m["u"] for m, _ in await store.connections(ROOM, now=T0 + 1, user_ids={12})] == [12]
        assert len(await store.connections(ROOM, now=T0 + 1)) == 4
    stores.run(go)
