"""Per-process fan-out: one channel-layer membership per group and process, not per socket.

The usual Channels pattern adds every socket's own channel to a group, so a broadcast to K
sockets costs K channel-layer messages (K pushes into Redis with channels-redis, K deep copies
with the in-memory layer) and K consumers woken through the layer. Here every server process
(event loop) holds one layer channel for all its subscribers: `Fanout.join(group, inbox)` adds
that channel to the group when the first local inbox joins, removes it when the last one leaves,
and one receive loop hands each event to the local inboxes of its group. A broadcast costs one
layer message per process, whatever the number of sockets.

Events name their group (`"group"`), so publish with `group_send` here, not with the layer's.

An `Inbox` is a subscriber's bounded queue. A subscriber that falls `MYTHLINE_WS_INBOX_EVENTS`
events behind (stuck in a slow send, say) is marked overflowed and stops receiving; its owner
closes it, and the client resumes with `after` (the same contract as a slow consumer).

An owner may also take events on the spot (`Inbox.offer`): a socket that is idle, caught up and
writable sends a live message there and then, inside `deliver`, with no task woken for it (issue
18: the wake-up, and the socket writes spread between wake-ups, were most of a delivery's CPU).
Whatever it does not take goes to the queue, in order, as before.
"""
import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable

from channels.layers import get_channel_layer
from django.conf import settings

from mythline_site import metrics

logger = logging.getLogger("mythline.fanout")


class Inbox:
    """Events for one subscriber (a socket or an SSE stream), in order, bounded."""

    __slots__ = ("events", "limit", "overflowed", "offer", "_waiter")

    def __init__(self, limit: int | None = None):
        self.events: deque = deque()
        self.limit = limit or settings.MYTHLINE_WS_INBOX_EVENTS
        self.overflowed = False
        # The owner's synchronous taker for fan-out events, or None: offer(event) handles the event
        # at once and returns how many messages it delivered (0 or 1), or returns None to have it
        # queued (its owner is busy, behind, or the event needs the database).
        self.offer: Callable[[dict], int | None] | None = None
        self._waiter: asyncio.Future | None = None

    @property
    def parked(self) -> bool:
        """Is the owner waiting in `get` on an empty inbox (holding no event it has not handled)?"""
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def put(self, event: dict) -> None:
        if self.overflowed:
            return
        if len(self.events) >= self.limit:
            self.overflowed = True
            self.events.clear()
            metrics.SLOW_CLIENTS_CLOSED.inc()
        else:
            self.events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def resume(self) -> None:
        """Events may have been lost upstream: have the owner close, so that its client resumes
        with `after` from the database (the path a slow consumer takes)."""
        self.overflowed = True
        self.events.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> dict | None:
        """The next event; None once the inbox overflowed (the owner then closes)."""
        while not self.events:
            if self.overflowed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.events.popleft()


class _Group:
    __slots__ = ("inboxes", "ready", "failed")

    def __init__(self):
        self.inboxes: set[Inbox] = set()
        self.ready = asyncio.Event()
        self.failed: BaseException | None = None  # the layer's refusal of the group_add (Redis down)


class Fanout:
    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.groups: dict[str, _Group] = {}
        self.lock = asyncio.Lock()  # membership changes reach the layer in the order they were made
        self.joined_at = time.monotonic()
        self.tasks: list[asyncio.Task] = []

    async def join(self, group: str, inbox: Inbox) -> None:
        """Deliver `group`'s events to `inbox`; returns once the layer has this process in the group
        (so anything published after this returns reaches the inbox)."""
        entry = self.groups.get(group)
        if entry is None:
            entry = self.groups[group] = _Group()
            entry.inboxes.add(inbox)
            async with self.lock:
                if self.channel is None:
                    self.channel = await self.layer.new_channel()
                    loop = asyncio.get_running_loop()
                    self.tasks = [loop.create_task(self._receive_forever()), loop.create_task(self._refresh_forever())]
                try:
                    await self.layer.group_add(group, self.channel)
                except BaseException as exc:
                    # Not in the layer's group: forget the entry, so that no inbox waits on a
                    # group that receives nothing, and the next join tries again.
                    entry.failed = exc
                    if self.groups.get(group) is entry:
                        del self.groups[group]
                    raise
                finally:
                    entry.ready.set()
            return
        entry.inboxes.add(inbox)
        await entry.ready.wait()
        if entry.failed is not None:  # the first joiner's group_add failed: so does this join
            entry.inboxes.discard(inbox)
            raise entry.failed.with_traceback(None)

    async def leave(self, group: str, inbox: Inbox) -> None:
        entry = self.groups.get(group)
        if entry is None:
            return
        entry.inboxes.discard(inbox)
        if entry.inboxes:
            return
        async with self.lock:
            if self.groups.get(group) is entry and not entry.inboxes:
                del self.groups[group]
                await self.layer.group_discard(group, self.channel)

    def refresh_every(self) -> float | None:
        every = settings.MYTHLINE_WS_GROUP_REFRESH_SECONDS
        if every is None:
            expiry = getattr(self.layer, "group_expiry", None)
            every = expiry / 2 if expiry else None
        return every

    async def refresh(self) -> None:
        """channels-redis forgets a group member after `group_expiry`: re-join well before that.
        Runs on its own clock and on every socket heartbeat (which costs a comparison)."""
        every = self.refresh_every()
        now = time.monotonic()
        if every is None or self.channel is None or now - self.joined_at < every:
            return
        self.joined_at = now
        async with self.lock:
            for group in list(self.groups):
                await self.layer.group_add(group, self.channel)

    def deliver(self, event: dict) -> None:
        entry = self.groups.get(event.get("group"))
        if entry is None:
            return
        delivered = 0
        for inbox in tuple(entry.inboxes):  # a copy: an owner may leave while we go
            offer = inbox.offer
            try:
                taken = offer(event) if offer is not None else None
            except Exception:  # noqa: BLE001 - a bug in one owner: it resumes from the database, the others go on
                logger.exception("fan-out offer failed")
                inbox.resume()
                continue
            if taken is None:
                inbox.put(event)
            else:
                delivered += taken
        if delivered:
            metrics.MESSAGES_DELIVERED.inc(delivered)  # once per event, not once per socket

    async def _receive_forever(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a layer hiccup (Redis restart): rejoin, never stop
                logger.exception("fan-out receive failed; rejoining the groups")
                await self._rejoin()
                continue
            self.deliver(event)

    async def _rejoin(self) -> None:
        """A restarted Redis has forgotten this process's group memberships (and any event queued
        for it): add it to every group again, retrying until Redis answers, then have every local
        subscriber resume from the database, so that nothing published meanwhile is missed."""
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                async with self.lock:
                    for group in list(self.groups):
                        await self.layer.group_add(group, self.channel)
                break
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis still down: try again
                delay = min(delay * 2, 2.0)
        for entry in list(self.groups.values()):
            for inbox in list(entry.inboxes):
                inbox.resume()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(min(max(self.refresh_every() or 300, 1.0), 300))
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - try again on the next round
                logger.exception("fan-out group refresh failed")


def one_per_loop(registry: dict, make):
    """The object of `registry` for the running event loop, made by `make()` the first time (one
    per server process; tests run several loops, whose closed ones are forgotten here)."""
    loop = asyncio.get_running_loop()
    thing = registry.get(loop)
    if thing is None:
        for old in [lp for lp in registry if lp.is_closed()]:
            del registry[old]
        thing = registry[loop] = make()
    return thing


_fanouts: dict[asyncio.AbstractEventLoop, Fanout] = {}


def get_fanout() -> Fanout:
    """The fan-out of the running event loop."""
    return one_per_loop(_fanouts, lambda: Fanout(get_channel_layer()))


def subscriber_id(kind: str = "ws") -> str:
    """A unique id for one socket or stream (presence connection ids, cursor echo suppression)."""
    return f"{kind}.{uuid.uuid4().hex}"


async def group_send(group: str, event: dict) -> None:
    """Send `event` to every subscriber of `group`, in every process."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, {**event, "group": group})
