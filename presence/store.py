"""The presence store: live connections per room, each with an expiry.

One interface, two implementations: `MemoryPresenceStore` (default, one server process) and
`RedisPresenceStore` (REDIS_URL set, many processes). A connection is an entry that expires two
heartbeat intervals after its last heartbeat unless refreshed, so connections of a process that
died (SIGKILL, no disconnect handler) expire by themselves. Nothing relies on disconnect
handlers or on Redis keyspace notifications: any process sweeps expired entries, and an atomic
step (a Lua script; a lock in memory) tells a user's 0 -> 1 (join) and 1 -> 0 (leave)
connection transitions, so each leave is found by exactly one sweeper.

Per room (a presence channel's pk):
- `conns`: connection id -> expiry time (a Redis sorted set scored by expiry);
- `meta`: connection id -> JSON {u: user id, n: username, d: display name, k: kind, s: state,
  j: joined at, t: typing until, c: cursor};
- `users`: user id -> number of live connections;
- `shown`: user id -> the user's entry as last broadcast (by any process), so that each process
  compares against what clients were actually told, not against what it sent itself.
The database is never written on a heartbeat.

Connection ids start with the user id and a colon (`PresenceHub` makes them so): reading some
users' connections (`connections(room, user_ids=...)`, what a diff needs) skips everyone else's
entries without decoding them.
"""
import asyncio
import json
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

STATE_RANK = {"active": 0, "idle": 1, "away": 2}


@dataclass(frozen=True)
class Touch:
    new_connection: bool
    joined: bool  # the user's first live connection in the room
    changed: bool  # the connection's meta differs from before


@dataclass(frozen=True)
class Removal:
    conn_id: str
    meta: dict  # the connection's last meta (who it was)
    left: bool  # the user's last live connection in the room

    @property
    def user_id(self) -> int:
        return self.meta["u"]


def ttl_seconds() -> float:
    return settings.MYTHLINE_HEARTBEAT_SECONDS * settings.MYTHLINE_PRESENCE_EXPIRY_FACTOR


def encode_meta(meta: dict) -> str:
    return json.dumps(meta, separators=(",", ":"), sort_keys=True)


def _user_prefixes(user_ids) -> set[str] | None:
    return None if user_ids is None else {str(uid) for uid in user_ids}


class MemoryPresenceStore:
    backend = "memory"

    def __init__(self):
        self._lock = threading.Lock()
        self._rooms: dict[int, dict] = {}

    def _room(self, room_id):
        return self._rooms.setdefault(room_id, {"conns": {}, "meta": {}, "users": {}, "shown": {}})

    async def touch(self, room_id: int, conn_id: str, meta: dict, *, now: float | None = None) -> Touch:
        now = time.time() if now is None else now
        encoded = encode_meta(meta)
        with self._lock:
            room = self._room(room_id)
            new = conn_id not in room["conns"]
            room["conns"][conn_id] = now + ttl_seconds()
            old = room["meta"].get(conn_id)
            room["meta"][conn_id] = encoded
            joined = False
            if new:
                count = room["users"].get(meta["u"], 0) + 1
                room["users"][meta["u"]] = count
                joined = count == 1
        return Touch(new, joined, old != encoded)

    def _remove_locked(self, room, conn_id) -> Removal | None:
        if room["conns"].pop(conn_id, None) is None:
            return None
        meta = json.loads(room["meta"].pop(conn_id))
        count = room["users"].get(meta["u"], 0) - 1
        if count <= 0:
            room["users"].pop(meta["u"], None)
        else:
            room["users"][meta["u"]] = count
        return Removal(conn_id, meta, count <= 0)

    async def remove(self, room_id: int, conn_id: str) -> Removal | None:
        with self._lock:
            return self._remove_locked(self._room(room_id), conn_id)

    async def sweep(self, room_id: int, *, now: float | None = None) -> list[Removal]:
        now = time.time() if now is None else now
        with self._lock:
            room = self._room(room_id)
            expired = [c for c, expires in room["conns"].items() if expires <= now]
            return [r for r in (self._remove_locked(room, c) for c in expired) if r]

    async def rooms(self) -> list[int]:
        with self._lock:
            return [room_id for room_id, room in self._rooms.items() if room["conns"]]

    async def connections(self, room_id: int, *, now: float | None = None,
                          user_ids=None) -> list[tuple[dict, float]]:
        """Live connections: (meta, expires_at); only those of `user_ids` when given."""
        now = time.time() if now is None else now
        wanted = _user_prefixes(user_ids)
        with self._lock:
            room = self._room(room_id)
            return [(json.loads(room["meta"][c]), expires) for c, expires in room["conns"].items()
                    if expires > now and (wanted is None or c.partition(":")[0] in wanted)]

    async def swap_shown(self, room_id: int, shown: dict[int, str | None]) -> dict[int, str | None]:
        """Record each user's entry as now broadcast (None: gone) and return the previous ones."""
        with self._lock:
            room = self._room(room_id)["shown"]
            previous = {uid: room.get(uid) for uid in shown}
            for uid, entry in shown.items():
                if entry is None:
                    room.pop(uid, None)
                else:
                    room[uid] = entry
            return previous

    async def ping(self) -> None:
        return None

    def health(self) -> dict:
        return {"backend": self.backend}


# KEYS: conns, meta, users, rooms. ARGV: conn id, user id, expires at, meta JSON, room id.
_TOUCH = """
local new = redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local old = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
local joined = 0
if new == 1 then
  if redis.call('HINCRBY', KEYS[3], ARGV[2], 1) == 1 then joined = 1 end
end
local changed = 1
if old == ARGV[4] then changed = 0 end
return {new, joined, changed}
"""

# Removes connections that are still there: ARGV[1] = 'expired' sweeps every one whose expiry is
# at most ARGV[2]; otherwise ARGV[1] is one connection id. The last ARGV is the room id. Returns {conn, user, left} triples: only the caller
# whose ZREM removed an entry reports it, so concurrent sweepers announce each leave once.
_REMOVE = """
local ids
if ARGV[1] == 'expired' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
else
  ids = {ARGV[1]}
end
local out = {}
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local meta = redis.call('HGET', KEYS[2], id)
    redis.call('HDEL', KEYS[2], id)
    if meta then
      local uid = tostring(cjson.decode(meta)['u'])
      local left = 0
      if redis.call('HINCRBY', KEYS[3], uid, -1) <= 0 then
        redis.call('HDEL', KEYS[3], uid)
        left = 1
      end
      table.insert(out, id)
      table.insert(out, meta)
      table.insert(out, left)
    end
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[#ARGV]) end
return out
"""

# KEYS: shown. ARGV: user id, entry JSON ('' = gone), ... Returns the previous entries ('' = none).
_SWAP_SHOWN = """
local out = {}
for i = 1, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  table.insert(out, old or '')
end
return out
"""


class RedisPresenceStore:
    backend = "redis"

    def __init__(self, url: str, prefix: str):
        self.url, self.prefix = url, prefix
        self._clients = {}

    @property
    def client(self):
        # redis.asyncio clients are bound to the event loop that created them.
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # A blocking pool: with many sockets heartbeating at once, commands wait for one of
            # its connections. redis-py's default asyncio pool (100 connections) raises
            # MaxConnectionsError on the 101st concurrent command instead, which closed sockets.
            pool = aioredis.BlockingConnectionPool.from_url(self.url, max_connections=64, timeout=20,
                                                            socket_timeout=5, socket_connect_timeout=2)
            client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
            self._clients = {lp: c for lp, c in self._clients.items() if not lp.is_closed()}
            self._clients[loop] = client
            client.touch_script = client.register_script(_TOUCH)
            client.remove_script = client.register_script(_REMOVE)
            client.swap_shown_script = client.register_script(_SWAP_SHOWN)
        return client

    def _keys(self, room_id):
        p = f"{self.prefix}:{room_id}"
        return [f"{p}:conns", f"{p}:meta", f"{p}:users", f"{self.prefix}:rooms"]

    async def touch(self, room_id: int, conn_id: str, meta: dict, *, now: float | None = None) -> Touch:
        now = time.time() if now is None else now
        client = self.client
        new, joined, changed = await client.touch_script(
            keys=self._keys(room_id), args=[conn_id, meta["u"], now + ttl_seconds(), encode_meta(meta), room_id])
        return Touch(bool(new), bool(joined), bool(changed))

    def _removals(self, flat) -> list[Removal]:
        return [Removal(flat[i].decode(), json.loads(flat[i + 1]), bool(flat[i + 2])) for i in range(0, len(flat), 3)]

    async def remove(self, room_id: int, conn_id: str) -> Removal | None:
        client = self.client
        out = self._removals(await client.remove_script(keys=self._keys(room_id), args=[conn_id, room_id]))
        return out[0] if out else None

    async def sweep(self, room_id: int, *, now: float | None = None) -> list[Removal]:
        now = time.time() if now is None else now
        client = self.client
        return self._removals(await client.remove_script(keys=self._keys(room_id), args=["expired", now, room_id]))

    async def rooms(self) -> list[int]:
        return [int(r) for r in await self.client.smembers(f"{self.prefix}:rooms")]

    async def connections(self, room_id: int, *, now: float | None = None,
                          user_ids=None) -> list[tuple[dict, float]]:
        now = time.time() if now is None else now
        conns_key, meta_key, _, _ = self._keys(room_id)
        client = self.client
        wanted = _user_prefixes(user_ids)
        if wanted is None:
            async with client.pipeline(transaction=False) as pipe:
                pipe.zrangebyscore(conns_key, f"({now}", "+inf", withscores=True)
                pipe.hgetall(meta_key)
                live, metas = await pipe.execute()
            return [(json.loads(metas[conn]), score) for conn, score in live if conn in metas]
        live = [(conn, score) for conn, score in await client.zrangebyscore(conns_key, f"({now}", "+inf", withscores=True)
                if conn.partition(b":")[0].decode() in wanted]
        if not live:
            return []
        metas = await client.hmget(meta_key, [conn for conn, _ in live])
        return [(json.loads(meta), score) for (_, score), meta in zip(live, metas) if meta is not None]

    async def swap_shown(self, room_id: int, shown: dict[int, str | None]) -> dict[int, str | None]:
        if not shown:
            return {}
        args = [x for uid, entry in shown.items() for x in (uid, entry or "")]
        old = await self.client.swap_shown_script(keys=[f"{self.prefix}:{room_id}:shown"], args=args)
        return {uid: (o.decode() if o else None) for uid, o in zip(shown, old)}

    async def ping(self) -> None:
        await self.client.ping()

    def health(self) -> dict:
        import redis

        redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2).ping()
        return {"backend": self.backend}


@lru_cache(maxsize=1)
def get_presence_store():
    if settings.REDIS_URLS:
        return RedisPresenceStore(settings.REDIS_URLS[0], f"{settings.MYTHLINE_REDIS_PREFIX}:presence")
    return MemoryPresenceStore()
