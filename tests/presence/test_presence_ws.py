"""Presence over `/ws/` (SPEC 8), through Channels' WebsocketCommunicator on the real consumer, the
real presence hub and store, and the real channel layer.

The communicator runs the consumer on the test's event loop, so `get_hub()` here is the hub the
sockets use: `hub.flush_all()` sends what is pending at once, which lets a test prove that a change
produced no frame (the next frame is the one a later, visible change produces) without sleeping.
"""
import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator, WebsocketCommunicator
from django.db import close_old_connections

from accounts.services import token_issue
from messaging.models import Channel
from mythline_site.asgi import application
from presence.services import get_hub, room_members

pytestmark = pytest.mark.django_db(transaction=True)

ROOM = "channel:tale/room"


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    close_old_connections()


@pytest.fixture
def world(make_user, make_story, make_agent, api):
    alice, bob, carol, vera = make_user("alice"), make_user("bob", display_name="Bob B."), make_user("carol"), \
        make_user("vera")
    story = make_story(alice, slug="tale", editors=[bob, carol], viewers=[vera])
    narrator = make_agent("narrator", capabilities=["narration"], stories=[story])
    make_agent("scribe", capabilities=["summary"], stories=[story])
    users = {"alice": alice, "bob": bob, "carol": carol, "vera": vera, "narrator": narrator}
    for user in users.values():
        user.test_token = token_issue(user=user)  # sockets are opened from async code: issue now
    room = Channel.objects.get(story=story, name="room")
    return {**users, "story": story, "room_id": room.pk, "api": {name: api(u) for name, u in users.items()}}


class Client:
    """A test socket. Frames read while looking for another one are kept, never lost: `next()`
    looks at those first."""

    def __init__(self, user):
        self.user = user
        self.ws = WebsocketCommunicator(application, "/ws/",
                                        headers=[(b"authorization", f"Bearer {user.test_token}".encode())])
        self.unread = []
        self.refs = 0

    async def __aenter__(self):
        connected, _ = await self.ws.connect(timeout=5)
        assert connected
        assert (await self.next("welcome"))["user"]["username"] == self.user.username
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        await self.ws.disconnect()

    async def send(self, **frame):
        await self.ws.send_to(text_data=json.dumps(frame))

    async def next(self, match, timeout=5):
        """The first frame of type `match` (or for which `match(frame)` is true)."""
        test = match if callable(match) else (lambda f: f["type"] == match)
        for i, frame in enumerate(self.unread):
            if test(frame):
                return self.unread.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.receive_from(timeout=timeout + 1))
                if test(frame):
                    return frame
                self.unread.append(frame)

    async def request(self, **frame):
        self.refs += 1
        frame["ref"] = ref = f"r{self.refs}"
        await self.send(**frame)
        return await self.next(lambda f: f.get("ref") == ref)

    async def subscribe_room(self):
        """Subscribe to the room: `subscribed` first, then `presence.state`."""
        self.refs += 1
        ref = f"r{self.refs}"
        await self.send(type="subscribe", topic=ROOM, ref=ref)
        subscribed = await self.next(lambda f: f.get("ref") == ref)
        assert subscribed["type"] == "subscribed", subscribed
        state = await self.next("presence.state")
        assert state["topic"] == ROOM
        return state

    async def diff(self, timeout=5):
        frame = await self.next("presence.diff", timeout)
        assert frame["topic"] == ROOM
        return frame

    async def joined(self, *usernames, timeout=5):
        """Read diffs until each of `usernames` has joined, in one window or several (a subscriber
        sees its own join too): the latest entry of each. Meanwhile nobody leaves, and only users
        who already joined may have updates (another tab, say)."""
        got = {}
        while not set(usernames) <= set(got):
            diff = await self.diff(timeout)
            assert diff["leaves"] == [], diff
            for entry in diff["joins"]:
                assert entry["username"] in usernames and entry["username"] not in got, diff
                got[entry["username"]] = entry
            for entry in diff["updates"]:
                assert entry["username"] in got, diff
                got[entry["username"]] = entry
        return got

    async def heartbeat(self, state="active"):
        assert (await self.request(type="heartbeat", state=state))["type"] == "heartbeat_ack"

    async def no_diff(self):
        """No presence.diff is pending for this client, nor arrives after the hub flushed."""
        await get_hub().flush_all()
        assert await self.ws.receive_nothing(timeout=0.05)
        assert not [f for f in self.unread if f["type"] == "presence.diff"], self.unread


def run(coro):
    return asyncio.run(coro)


def names(entries):
    return sorted(e["username"] for e in entries)


def only_update(diff, username):
    assert diff["joins"] == [] and diff["leaves"] == [], diff
    [entry] = diff["updates"]
    assert entry["username"] == username
    return entry


def test_presence_state_on_subscribe(world):
    async def go():
        async with Client(world["alice"]) as a:
            # `subscribed` comes before `presence.state`, which follows at once
            await a.send(type="subscribe", topic=ROOM, ref="s")
            first = json.loads(await a.ws.receive_from())
            assert first == {"type": "subscribed", "topic": ROOM, "last_seq": 0, "ref": "s"}
            state = json.loads(await a.ws.receive_from())
            assert state["type"] == "presence.state" and state["topic"] == ROOM
            [me] = state["members"]
            assert me["username"] == "alice" and me["display_name"] == "alice" and me["kind"] == "human"
            assert me["state"] == "active" and me["connections"] == 1 and me["typing"] is False
            assert me["joined_at"].endswith("Z") and me["last_seen"].endswith("Z") and "agent" not in me
            assert names(state["agents"]) == ["narrator", "scribe"]
            for agent in state["agents"]:
                assert agent["status"] == "offline" and agent["connections"] == 0 and agent["kind"] == "agent"
                assert {"task", "progress", "last_seen", "capabilities"} <= set(agent)

            async with Client(world["bob"]) as b, Client(world["narrator"]) as n:
                await b.subscribe_room()
                state = await n.subscribe_room()
                by_name = {m["username"]: m for m in state["members"]}
                assert sorted(by_name) == ["alice", "bob", "narrator"]
                assert by_name["bob"]["display_name"] == "Bob B."
                assert by_name["narrator"]["kind"] == "agent" and by_name["narrator"]["agent"]["status"] == "offline"
                agents = {ag["username"]: ag for ag in state["agents"]}
                assert agents["narrator"]["connections"] == 1 and agents["scribe"]["connections"] == 0
                # alice saw herself, bob and the narrator join (in one window or more)
                joined = await a.joined("alice", "bob", "narrator")
                assert joined["narrator"]["agent"]["status"] == "offline" and "agent" not in joined["bob"]
                assert joined["bob"]["display_name"] == "Bob B." and joined["bob"]["connections"] == 1
    run(go())


def test_second_tab_is_not_a_join_and_closing_one_of_two_is_not_a_leave(world):
    async def go():
        async with Client(world["alice"]) as a:
            await a.subscribe_room()
            tab1, tab2 = Client(world["bob"]), Client(world["bob"])
            await tab1.__aenter__()
            await tab1.subscribe_room()
            assert (await a.joined("alice", "bob"))["bob"]["connections"] == 1

            await tab2.__aenter__()
            state = await tab2.subscribe_room()
            assert {m["username"]: m["connections"] for m in state["members"]} == {"alice": 1, "bob": 2}
            assert only_update(await a.diff(), "bob")["connections"] == 2

            await tab2.close()
            assert only_update(await a.diff(), "bob")["connections"] == 1
            members = await room_members(world["room_id"])
            assert {m["username"]: m["connections"] for m in members.values()} == {"alice": 1, "bob": 1}

            await tab1.close()
            diff = await a.diff()
            assert diff["joins"] == [] and diff["updates"] == []
            assert diff["leaves"] == [{"username": "bob", "display_name": "Bob B.", "kind": "human"}]
            assert names((await room_members(world["room_id"])).values()) == ["alice"]
            await a.no_diff()
    run(go())


def test_unsubscribe_is_a_leave_and_a_user_in_and_out_within_a_window_is_no_change(world, settings):
    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            await a.subscribe_room()
            await b.subscribe_room()
            await a.joined("alice", "bob")
            assert (await b.request(type="unsubscribe", topic=ROOM))["type"] == "unsubscribed"
            assert (await a.diff())["leaves"][0]["username"] == "bob"
            # In and out before the window closes: nothing anyone could see changed.
            settings.MYTHLINE_PRESENCE_COALESCE_SECONDS = 30
            await b.subscribe_room()
            await b.request(type="unsubscribe", topic=ROOM)
            await a.no_diff()
    run(go())


def test_state_changes_are_updates_never_leave_or_join(world):
    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            await a.subscribe_room()
            await b.subscribe_room()
            await a.joined("alice", "bob")
            for state in ("away", "active", "idle", "active"):
                await b.heartbeat(state)
                entry = only_update(await a.diff(), "bob")
                assert entry["state"] == state and entry["connections"] == 1
            members = await room_members(world["room_id"])
            assert {m["username"]: m["state"] for m in members.values()} == {"alice": "active", "bob": "active"}
    run(go())


def test_no_frame_when_nothing_changed(world):
    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            await a.subscribe_room()
            await b.subscribe_room()
            await a.joined("alice", "bob")
            for _ in range(3):
                await b.heartbeat("active")  # refreshes the entry, changes nothing visible
            await a.no_diff()
            # active -> away -> active inside one window: nothing visible changed either
            await b.heartbeat("away")
            await b.heartbeat("active")
            await a.no_diff()
            await b.heartbeat("idle")  # a real change still gets through
            assert only_update(await a.diff(), "bob")["state"] == "idle"
    run(go())


def test_shown_state_is_the_most_active_connection(world):
    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as tab1, Client(world["bob"]) as tab2:
            await a.subscribe_room()
            await tab1.subscribe_room()
            await tab2.subscribe_room()
            if (await a.joined("alice", "bob"))["bob"]["connections"] == 1:  # the tabs landed in two windows
                assert only_update(await a.diff(), "bob")["connections"] == 2
            await tab2.heartbeat("away")  # tab1 is still active: bob shows active
            await a.no_diff()
            await tab1.heartbeat("idle")  # now idle is the most active
            assert only_update(await a.diff(), "bob")["state"] == "idle"
            await tab1.heartbeat("away")
            assert only_update(await a.diff(), "bob")["state"] == "away"
            await tab2.heartbeat("active")
            assert only_update(await a.diff(), "bob")["state"] == "active"
            await tab2.close()  # the active tab goes: away is what is left
            entry = only_update(await a.diff(), "bob")
            assert entry["state"] == "away" and entry["connections"] == 1
    run(go())


def test_fifty_state_changes_within_one_window_are_one_diff(world, settings):
    settings.MYTHLINE_PRESENCE_COALESCE_SECONDS = 1.0
    states = [("idle", "away", "active")[i % 3] for i in range(50)]
    assert states[-1] == "away"

    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            await a.subscribe_room()
            await b.subscribe_room()
            await a.joined("alice", "bob")
            await b.joined("alice", "bob")
            started = time.monotonic()
            for i, state in enumerate(states):
                await b.send(type="heartbeat", state=state, ref=f"h{i}")
            for i in range(len(states)):
                await b.next(lambda f, i=i: f.get("ref") == f"h{i}")
            assert time.monotonic() - started < 1.0, "the 50 changes did not fit in one window"
            diff = await a.diff(timeout=3)
            assert time.monotonic() - started >= 0.9  # sent when the window closed, not at once
            assert only_update(diff, "bob")["state"] == "away"
            # No second frame for that burst. (bob, subscribed too, got the same one frame.)
            await a.no_diff()
            assert only_update(await b.diff(), "bob")["state"] == "away"
            await b.no_diff()
    run(go())


def test_a_socket_that_stops_heartbeating_is_dropped(world, settings):
    settings.MYTHLINE_HEARTBEAT_SECONDS = 0.3  # dropped 0.6 s after its last heartbeat

    async def keep_beating(client, stop):
        while not stop.is_set():
            await client.send(type="heartbeat", state="active")
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                pass

    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            stop = asyncio.Event()
            await a.subscribe_room()
            beating = asyncio.create_task(keep_beating(a, stop))
            try:
                await b.subscribe_room()
                await a.joined("alice", "bob")
                await b.heartbeat("active")
                silent_since = time.monotonic()
                diff = await a.diff(timeout=5)  # bob says nothing more
                assert time.monotonic() - silent_since >= 0.55, "dropped before two heartbeat intervals"
                assert diff["joins"] == [] and diff["updates"] == [] and names(diff["leaves"]) == ["bob"]
                assert names((await room_members(world["room_id"])).values()) == ["alice"]
                # bob's socket is still open; when it heartbeats again, bob is back
                await b.heartbeat("idle")
                diff = await a.diff()
                assert names(diff["joins"]) == ["bob"] and diff["joins"][0]["state"] == "idle"
            finally:
                stop.set()
                await beating
    run(go())


def test_typing_on_the_room_shows_then_expires(world, settings, monkeypatch):
    settings.MYTHLINE_HEARTBEAT_SECONDS = 2  # the hub sweeps (and expires typing) every 0.5 s
    monkeypatch.setattr("messaging.topics.channel.TYPING_TTL_SECONDS", 0.5)

    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            await a.subscribe_room()
            await b.subscribe_room()
            await a.joined("alice", "bob")
            # an explicit stop
            await b.send(type="typing", topic=ROOM, typing=True)
            assert only_update(await a.diff(), "bob")["typing"] is True
            assert (await a.next("typing"))["user"]["username"] == "bob"
            assert (await room_members(world["room_id"]))[world["bob"].pk]["typing"] is True
            await b.send(type="typing", topic=ROOM, typing=False)
            assert only_update(await a.diff(), "bob")["typing"] is False
            # no stop: typing runs out by itself
            await b.send(type="typing", topic=ROOM, typing=True)
            started = time.monotonic()
            assert only_update(await a.diff(), "bob")["typing"] is True
            entry = only_update(await a.diff(timeout=3), "bob")
            assert entry["typing"] is False and time.monotonic() - started >= 0.4
            assert (await room_members(world["room_id"]))[world["bob"].pk]["typing"] is False
    run(go())


def put_status(client, **body):
    response = client.put("/api/agents/me/status", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def get_presence(client):
    response = client.get("/api/stories/tale/presence")
    assert response.status_code == 200, response.content
    return response.json()


def test_agent_status_is_an_update_with_or_without_a_connection(world):
    agent_api, reader = world["api"]["narrator"], world["api"]["vera"]

    async def go():
        async with Client(world["alice"]) as a:
            await a.subscribe_room()
            await a.joined("alice")
            # no live connection
            await sync_to_async(put_status)(agent_api, status="working", task="Drafting act 2", progress=0.25)
            entry = only_update(await a.diff(), "narrator")
            assert entry["kind"] == "agent" and entry["connections"] == 0
            assert entry["agent"] == {"status": "working", "task": "Drafting act 2", "progress": 0.25}
            body = await sync_to_async(get_presence)(reader)
            assert names(body["members"]) == ["alice"]
            agents = {ag["username"]: ag for ag in body["agents"]}
            assert agents["narrator"]["status"] == "working" and agents["narrator"]["task"] == "Drafting act 2"
            assert agents["narrator"]["progress"] == 0.25 and agents["narrator"]["connections"] == 0
            assert agents["narrator"]["last_seen"] and agents["scribe"]["status"] == "offline"

            # with a live connection
            async with Client(world["narrator"]) as n:
                state = await n.subscribe_room()
                assert {ag["username"]: ag["status"] for ag in state["agents"]} == {"narrator": "working",
                                                                                   "scribe": "offline"}
                assert (await a.joined("narrator"))["narrator"]["agent"]["status"] == "working"
                await sync_to_async(put_status)(agent_api, status="waiting", task="Waiting for a reply")
                entry = only_update(await a.diff(), "narrator")
                assert entry["connections"] == 1 and entry["state"] == "active"
                assert entry["agent"] == {"status": "waiting", "task": "Waiting for a reply", "progress": None}
                body = await sync_to_async(get_presence)(reader)
                member = {m["username"]: m for m in body["members"]}["narrator"]
                assert member["agent"]["status"] == "waiting" and member["connections"] == 1
                agents = {ag["username"]: ag for ag in body["agents"]}
                assert agents["narrator"]["status"] == "waiting" and agents["narrator"]["connections"] == 1
    run(go())


def test_an_agent_status_change_reaches_only_the_rooms_of_its_stories(world, make_story):
    other = make_story(world["alice"], slug="other")
    agent_api = world["api"]["narrator"]

    async def go():
        async with Client(world["alice"]) as a:
            await a.subscribe_room()
            await a.joined("alice")
            await a.send(type="subscribe", topic="channel:other/room", ref="o")
            await a.next(lambda f: f.get("ref") == "o")
            await a.next(lambda f: f["type"] == "presence.state" and f["topic"] == "channel:other/room")
            own = await a.next(lambda f: f["type"] == "presence.diff" and f["topic"] == "channel:other/room")
            assert names(own["joins"]) == ["alice"]
            await sync_to_async(put_status)(agent_api, status="idle")
            only_update(await a.diff(), "narrator")
            await a.no_diff()
    assert other.slug == "other"  # alice is in two rooms; the narrator only in tale's
    run(go())


# --- SSE readers of a presence channel are present too -----------------------------------------

class SSEReader:
    def __init__(self, user, path="/api/stories/tale/channels/room/events"):
        self.app = ApplicationCommunicator(application, {
            "type": "http", "method": "GET", "path": path, "query_string": b"", "http_version": "1.1",
            "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "root_path": "",
            "headers": [(b"authorization", f"Bearer {user.test_token}".encode()), (b"host", b"testserver")]})

    async def open(self):
        await self.app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.app.receive_output(5)
        assert start["type"] == "http.response.start" and start["status"] == 200, start
        body = await self.app.receive_output(5)
        assert body["body"].startswith(b"retry:")
        return self

    async def close(self):
        """The client goes away: the stream must end (and its reader leave) at once."""
        await self.app.send_input({"type": "http.disconnect"})
        done, _ = await asyncio.wait({self.app.future}, timeout=2)
        assert done, "the SSE stream did not end when its client went away"
        await self.app.wait()


def test_an_sse_reader_of_the_room_is_present_while_events_keep_it_busy(world, settings):
    """The stream refreshes its entry every heartbeat interval even when events arrive more often
    than that (a busy room): it must not expire and leave while it is open."""
    settings.MYTHLINE_HEARTBEAT_SECONDS = 0.3
    settings.MYTHLINE_SSE_KEEPALIVE_SECONDS = 0.3

    async def go():
        async with Client(world["alice"]) as a:
            await a.subscribe_room()
            reader = await SSEReader(world["vera"]).open()
            await a.joined("alice", "vera")
            # alice changes state every 0.1 s for 2 s (more than three expiry periods): a stream of
            # presence.diff events in the room, which the SSE reader's inbox receives too.
            deadline = time.monotonic() + 2.0
            flip = 0
            while time.monotonic() < deadline:
                flip += 1
                await a.heartbeat(("idle", "active")[flip % 2])
                await asyncio.sleep(0.1)
            await get_hub().flush_all()
            seen = [f for f in a.unread if f["type"] == "presence.diff"]
            assert len(seen) >= 5  # the room was busy
            assert not [f for f in seen if f["leaves"] or f["joins"]], seen
            assert "vera" in names((await room_members(world["room_id"])).values())
            a.unread.clear()
            await reader.close()
            diff = await a.next(lambda f: f["type"] == "presence.diff" and (f["leaves"] or f["joins"]))
            assert names(diff["leaves"]) == ["vera"] and diff["joins"] == []
    run(go())


def test_an_sse_stream_ends_when_its_client_leaves_as_an_event_arrives(world):
    """The client goes away at the very moment an event reaches the stream: the stream must still
    end, and its reader leave, rather than run on (and stay present) with nobody reading."""
    group = Channel.objects.get(pk=world["room_id"]).group_name

    async def go():
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        for attempt in range(12):
            reader = await SSEReader(world["vera"]).open()
            assert "vera" in names((await room_members(world["room_id"])).values())
            event = {"type": "presence.diff", "topic": ROOM, "frame": "{}"}
            if attempt % 2:
                await layer.group_send(group, event)
                await reader.app.send_input({"type": "http.disconnect"})
            else:
                await reader.app.send_input({"type": "http.disconnect"})
                await layer.group_send(group, event)
            await reader.close()
            assert names((await room_members(world["room_id"])).values()) == [], attempt
    run(go())
