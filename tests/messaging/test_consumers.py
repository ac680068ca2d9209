"""The `/ws/` consumer through Channels' WebsocketCommunicator: every frame type and every error."""
import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers
from channels.testing import WebsocketCommunicator
from django.db import close_old_connections

from messaging.policies import access_channel
from messaging.services import channel_create, message_post, message_post_batch
from mythline_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    close_old_connections()


class Client:
    """A test socket that reads frames as JSON and can wait for a frame of a given type."""

    def __init__(self, user=None, headers=None):
        if headers is None:
            headers = [(b"authorization", f"Bearer {user.test_token}".encode())] if user else []
        self.ws = WebsocketCommunicator(application, "/ws/", headers=headers)

    async def __aenter__(self):
        connected, _ = await self.ws.connect(timeout=5)
        assert connected
        return self

    async def __aexit__(self, *exc):
        await self.ws.disconnect()

    async def send(self, **frame):
        await self.ws.send_to(text_data=json.dumps(frame))

    async def recv(self, timeout=5):
        return json.loads(await self.ws.receive_from(timeout=timeout))

    async def until(self, type_, timeout=5):
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == type_:
                return frame

    async def nothing(self):
        assert await self.ws.receive_nothing(timeout=0.2, interval=0.02)

    async def request(self, **frame):
        """Send a frame with a ref and return the reply carrying that ref."""
        frame.setdefault("ref", f"r{id(frame)}")
        await self.send(**frame)
        while True:
            reply = await self.recv()
            if reply.get("ref") == frame["ref"]:
                return reply


def run(coro):
    """Run `coro` in an event loop of its own, with a channel layer of its own (see `fresh_channel_layer`
    in tests/conftest.py: a layer that outlives its loop can fail a later loop's receive)."""
    channel_layers.backends.clear()
    try:
        return asyncio.run(coro)
    finally:
        channel_layers.backends.clear()


def post_sync(user, text, channel="general", **extra):
    access = access_channel(user, "tale", channel, for_write=True)
    return message_post(sender=user, access=access, data={"msg_type": "text", "payload": {"text": text}, **extra}).data


post = database_sync_to_async(post_sync)


def test_unauthenticated_socket_is_closed_with_4401(db):
    async def go():
        ws = WebsocketCommunicator(application, "/ws/")
        connected, _ = await ws.connect()
        assert connected
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    run(go())


def test_bad_token_is_closed_with_4401(db):
    async def go():
        ws = WebsocketCommunicator(application, "/ws/", headers=[(b"authorization", b"Bearer nope")])
        await ws.connect()
        assert (await ws.receive_output(timeout=5))["code"] == 4401
    run(go())


def test_cookie_socket_from_foreign_origin_is_refused(world, client):
    client.force_login(world["alice"])
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def go():
        evil = WebsocketCommunicator(application, "/ws/", headers=[(b"cookie", cookie), (b"origin", b"https://evil.example")])
        connected, code = await evil.connect()
        assert not connected and code == 4403
        async with Client(headers=[(b"cookie", cookie), (b"origin", b"http://127.0.0.1:8000")]) as ok:
            welcome = await ok.recv()
            assert welcome["type"] == "welcome" and welcome["user"]["username"] == "alice"
    run(go())


def test_welcome_subscribe_publish_and_live_message(world):
    async def go():
        async with Client(world["alice"]) as a, Client(world["narrator"]) as n:
            welcome = await a.recv()
            assert welcome["type"] == "welcome" and welcome["heartbeat_seconds"] > 0
            sub = await a.request(type="subscribe", topic="channel:tale/general", ref="s1")
            assert sub == {"type": "subscribed", "topic": "channel:tale/general", "last_seq": 0, "ref": "s1"}
            pub = await n.request(type="publish", topic="channel:tale/general", msg_type="narration",
                                  payload={"text": "Waves."}, correlation_id="c-1", ref="p1")
            assert pub["type"] == "published" and pub["seq"] == 1 and pub["ref"] == "p1"
            frame = await a.until("message")
            assert frame["topic"] == "channel:tale/general" and "replay" not in frame
            assert frame["message"]["id"] == pub["id"] and frame["message"]["payload"] == {"text": "Waves."}
            assert frame["message"]["sender"]["kind"] == "agent" and frame["message"]["correlation_id"] == "c-1"
            # A repeat of the same id is idempotent over the socket too.
            again = await n.request(type="publish", topic="channel:tale/general", msg_type="narration",
                                    payload={"text": "Waves."}, correlation_id="c-1", id=pub["id"])
            assert again["seq"] == 1 and again["id"] == pub["id"]
            await a.nothing()
    run(go())


def test_subscribe_after_replays_then_goes_live_without_gap_or_duplicate(world):
    for i in range(1, 6):
        post_sync(world["bob"], f"m{i}")

    async def go():
        async with Client(world["alice"]) as a:
            await a.recv()
            sub = await a.request(type="subscribe", topic="channel:tale/general", after=2)
            assert sub["last_seq"] == 5
            replayed = [await a.until("message") for _ in range(3)]
            assert [f["message"]["seq"] for f in replayed] == [3, 4, 5] and all(f["replay"] for f in replayed)
            await post(world["bob"], "m6")
            live = await a.until("message")
            assert live["message"]["seq"] == 6 and "replay" not in live
            await a.nothing()
    run(go())


def test_types_filter_and_audience(world):
    async def go():
        async with Client(world["alice"]) as owner, Client(world["bob"]) as human, Client(world["narrator"]) as agent:
            for c in (owner, human, agent):
                await c.recv()
            await human.request(type="subscribe", topic="channel:tale/general")
            await agent.request(type="subscribe", topic="channel:tale/general", types=["query"])
            await owner.request(type="subscribe", topic="channel:tale/general")
            await post(world["bob"], "for agents", audience="agents")
            await post(world["bob"], "for all")
            await database_sync_to_async(lambda: message_post(
                sender=world["bob"], access=access_channel(world["bob"], "tale", "general", for_write=True),
                data={"msg_type": "query", "payload": {"text": "Who?"}, "audience": "agents"}))()
            # bob (a human) sent the agents-only one himself: senders always see their own messages.
            assert [(await human.until("message"))["message"]["seq"] for _ in range(3)] == [1, 2, 3]
            # the agent asked for queries only
            assert (await agent.until("message"))["message"]["payload"] == {"text": "Who?"}
            await agent.nothing()
            # the story owner sees everything
            assert [(await owner.until("message"))["message"]["seq"] for _ in range(3)] == [1, 2, 3]
    run(go())


def test_audience_hides_from_humans_who_did_not_send(world):
    async def go():
        async with Client(world["bob"]) as human:
            await human.recv()
            await human.request(type="subscribe", topic="channel:tale/general")
            await post(world["narrator"], "agents only", audience="agents")
            await post(world["narrator"], "to bob", audience=["bob"])
            await post(world["narrator"], "to alice", audience=["alice"])
            await post(world["narrator"], "everyone")
            got = [(await human.until("message"))["message"]["payload"]["text"] for _ in range(2)]
            assert got == ["to bob", "everyone"]
            await human.nothing()
    run(go())


def test_unsubscribe_stops_delivery(world):
    async def go():
        async with Client(world["alice"]) as a:
            await a.recv()
            await a.request(type="subscribe", topic="channel:tale/general")
            assert await a.request(type="unsubscribe", topic="channel:tale/general", ref="u") == {
                "type": "unsubscribed", "topic": "channel:tale/general", "ref": "u"}
            await post(world["bob"], "unseen")
            await a.nothing()
            err = await a.request(type="unsubscribe", topic="channel:tale/general")
            assert err["type"] == "error" and err["code"] == "invalid"
    run(go())


def test_typing_reaches_others_not_the_typist(world):
    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            for c in (a, b):
                await c.recv()
                await c.request(type="subscribe", topic="channel:tale/general")
            await b.send(type="typing", topic="channel:tale/general", typing=True)
            frame = await a.until("typing")
            assert frame["user"]["username"] == "bob" and frame["typing"] is True and frame["expires_in"] > 0
            await b.send(type="typing", topic="channel:tale/general", typing=True)  # within a second: coalesced
            await b.send(type="typing", topic="channel:tale/general", typing=False)
            assert (await a.until("typing"))["typing"] is False
            await b.nothing()
    run(go())


def test_heartbeat_ack_and_ping(world):
    async def go():
        async with Client(world["alice"]) as a:
            await a.recv()
            assert await a.request(type="heartbeat", state="idle", ref="h") == {"type": "heartbeat_ack", "ref": "h"}
            bad = await a.request(type="heartbeat", state="asleep")
            assert bad["type"] == "error" and bad["code"] == "invalid"
            assert (await a.request(type="ping"))["type"] == "pong"
    run(go())


def test_ack_moves_the_cursor(world):
    for i in range(3):
        post_sync(world["bob"], f"m{i}")

    async def go():
        async with Client(world["alice"]) as a:
            await a.recv()
            assert await a.request(type="ack", topic="channel:tale/general", seq=2, ref="k") == {
                "type": "acked", "topic": "channel:tale/general", "seq": 2, "ref": "k"}
            assert (await a.request(type="ack", topic="channel:tale/general", seq=1))["seq"] == 2
            too_far = await a.request(type="ack", topic="channel:tale/general", seq=9)
            assert too_far["code"] == "invalid"
    run(go())


def test_story_topic_events_respect_channel_privacy(world):
    async def go():
        async with Client(world["alice"]) as owner, Client(world["vera"]) as viewer:
            for c in (owner, viewer):
                await c.recv()
                assert (await c.request(type="subscribe", topic="story:tale"))["type"] == "subscribed"
            await database_sync_to_async(channel_create)(story=world["story"], creator=world["bob"], name="secret",
                                                         kind="private")
            await database_sync_to_async(channel_create)(story=world["story"], creator=world["bob"], name="open",
                                                         kind="public")
            first = await owner.until("event")
            assert first["event"] == "channel.created" and first["data"]["name"] == "secret"
            seen = await viewer.until("event")
            assert seen["event"] == "channel.created" and seen["data"]["name"] == "open"
            await viewer.nothing()
    run(go())


@pytest.mark.parametrize("frame,code", [
    ("not json", "invalid"),
    ("[1, 2]", "invalid"),
    (json.dumps({"type": "dance"}), "invalid"),
    (json.dumps({"type": "subscribe", "topic": "nonsense"}), "invalid"),
    (json.dumps({"type": "subscribe", "topic": "channel:tale/nope"}), "not_found"),
    (json.dumps({"type": "subscribe", "topic": "channel:tale/inbox.narrator"}), "forbidden"),
    (json.dumps({"type": "subscribe", "topic": "channel:tale/general", "after": -1}), "invalid"),
    (json.dumps({"type": "subscribe", "topic": "story:nope"}), "not_found"),
    (json.dumps({"type": "publish", "topic": "channel:tale/general", "msg_type": "dialogue", "payload": {}}), "invalid"),
    (json.dumps({"type": "publish", "topic": "channel:tale/general", "msg_type": "text",
                 "payload": {"text": "x" * 70000}}), "payload_too_large"),
    (json.dumps({"type": "typing", "topic": "channel:tale/general"}), "invalid"),
    (json.dumps({"type": "ack", "topic": "channel:tale/general", "seq": "3"}), "invalid"),
])
def test_bad_frames_get_an_error_and_the_socket_stays_open(world, frame, code):
    async def go():
        async with Client(world["bob"]) as b:
            await b.recv()
            await b.ws.send_to(text_data=frame)
            error = await b.until("error")
            assert error["code"] == code and error["message"]
            assert (await b.request(type="ping"))["type"] == "pong"
    run(go())


def test_error_details_name_the_field_and_echo_ref(world):
    async def go():
        async with Client(world["bob"]) as b:
            await b.recv()
            err = await b.request(type="publish", topic="channel:tale/general", msg_type="dialogue",
                                  payload={"character": "K"}, ref="x9")
            assert err["ref"] == "x9" and err["details"] == {"payload.line": "is required for msg_type 'dialogue'"}
    run(go())


def test_viewer_cannot_publish_and_archived_channel_refuses(world):
    async def go():
        async with Client(world["vera"]) as v, Client(world["alice"]) as a:
            await v.recv()
            await a.recv()
            err = await v.request(type="publish", topic="channel:tale/general", msg_type="text", payload={"text": "x"})
            assert err["code"] == "forbidden"
            await a.request(type="subscribe", topic="channel:tale/general")  # reading still works for everyone
            from messaging.models import Channel
            await database_sync_to_async(lambda: Channel.objects.filter(name="general").update(
                archived_at="2026-01-01T00:00:00Z"))()
            err = await a.request(type="publish", topic="channel:tale/general", msg_type="text", payload={"text": "x"})
            assert err["code"] == "archived"
    run(go())


def test_frame_over_256_kib_closes_with_1009(world):
    async def go():
        async with Client(world["bob"]) as b:
            await b.recv()
            await b.ws.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * (256 * 1024)}))
            assert await b.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1009}
    run(go())


def test_flood_gets_rate_limited_then_closed(world, settings):
    settings.MYTHLINE_WS_FRAME_RATE = 1
    settings.MYTHLINE_WS_FRAME_BURST = 5
    settings.MYTHLINE_WS_FLOOD_CLOSE_AFTER = 10

    async def go():
        async with Client(world["bob"]) as b:
            await b.recv()
            for _ in range(30):
                await b.send(type="ping")
            kinds = []
            while True:
                out = await b.ws.receive_output(timeout=5)
                if out["type"] == "websocket.close":
                    assert out["code"] == 1008
                    break
                kinds.append(json.loads(out["text"]).get("code") or json.loads(out["text"])["type"])
            assert kinds[:5] == ["pong"] * 5 and "rate_limited" in kinds
    run(go())


class DroppingLayer(InMemoryChannelLayer):
    """An in-memory layer that loses the group events named in `drop_seqs`, as channels-redis
    does over capacity or after expiry."""
    drop_seqs: set = set()

    async def group_send(self, group, message):
        if message.get("type") == "message.created" and message.get("seq") in self.drop_seqs:
            return
        return await super().group_send(group, message)


def test_a_dropped_live_event_is_backfilled_from_the_database(world, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.messaging.test_consumers.DroppingLayer"}}
    channel_layers.backends.clear()
    DroppingLayer.drop_seqs = {2, 3}
    try:
        async def go():
            async with Client(world["alice"]) as a:
                await a.recv()
                await a.request(type="subscribe", topic="channel:tale/general")
                for i in range(1, 5):
                    await post(world["bob"], f"m{i}")
                got = [(await a.until("message"))["message"]["seq"] for _ in range(4)]
                assert got == [1, 2, 3, 4]
                await a.nothing()
        run(go())
    finally:
        DroppingLayer.drop_seqs = set()
        channel_layers.backends.clear()


def test_removed_member_stops_receiving_at_once(world):
    from messaging.models import Channel
    from messaging.services import member_add, member_remove

    side = channel_create(story=world["story"], creator=world["alice"], name="side", kind="private")
    member_add(channel=side, user=world["bob"])

    async def go():
        async with Client(world["bob"]) as b:
            await b.recv()
            await b.request(type="subscribe", topic="channel:tale/side")
            await post(world["alice"], "hello bob", channel="side")
            assert (await b.until("message"))["message"]["payload"] == {"text": "hello bob"}
            await database_sync_to_async(member_remove)(channel=await database_sync_to_async(
                Channel.objects.select_related("story").get)(name="side"), user=world["bob"])
            assert await b.until("unsubscribed") == {"type": "unsubscribed", "topic": "channel:tale/side",
                                                     "reason": "access_revoked"}
            await post(world["alice"], "after removal", channel="side")
            await b.nothing()
    run(go())


def test_long_lived_socket_rejoins_its_groups_before_the_layer_forgets_them(world, settings):
    """channels-redis drops group members after group_expiry; a heartbeat past half of it re-joins."""
    async def go():
        async with Client(world["alice"]) as a:
            await a.recv()
            await a.request(type="subscribe", topic="channel:tale/general")
            layer = channel_layers["default"]
            settings.MYTHLINE_WS_GROUP_REFRESH_SECONDS = 0  # as if half a group_expiry had passed
            # ... and the layer had expired the membership meanwhile
            general = await database_sync_to_async(lambda: world["story"].channels.get(name="general"))()
            group = general.group_name
            if hasattr(layer, "groups"):  # in-memory
                for name in list(layer.groups.get(group, {})):
                    await layer.group_discard(group, name)
            else:  # channels-redis: the group is a sorted set of channel names
                await layer.connection(layer.consistent_hash(group)).delete(layer._group_key(group))
            await a.request(type="heartbeat", state="active")
            await post(world["bob"], "still subscribed")
            assert (await a.until("message"))["message"]["payload"] == {"text": "still subscribed"}
    try:
        run(go())
    finally:
        channel_layers.backends.clear()


def test_a_batch_reaches_subscribers_as_messages_in_seq_order(world):
    """Each stored message of a batch is one live frame, in seq order; a refused one sends nothing."""
    def batch_sync():
        access = access_channel(world["bob"], "tale", "general", for_write=True)
        items = message_post_batch(sender=world["bob"], access=access, items=[
            {"msg_type": "text", "payload": {"text": "one"}}, {"msg_type": "text"},
            {"msg_type": "text", "payload": {"text": "for the narrator"}, "audience": ["narrator"]},
            {"msg_type": "text", "payload": {"text": "three"}}])
        return [item.as_json()["status"] for item in items]

    async def go():
        async with Client(world["vera"]) as viewer, Client(world["narrator"]) as agent:
            for socket in (viewer, agent):
                await socket.recv()
                await socket.request(type="subscribe", topic="channel:tale/general")
            assert await database_sync_to_async(batch_sync)() == [201, 400, 201, 201]
            seen = [(f["message"]["seq"], f["message"]["payload"]["text"]) for f in
                    [await viewer.until("message") for _ in range(2)]]
            assert seen == [(1, "one"), (3, "three")]
            seen = [(f["message"]["seq"], f["message"]["payload"]["text"]) for f in
                    [await agent.until("message") for _ in range(3)]]
            assert seen == [(1, "one"), (2, "for the narrator"), (3, "three")]
            await viewer.nothing()
    run(go())


def test_a_stalled_send_cancelled_with_its_socket_hands_the_servers_send_lock_on(world):
    """A live frame whose send had to wait (RealtimeConsumer.send_now / finish_send) is cancelled
    when its socket goes away as a task would be: CancelledError inside the server's send, so a
    server that serializes its writes with an asyncio.Lock hands the lock to its next write. (Closed
    with GeneratorExit instead, the send took the lock's wake-up with it: the server's next write on
    that connection, a close frame or a ping, waited forever.)"""
    from messaging.fanout import get_fanout
    from tests.messaging.test_fanout import general_group, live_event, sockets_of

    group = general_group(world)

    async def go():
        async with Client(world["alice"]) as a:
            await a.recv()
            await a.request(type="subscribe", topic="channel:tale/general")
            fanout = get_fanout()
            [socket] = sockets_of(fanout, group)
            write_lock = asyncio.Lock()  # the server's: one write at a time on a connection
            server_send = socket.base_send

            async def send(message):
                async with write_lock:
                    await server_send(message)
            socket.base_send = send

            await write_lock.acquire()  # the server is busy writing (a ping, say)
            while not socket.inbox.parked or socket.turn.locked():  # the socket idle: it takes the event at once
                await asyncio.sleep(0)
            fanout.deliver(live_event(group, 1))  # the socket's send waits for the lock: a task finishes it
            stalled = socket.sending
            assert stalled is not None
            after = asyncio.ensure_future(send({"type": "websocket.send", "text": "the server's next write"}))
            while len(write_lock._waiters or ()) < 2:  # both wait for the lock, the socket's first
                await asyncio.sleep(0)
            write_lock.release()  # hands the lock to the socket's send...
            stalled.cancel()  # ...which is cancelled before it runs: the socket goes away
            await asyncio.wait_for(after, 5)
            # The cancelled frame never went out; the server's next write did.
            assert await a.ws.receive_from(timeout=5) == "the server's next write"
            await a.nothing()
            assert stalled.cancelled() and socket.sending is None
    run(go())
