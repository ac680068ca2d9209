"""Presence: who is in a room, how active, typing, cursors, and agents' status (SPEC 8).

`PresenceHub` (one per server process and event loop) tracks this process's connections in the
store, sweeps expired ones (of any process), and broadcasts `presence.diff` frames. Changes
within MYTHLINE_PRESENCE_COALESCE_SECONDS are merged per user into one frame per room: a user
who joins then leaves inside the window is no change at all, and an update that changes
nothing visible is not sent.

A user's entry aggregates their connections: present while one is alive, the most active
state shown, `connections` counting tabs and processes alike.
"""
import asyncio
import logging
import time
from collections import defaultdict
from datetime import datetime, timezone

from channels.db import database_sync_to_async
from django.conf import settings

from messaging import frames
from messaging.frames import dumps
from messaging.fanout import group_send, one_per_loop
from presence.store import STATE_RANK, encode_meta, get_presence_store, ttl_seconds

logger = logging.getLogger("mythline.presence")


def iso_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def connection_meta(user, *, state: str = "active", joined_at: float | None = None) -> dict:
    return {"u": user.pk, "n": user.username, "d": user.display_name or user.username,
            "k": "agent" if user.is_agent else "human", "s": state, "j": joined_at or time.time(), "t": 0, "c": None}


def aggregate(conns: list[tuple[dict, float]], *, now: float | None = None) -> dict:
    """One user's entry from their live connections (meta, expires_at)."""
    now = time.time() if now is None else now
    metas = [m for m, _ in conns]
    first = metas[0]
    cursors = [m["c"] for m in metas if m.get("c")]
    return {
        "username": first["n"], "display_name": first["d"], "kind": first["k"],
        "state": min((m["s"] for m in metas), key=lambda s: STATE_RANK.get(s, 9)),
        "connections": len(metas),
        "joined_at": iso_ts(min(m["j"] for m in metas)),
        "last_seen": iso_ts(max(expires for _, expires in conns) - ttl_seconds()),
        "typing": any(m.get("t", 0) > now for m in metas),
        "cursor": max(cursors, key=lambda c: c.get("at", 0)) if cursors else None,
    }


def _visible(entry: dict) -> dict:
    """What a diff compares: everything but the heartbeat clock."""
    return {k: v for k, v in entry.items() if k != "last_seen"}


async def room_members(room_id: int, user_ids=None) -> dict[int, dict]:
    """Present users of the room (only among `user_ids` when given) and their entries."""
    by_user = defaultdict(list)
    for meta, expires in await get_presence_store().connections(room_id, user_ids=user_ids):
        by_user[meta["u"]].append((meta, expires))
    return {uid: aggregate(conns) for uid, conns in by_user.items()}


def agents_of_story(story_id: int, connections: dict[str, int] | None = None) -> list[dict]:
    """Every agent of the story with its reported status (sync: reads the database)."""
    from stories.models import Participant

    connections = connections or {}
    rows = (Participant.objects.filter(story_id=story_id, user__is_agent=True)
            .select_related("user__agent_profile").order_by("user__username"))
    return [agent_entry(p.user, connections.get(p.user.username, 0)) for p in rows if hasattr(p.user, "agent_profile")]


def agent_entry(user, connections: int = 0) -> dict:
    profile = user.agent_profile
    last_seen = profile.last_seen.isoformat().replace("+00:00", "Z") if profile.last_seen else None
    return {"username": user.username, "display_name": user.display_name or user.username, "kind": "agent",
            "capabilities": profile.capabilities, "status": profile.status, "task": profile.task,
            "progress": profile.progress, "last_seen": last_seen, "connections": connections}


def state_payload(members: dict[int, dict], story_id: int) -> dict:
    """`{"members": [...], "agents": [...]}`: the presence.state payload (sync: reads agents)."""
    by_name = {e["username"]: e for e in members.values()}
    agents = agents_of_story(story_id, {name: e["connections"] for name, e in by_name.items()})
    for agent in agents:
        if agent["username"] in by_name:
            by_name[agent["username"]]["agent"] = {k: agent[k] for k in ("status", "task", "progress")}
    return {"members": sorted(members.values(), key=lambda e: e["username"]), "agents": agents}


async def room_state(room_id: int, story_id: int) -> dict:
    return await database_sync_to_async(state_payload)(await room_members(room_id), story_id)


class Room:
    """What the hub needs to know of a presence channel."""

    __slots__ = ("id", "story_id", "topic", "group")

    def __init__(self, id, story_id, topic, group):
        self.id, self.story_id, self.topic, self.group = id, story_id, topic, group

    @classmethod
    def of(cls, channel):
        return cls(channel.pk, channel.story_id, frames.channel_topic(channel.story.slug, channel.name), channel.group_name)


def _load_room(room_id):
    from messaging.models import Channel

    channel = Channel.objects.select_related("story").filter(pk=room_id).first()
    return Room.of(channel) if channel else None


class PresenceHub:
    def __init__(self):
        self.store = get_presence_store()
        self.rooms: dict[int, Room] = {}
        self.pending: dict[int, dict[int, bool]] = {}  # room -> user -> present before the window
        self.left_meta: dict[tuple[int, int], dict] = {}  # users whose last connection this hub removed
        self.typing_until: dict[tuple[int, int], float] = {}
        self.conn_users: dict[tuple[int, str], int] = {}  # (room, connection) of this process -> user
        self.flushes: dict[int, asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Task] = set()  # every task the hub starts is held until it ends

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # --- changes from this process's connections ------------------------------------------------
    @staticmethod
    def store_id(user_id: int, conn_id: str) -> str:
        return f"{user_id}:{conn_id}"  # the store finds a user's connections by this prefix

    async def touch(self, room: Room, conn_id: str, meta: dict) -> None:
        self.rooms[room.id] = room
        self.conn_users[(room.id, conn_id)] = meta["u"]
        result = await self.store.touch(room.id, self.store_id(meta["u"], conn_id), meta)
        if meta.get("t"):
            self.typing_until[(room.id, meta["u"])] = meta["t"]
        if result.joined or result.changed:
            self.note(room.id, meta["u"], was_present=not result.joined)

    async def remove(self, room: Room, conn_id: str) -> None:
        user_id = self.conn_users.pop((room.id, conn_id), None)
        if user_id is None:
            return  # never touched here
        removal = await self.store.remove(room.id, self.store_id(user_id, conn_id))
        if removal is not None:
            self._note_removal(room.id, removal)

    def _note_removal(self, room_id, removal) -> None:
        # Only the hub that removed a user's last connection announces the leave (the store tells
        # exactly one): a hub that removed one of several connections, or noted the user's typing
        # running out, must not announce a leave when it finds the user gone at its flush.
        if removal.left:
            self.left_meta[(room_id, removal.user_id)] = removal.meta
        self.note(room_id, removal.user_id, was_present=True)

    def note(self, room_id: int, user_id: int, *, was_present: bool) -> None:
        changes = self.pending.setdefault(room_id, {})
        changes.setdefault(user_id, was_present)  # the state before the window's first change
        if room_id not in self.flushes:
            loop = asyncio.get_running_loop()
            self.flushes[room_id] = loop.call_later(settings.MYTHLINE_PRESENCE_COALESCE_SECONDS,
                                                    lambda: self.spawn(self.flush(room_id)))

    # --- broadcasting -----------------------------------------------------------------------------
    async def flush(self, room_id: int) -> None:
        self.flushes.pop(room_id, None)
        changes = self.pending.pop(room_id, {})
        if not changes:
            return
        try:
            room = self.rooms.get(room_id) or await database_sync_to_async(_load_room)(room_id)
            if room is None:
                return
            self.rooms[room_id] = room
            members = await room_members(room_id, user_ids=changes)
            # What clients were last told about each user is kept in the store, shared by every
            # process: a process comparing with only what it sent itself would drop an update that
            # undoes another process's (and repeat one that another process already sent).
            shown = {uid: encode_meta(_visible(members[uid])) if uid in members else None for uid in changes}
            previous = await self.store.swap_shown(room_id, shown)
            joins, leaves, updates = [], [], []
            for uid, was_present in changes.items():
                key = (room_id, uid)
                entry = members.get(uid)
                if entry is not None:
                    if not was_present:
                        joins.append(entry)
                    elif previous.get(uid) != shown[uid]:
                        updates.append(entry)
                elif was_present and key in self.left_meta:
                    meta = self.left_meta[key]
                    leaves.append({"username": meta.get("n"), "display_name": meta.get("d"), "kind": meta.get("k")})
                self.left_meta.pop(key, None)
            if not (joins or leaves or updates):
                return  # nothing anyone could see changed
            await self._attach_agents(room, joins + updates)
            frame = frames.presence_diff(room.topic, joins, leaves, updates)
            await group_send(room.group, {"type": "presence.diff", "topic": room.topic, "frame": dumps(frame)})
        except Exception:  # noqa: BLE001 - presence must never take a connection down
            logger.exception("presence flush for room %s failed", room_id)

    async def _attach_agents(self, room: Room, entries: list[dict]) -> None:
        agent_names = [e["username"] for e in entries if e["kind"] == "agent"]
        if not agent_names:
            return
        agents = {a["username"]: a for a in await database_sync_to_async(agents_of_story)(room.story_id)}
        for entry in entries:
            agent = agents.get(entry["username"])
            if agent:
                entry["agent"] = {k: agent[k] for k in ("status", "task", "progress")}

    async def flush_all(self) -> None:
        for room_id in list(self.pending):
            handle = self.flushes.pop(room_id, None)
            if handle:
                handle.cancel()
            await self.flush(room_id)

    # --- sweeping ---------------------------------------------------------------------------------
    async def sweep(self) -> None:
        """Drop expired connections of every process; note typing that ran out here."""
        now = time.time()
        for room_id in await self.store.rooms():
            for removal in await self.store.sweep(room_id, now=now):
                self._note_removal(room_id, removal)
        for (room_id, uid), until in list(self.typing_until.items()):
            if until <= now:
                del self.typing_until[(room_id, uid)]
                self.note(room_id, uid, was_present=True)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, settings.MYTHLINE_HEARTBEAT_SECONDS / 4))
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - keep sweeping
                logger.exception("presence sweep failed")


_hubs: dict[asyncio.AbstractEventLoop, PresenceHub] = {}


def _start_hub() -> PresenceHub:
    hub = PresenceHub()
    hub.spawn(hub.sweep_forever())
    return hub


def get_hub() -> PresenceHub:
    """The hub of the running event loop (one per server process), sweeping from its start."""
    return one_per_loop(_hubs, _start_hub)


def publish_agent_status(agent) -> None:
    """An agent's status changed (sync, inside the write's transaction): an `updates` entry in
    the `room` of every story it is in, whether or not it holds a live connection."""
    from asgiref.sync import async_to_sync

    from messaging.events import publish_on_commit
    from messaging.models import Channel
    from stories.services import ROOM

    for channel in Channel.objects.select_related("story").filter(
            name=ROOM, story__participants__user=agent).distinct():
        room = Room.of(channel)
        present = async_to_sync(room_members)(room.id)
        mine = [e for e in present.values() if e["username"] == agent.username]
        entry = mine[0] if mine else {"username": agent.username, "display_name": agent.display_name or agent.username,
                                      "kind": "agent", "connections": 0}
        status = agent_entry(agent, entry["connections"])
        entry = {**entry, "agent": {k: status[k] for k in ("status", "task", "progress")},
                 "status": status["status"], "task": status["task"], "progress": status["progress"]}
        frame = frames.presence_diff(room.topic, [], [], [entry])
        publish_on_commit(room.group, {"type": "presence.diff", "topic": room.topic, "frame": dumps(frame)})
