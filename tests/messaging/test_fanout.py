"""Per-process fan-out (messaging/fanout.py): one channel-layer membership per group and process."""
import asyncio

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
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            for c in (a, b):
                await c.recv()
                await c.request(type="subscribe", topic="channel:tale/general")
            fanout = get_fanout()
            # Three events land in the inboxes before either socket gets to run: past the bound of 2.
            for seq in (1, 2, 3):
                fanout.deliver({"type": "message.created", "group": group, "topic": "channel:tale/general",
                                "seq": seq, "msg_type": "text", "audience_kind": "all", "sender_id": 0,
                                "recipient_ids": [], "frame": "{}"})
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
