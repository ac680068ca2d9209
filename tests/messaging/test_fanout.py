"""Per-process fan-out (messaging/fanout.py): one channel-layer membership per group and process."""
import asyncio
from contextlib import asynccontextmanager

import pytest
from channels.layers import channel_layers

from messaging.fanout import Inbox, get_fanout
from tests.messaging.test_consumers import Client, post, run

pytestmark = pytest.mark.django_db(transaction=True)


async def members(layer, group) -> int:
    """How many channels the layer holds in `group` (in-memory, or channels-redis' sorted set)."""
    if hasattr(layer, "groups"):
        return len(layer.groups.get(group, {}))
    return await layer.connection(layer.consistent_hash(group)).zcard(layer._group_key(group))


def general_group(world):
    return world["story"].channels.get(name="general").group_name


def live_event(group: str, seq: int) -> dict:
    return {"type": "message.created", "group": group, "topic": "channel:tale/general", "seq": seq,
            "msg_type": "text", "audience_kind": "all", "sender_id": 0, "recipient_ids": [],
            "frame": f'{{"type":"message","seq":{seq}}}'}


def sockets_of(fanout, group) -> list:
    """The consumers whose inboxes are in `group` (each inbox's taker is its socket's `offer`)."""
    return [inbox.offer.__self__ for inbox in fanout.groups[group].inboxes]


@asynccontextmanager
async def subscribed(user):
    """A socket of `user`, welcomed and subscribed to tale/general."""
    async with Client(user) as client:
        await client.recv()
        await client.request(type="subscribe", topic="channel:tale/general")
        yield client


async def texts(client, n: int) -> list:
    return [(await client.ws.receive_output(timeout=5)).get("text") for _ in range(n)]


def test_an_idle_socket_sends_at_once_and_a_busy_one_in_its_turn_each_in_seq_order(world):
    """The fan-out's shorter way (RealtimeConsumer.offer) never overtakes what a socket queued."""
    group = general_group(world)

    async def go():
        async with subscribed(world["alice"]) as a, subscribed(world["bob"]) as b:
            fanout = get_fanout()
            busy = next(s for s in sockets_of(fanout, group) if s.user.username == "bob")
            await busy.turn.acquire()
            fanout.deliver(live_event(group, 1))  # alice's socket writes it now; bob's queues it
            assert await texts(a, 1) == ['{"type":"message","seq":1}']
            busy.turn.release()
            fanout.deliver(live_event(group, 2))  # bob's event task has not run yet: queued behind 1
            fanout.deliver(live_event(group, 1))  # a repeat: already accounted for, not sent again
            assert await texts(a, 1) == ['{"type":"message","seq":2}']
            assert await texts(b, 2) == ['{"type":"message","seq":1}', '{"type":"message","seq":2}']
            await a.nothing()
            await b.nothing()
    try:
        run(go())
    finally:
        channel_layers.backends.clear()


def test_a_send_that_has_to_wait_holds_back_the_next_frames_and_a_stuck_one_ends_in_4008(world, settings):
    """The server's send waits while the client does not read (uvicorn's flow control): the frame the
    shorter way began goes out first, the next ones queue behind it, and past the inbox bound the
    socket is closed with 4008 as before."""
    settings.MYTHLINE_WS_INBOX_EVENTS = 3
    group = general_group(world)

    async def go():
        async with Client(world["alice"]) as a:
            await a.recv()
            await a.request(type="subscribe", topic="channel:tale/general")
            fanout = get_fanout()
            [socket] = sockets_of(fanout, group)
            writable = asyncio.Event()  # as uvicorn's: cleared while the client's buffer is full
            server_send = socket.base_send

            async def send(message):
                await writable.wait()
                await server_send(message)
            socket.base_send = send
            for seq in (1, 2, 3):
                fanout.deliver(live_event(group, seq))
            await asyncio.sleep(0.05)
            await a.nothing()
            writable.set()
            assert await texts(a, 3) == [f'{{"type":"message","seq":{seq}}}' for seq in (1, 2, 3)]
            writable.clear()
            for seq in range(4, 9):  # one in the stuck send, then four queued: past the bound of 3
                fanout.deliver(live_event(group, seq))
            await asyncio.sleep(0.05)
            writable.set()
            outputs = [await a.ws.receive_output(timeout=5)]
            while outputs[-1]["type"] == "websocket.send":
                outputs.append(await a.ws.receive_output(timeout=5))
            # What was already on its way goes out in order (4, perhaps 5); then the 4008 close.
            sent = [o["text"] for o in outputs[:-1]]
            assert sent == [f'{{"type":"message","seq":{seq}}}' for seq in range(4, 4 + len(sent))] and sent
            assert outputs[-1] == {"type": "websocket.close", "code": 4008}
    try:
        run(go())
    finally:
        channel_layers.backends.clear()


def test_many_sockets_in_one_process_are_one_layer_member_and_each_gets_every_message(world):
    group = general_group(world)

    async def go():
        layer = channel_layers["default"]
        async with Client(world["alice"]) as a, Client(world["bob"]) as b, Client(world["vera"]) as v:
            for c in (a, b, v):
                await c.recv()
                await c.request(type="subscribe", topic="channel:tale/general")
            # The layer holds this process once, however many sockets subscribe.
            assert await members(layer, group) == 1
            lines = ["The bell rang.", "Mara ran.", "Elias hid in the loft."]
            for line in lines:
                await post(world["narrator"], line)
            for c in (a, b, v):
                assert [(await c.until("message"))["message"]["payload"]["text"] for _ in lines] == lines
                await c.nothing()
            # One socket leaves: the others still receive; the last to leave takes the process out.
            await v.request(type="unsubscribe", topic="channel:tale/general")
            await post(world["narrator"], "after vera left")
            for c in (a, b):
                assert (await c.until("message"))["message"]["payload"]["text"] == "after vera left"
            await v.nothing()
            await a.request(type="unsubscribe", topic="channel:tale/general")
            await b.request(type="unsubscribe", topic="channel:tale/general")
            assert await members(layer, group) == 0
    try:
        run(go())
    finally:
        channel_layers.backends.clear()


def test_a_socket_too_far_behind_is_closed_with_4008_and_resumes_with_after(world, settings):
    settings.MYTHLINE_WS_INBOX_EVENTS = 2
    group = general_group(world)

    async def go():
        async with subscribed(world["alice"]) as a, subscribed(world["bob"]) as b:
            fanout = get_fanout()
            # Both sockets are busy (in a long frame handler, say: their turn is held), so three events
            # land in their inboxes before either gets to run: past the bound of 2.
            consumers = sockets_of(fanout, group)
            for consumer in consumers:
                await consumer.turn.acquire()
            for seq in (1, 2, 3):
                fanout.deliver(live_event(group, seq))
            for consumer in consumers:
                consumer.turn.release()
            for c in (a, b):
                assert await c.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4008}
        # A new socket resumes where the client was (nothing was stored, so nothing to replay).
        async with Client(world["alice"]) as again:
            await again.recv()
            reply = await again.request(type="subscribe", topic="channel:tale/general", after=0)
            assert reply["type"] == "subscribed"
    try:
        run(go())
    finally:
        channel_layers.backends.clear()


def test_inbox_keeps_order_and_reports_overflow():
    async def go():
        inbox = Inbox(limit=3)
        for i in range(3):
            inbox.put({"n": i})
        assert [(await inbox.get())["n"] for _ in range(3)] == [0, 1, 2]
        waiting = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        inbox.put({"n": 3})
        assert (await asyncio.wait_for(waiting, 1))["n"] == 3
        for i in range(4):
            inbox.put({"n": i})
        assert inbox.overflowed and await inbox.get() is None
    run(go())


def test_concurrent_first_joins_of_a_group_wait_until_the_layer_has_the_process(world):
    """Two sockets subscribing at the same moment: the second must not read last_seq before the
    process is in the group, or a message committed in between would reach neither."""
    group = general_group(world)

    async def go():
        layer = channel_layers["default"]
        fanout = get_fanout()
        one, two = Inbox(), Inbox()
        await asyncio.gather(fanout.join(group, one), fanout.join(group, two))
        assert await members(layer, group) == 1
        await post(world["narrator"], "to both")
        for inbox in (one, two):
            event = await asyncio.wait_for(inbox.get(), 5)
            assert event["type"] == "message.created" and event["seq"] == 1
        await fanout.leave(group, one)
        await fanout.leave(group, two)
        assert await members(layer, group) == 0
    try:
        run(go())
    finally:
        channel_layers.backends.clear()
