"""The open connections of a server process: per-user caps, rights groups and the revocation sweep.

Every WebSocket and SSE stream registers here when it opens (`Connections.open`) and leaves when
it ends. Opening:
- takes a lease on one of the user's `MYTHLINE_MAX_SOCKETS_PER_USER` socket places (or
  `MYTHLINE_MAX_SSE_PER_USER` stream places), counted across every server process: a lease is an
  entry with an expiry in the presence store's backend (memory, or Redis when REDIS_URL is set),
  refreshed every heartbeat interval, so the places of a process that died free themselves;
- joins the user's rights group (messaging/rights.py) for the connection's inbox.

Every heartbeat interval, each process refreshes its leases and asks the database, in one query
for all of its connections, which of their tokens were revoked and which users were deactivated:
those connections get a `rights.changed` event in their inbox and close, even when the event the
service published was lost.
"""
import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings

from messaging.fanout import Inbox, get_fanout, one_per_loop
from messaging.rights import rights_event, story_rights_group, user_rights_group
from mythline_site.errors import RateLimited

logger = logging.getLogger("mythline.connections")

CHUNK = 1000  # ids per query in the sweep


@dataclass(eq=False)
class Connection:
    """What the registry knows of a socket or stream."""

    kind: str  # "ws" or "sse"
    conn_id: str
    user_id: int
    token_id: int | None  # the bearer token it authenticated with; None for a session
    inbox: Inbox
    story_slugs: dict = field(default_factory=dict)  # slug -> topics held in that story


def lease_ttl() -> float:
    return settings.MYTHLINE_HEARTBEAT_SECONDS * settings.MYTHLINE_PRESENCE_EXPIRY_FACTOR


def cap_for(kind: str) -> int:
    return settings.MYTHLINE_MAX_SOCKETS_PER_USER if kind == "ws" else settings.MYTHLINE_MAX_SSE_PER_USER


class MemoryLeases:
    """Leases in this process (the embedded configuration: one process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[tuple[str, int], dict[str, float]] = {}

    async def acquire(self, kind: str, user_id: int, conn_id: str, cap: int) -> bool:
        now = time.time()
        with self._lock:
            held = self._held.setdefault((kind, user_id), {})
            for conn, expires in list(held.items()):
                if expires <= now:
                    del held[conn]
            if conn_id not in held and len(held) >= cap:
                return False
            held[conn_id] = now + lease_ttl()
            return True

    async def refresh(self, conns: list[Connection]) -> None:
        expires = time.time() + lease_ttl()
        with self._lock:
            for c in conns:
                held = self._held.get((c.kind, c.user_id))
                if held is not None and c.conn_id in held:
                    held[c.conn_id] = expires

    async def release(self, kind: str, user_id: int, conn_id: str) -> None:
        with self._lock:
            held = self._held.get((kind, user_id))
            if held is not None:
                held.pop(conn_id, None)
                if not held:
                    del self._held[(kind, user_id)]


_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) - tonumber(ARGV[2])) + 1)
return 1
"""


class RedisLeases:
    """Leases shared by every process: a sorted set per (kind, user) scored by expiry."""

    def __init__(self, store, prefix: str):
        self.store, self.prefix = store, prefix  # the presence store: its per-loop Redis client

    def key(self, kind: str, user_id: int) -> str:
        return f"{self.prefix}:{kind}:{user_id}"

    async def acquire(self, kind: str, user_id: int, conn_id: str, cap: int) -> bool:
        client = self.store.client
        script = getattr(client, "lease_script", None)
        if script is None:
            script = client.lease_script = client.register_script(_ACQUIRE)
        now = time.time()
        return bool(await script(keys=[self.key(kind, user_id)], args=[conn_id, now, now + lease_ttl(), cap]))

    async def refresh(self, conns: list[Connection]) -> None:
        if not conns:
            return
        expires = time.time() + lease_ttl()
        async with self.store.client.pipeline(transaction=False) as pipe:
            for c in conns:
                key = self.key(c.kind, c.user_id)
                pipe.zadd(key, {c.conn_id: expires}, xx=True)
                pipe.expire(key, int(lease_ttl()) + 1)
            await pipe.execute()

    async def release(self, kind: str, user_id: int, conn_id: str) -> None:
        await self.store.client.zrem(self.key(kind, user_id), conn_id)


_memory_leases = MemoryLeases()


def get_leases():
    from presence.store import get_presence_store

    store = get_presence_store()
    if store.backend == "redis":
        return RedisLeases(store, settings.MYTHLINE_LEASE_KEY_PREFIX)
    return _memory_leases


def _revoked(token_ids: list[int], user_ids: list[int]) -> tuple[set[int], set[int]]:
    """Of these, the tokens revoked and the users deactivated (or deleted)."""
    from accounts.models import ApiToken, User

    revoked, gone = set(), set()
    for i in range(0, len(token_ids), CHUNK):
        chunk = token_ids[i:i + CHUNK]
        live = set(ApiToken.objects.filter(pk__in=chunk, revoked_at__isnull=True).values_list("pk", flat=True))
        revoked.update(set(chunk) - live)
    for i in range(0, len(user_ids), CHUNK):
        chunk = user_ids[i:i + CHUNK]
        active = set(User.objects.filter(pk__in=chunk, is_active=True).values_list("pk", flat=True))
        gone.update(set(chunk) - active)
    return revoked, gone


class Connections:
    def __init__(self):
        self.live: dict[str, Connection] = {}
        self.fanout = get_fanout()
        self.leases = get_leases()
        self.task: asyncio.Task | None = None

    async def open(self, conn: Connection) -> None:
        """Register `conn` (raises RateLimited past the user's cap) and join its user's rights group."""
        await self.reserve(conn)
        await self.attach(conn)

    async def reserve(self, conn: Connection) -> None:
        """Take one of the user's places (RateLimited past the cap). A place never attached (an SSE
        response the server never started) frees itself when its lease runs out."""
        cap = cap_for(conn.kind)
        if not await self.leases.acquire(conn.kind, conn.user_id, conn.conn_id, cap):
            what = "sockets" if conn.kind == "ws" else "event streams"
            raise RateLimited(f"You have {cap} {what} open, the most allowed; close one first.",
                              retry_after=lease_ttl(), details={"limit": cap, "kind": conn.kind})

    async def attach(self, conn: Connection) -> None:
        self.live[conn.conn_id] = conn
        await self.fanout.join(user_rights_group(conn.user_id), conn.inbox)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self, conn: Connection) -> None:
        if self.live.pop(conn.conn_id, None) is None:
            return
        await self.fanout.leave(user_rights_group(conn.user_id), conn.inbox)
        for slug in list(conn.story_slugs):
            await self.leave_story(conn, slug, all_topics=True)
        try:
            await self.leases.release(conn.kind, conn.user_id, conn.conn_id)
        except Exception:  # noqa: BLE001 - the lease expires by itself
            logger.exception("releasing the lease of %s failed", conn.conn_id)

    async def join_story(self, conn: Connection, slug: str) -> None:
        """`conn` holds one more topic of story `slug`: it hears the story's rights changes."""
        held = conn.story_slugs.get(slug, 0)
        conn.story_slugs[slug] = held + 1
        if not held:
            await self.fanout.join(story_rights_group(slug), conn.inbox)

    async def leave_story(self, conn: Connection, slug: str, *, all_topics: bool = False) -> None:
        held = conn.story_slugs.get(slug, 0) - 1
        if held > 0 and not all_topics:
            conn.story_slugs[slug] = held
            return
        if conn.story_slugs.pop(slug, None) is not None:
            await self.fanout.leave(story_rights_group(slug), conn.inbox)

    async def sweep(self) -> None:
        """Refresh this process's leases; close connections whose token or user was revoked."""
        conns = list(self.live.values())
        if not conns:
            return
        await self.leases.refresh(conns)
        token_ids = sorted({c.token_id for c in conns if c.token_id is not None})
        user_ids = sorted({c.user_id for c in conns})
        revoked, gone = await database_sync_to_async(_revoked)(token_ids, user_ids)
        for c in conns:
            if c.user_id in gone:
                c.inbox.put(rights_event(user_id=c.user_id, deactivated=True))
            elif c.token_id in revoked:
                c.inbox.put(rights_event(user_id=c.user_id, token_ids=[c.token_id]))

    async def _sweep_forever(self) -> None:
        while self.live:
            await asyncio.sleep(settings.MYTHLINE_HEARTBEAT_SECONDS)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - try again on the next round
                logger.exception("connection sweep failed")


_registries: dict[asyncio.AbstractEventLoop, Connections] = {}


def get_connections() -> Connections:
    """The connection registry of the running event loop (one per server process)."""
    return one_per_loop(_registries, Connections)
