"""The presence hub when several processes share one store: two `PresenceHub`s on one store play
two server processes (each hub is what one process runs). Nothing flushes by itself here (the
coalescing window is long); `flush_all()` sends what a hub has pending, and the test reads the
channel layer group of the room as every subscriber would."""
import asyncio
import json
import time

import pytest
from channels.layers import get_channel_layer

from messaging.models import Channel
from presence.services import PresenceHub, Room, connection_meta

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def room(make_user, make_story, settings):
    settings.MYTHLINE_PRESENCE_COALESCE_SECONDS = 60
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    channel = Channel.objects.select_related("story").get(story=story, name="room")
    return {"room": Room.of(channel), "alice": alice, "bob": bob}


class Listener:
    def __init__(self, group):
        self.group = group

    async def __aenter__(self):
        self.layer = get_channel_layer()
        self.inbox = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.inbox)
        return self

    async def __aexit__(self, *exc):
        await self.layer.group_discard(self.group, self.inbox)

    async def diff(self):
        event = await asyncio.wait_for(self.layer.receive(self.inbox), 5)
        assert event["type"] == "presence.diff"
        return json.loads(event["frame"])

    async def nothing(self):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.layer.receive(self.inbox), 0.05)


async def flush(*hubs):
    for hub in hubs:
        await hub.flush_all()


def test_a_users_leave_is_announced_once_when_two_processes_remove_their_connections(room):
    r, bob = room["room"], room["bob"]

    async def go():
        one, two = PresenceHub(), PresenceHub()
        async with Listener(r.group) as seen:
            await one.touch(r, "p1.tab", connection_meta(bob))
            await flush(one)
            assert [e["username"] for e in (await seen.diff())["joins"]] == ["bob"]
            await two.touch(r, "p2.tab", connection_meta(bob))
            await flush(two)
            assert (await seen.diff())["updates"][0]["connections"] == 2
            # Both tabs go in the same window, one through each process.
            await one.remove(r, "p1.tab")
            await two.remove(r, "p2.tab")
            await flush(one, two)
            diff = await seen.diff()
            assert diff["leaves"] == [{"username": "bob", "display_name": "bob", "kind": "human"}]
            await seen.nothing()
    asyncio.run(go())


def test_an_update_undoing_another_processs_update_is_sent_and_a_repeat_is_not(room):
    """bob has a tab on each process. Each process used to compare with what *it* had sent: the
    last change below (back to active through process one) was then dropped, and clients kept
    showing bob away."""
    r, bob = room["room"], room["bob"]

    async def go():
        one, two = PresenceHub(), PresenceHub()
        tab1, tab2 = connection_meta(bob), connection_meta(bob)
        async with Listener(r.group) as seen:
            await one.touch(r, "p1.tab", tab1)
            await flush(one)
            await seen.diff()
            await two.touch(r, "p2.tab", tab2)
            await flush(two)
            assert (await seen.diff())["updates"][0]["connections"] == 2
            tab1["s"] = "away"  # tab 2 is active: bob still shows active, nothing to send
            await one.touch(r, "p1.tab", tab1)
            await flush(one)
            await seen.nothing()
            tab2["s"] = "away"
            await two.touch(r, "p2.tab", tab2)
            await flush(two)
            assert (await seen.diff())["updates"][0]["state"] == "away"
            tab1["s"] = "active"
            await one.touch(r, "p1.tab", tab1)
            await flush(one)
            assert (await seen.diff())["updates"][0]["state"] == "active"
            # The same change flushed by both processes goes out once.
            tab1["s"], tab2["s"] = "idle", "idle"
            await one.touch(r, "p1.tab", tab1)
            await two.touch(r, "p2.tab", tab2)
            await flush(one, two)
            assert (await seen.diff())["updates"][0]["state"] == "idle"
            await seen.nothing()
    asyncio.run(go())


def test_typing_running_out_after_the_user_left_is_no_second_leave(room):
    r, bob = room["room"], room["bob"]

    async def go():
        hub = PresenceHub()
        async with Listener(r.group) as seen:
            meta = connection_meta(bob)
            await hub.touch(r, "tab", meta)
            await flush(hub)
            await seen.diff()
            meta["t"] = time.time() + 0.05  # typing...
            await hub.touch(r, "tab", meta)
            await hub.remove(r, "tab")  # ... and gone
            await flush(hub)
            diff = await seen.diff()
            assert [e["username"] for e in diff["leaves"]] == ["bob"] and diff["updates"] == []
            while time.time() <= meta["t"]:
                await asyncio.sleep(0.01)
            await hub.sweep()  # notes the typing that ran out
            await flush(hub)
            await seen.nothing()
    asyncio.run(go())
