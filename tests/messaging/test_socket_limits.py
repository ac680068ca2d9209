"""The socket under hostile or greedy clients: fuzzed frames, deep nesting, typing floods, per-user
caps on sockets and subscriptions, replays counted as reads, and a demoted channel creator."""
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from stories.models import Participant
from stories.services import participant_add
from tests.conftest import error_code
from tests.messaging.test_consumers import Client, run

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
frame_types = st.sampled_from(["subscribe", "unsubscribe", "publish", "typing", "heartbeat", "ack", "ping",
                               "doc.push", "doc.pull", "cursor", "bogus"])
topics = st.sampled_from(["channel:tale/general", "story:tale", "doc:tale/main", "channel:tale/room",
                          "channel:nope/x", "doc:tale", "", None, 7])
frames = st.one_of(
    st.fixed_dictionaries({"type": frame_types}, optional={"topic": topics | json_values, "ref": json_values,
                                                           "after": json_values, "seq": json_values,
                                                           "revision": json_values, "changes": json_values,
                                                           "anchor": json_values, "typing": json_values,
                                                           "state": json_values, "types": json_values,
                                                           "msg_type": json_values, "payload": json_values}),
    json_values.map(json.dumps),
    st.text(min_size=1, max_size=40),  # (the test client cannot send an empty frame)
    st.integers(1, 3000).map(lambda n: "[" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n),
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=12))
def test_fuzzed_frames_get_answers_and_the_socket_stays(world, settings, caplog, batch):
    settings.MYTHLINE_WS_FRAME_RATE, settings.MYTHLINE_WS_FRAME_BURST = 10_000, 10_000
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("10000/s", 10_000), "read": ("10000/s", 10_000)}
    caplog.set_level(logging.WARNING)

    async def go():
        async with Client(world["bob"]) as c:
            await c.recv()  # welcome
            for frame in batch:
                if isinstance(frame, dict):
                    await c.send(**frame)
                else:
                    await c.ws.send_to(text_data=frame)
            # Whatever came before, the socket still answers, in order.
            reply = await c.request(type="ping", ref="last")
            assert reply == {"type": "pong", "ref": "last"}
    run(go())
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]


def test_deeply_nested_frame_is_an_error_not_a_crash(world, caplog):
    async def go():
        async with Client(world["bob"]) as c:
            await c.recv()
            await c.ws.send_to(text_data="[" * 100_000)
            reply = await c.recv()
            assert (reply["type"], reply["code"]) == ("error", "invalid")
            await c.ws.send_to(text_data='{"type":"publish","topic":"channel:tale/general","msg_type":"text",'
                                         '"payload":' + '{"a":' * 30_000 + "1" + "}" * 30_001)
            reply = await c.recv()
            assert (reply["type"], reply["code"]) == ("error", "invalid")
            assert (await c.request(type="ping"))["type"] == "pong"
    run(go())
    assert not [r for r in caplog.records if r.exc_info]


def test_typing_floods_reach_readers_bounded(world):
    """40 alternating start/stop frames: readers hear a few (a burst), not 40."""
    async def go():
        async with Client(world["alice"]) as a, Client(world["bob"]) as b:
            for c in (a, b):
                await c.recv()
                await c.request(type="subscribe", topic="channel:tale/general")
            for i in range(40):
                await b.send(type="typing", topic="channel:tale/general", typing=i % 2 == 0)
            await b.request(type="ping")
            got = []
            while not await a.ws.receive_nothing(timeout=0.5, interval=0.02):
                frame = await a.recv()
                if frame["type"] == "typing":
                    got.append(frame["typing"])
            assert got == [True, False, True, False]  # the burst; the rest dropped
    run(go())


def test_typing_needs_the_right_to_post(world):
    async def go():
        async with Client(world["vera"]) as v:  # a viewer
            await v.recv()
            await v.request(type="subscribe", topic="channel:tale/general")
            reply = await v.request(type="typing", topic="channel:tale/general", typing=True)
            assert (reply["type"], reply["code"]) == ("error", "forbidden")
            await v.request(type="subscribe", topic="doc:tale/main")
            reply = await v.request(type="cursor", topic="doc:tale/main", anchor=0)
            assert (reply["type"], reply["code"]) == ("error", "forbidden")
    run(go())


def test_sockets_per_user_are_capped(world, settings):
    settings.MYTHLINE_MAX_SOCKETS_PER_USER = 2

    async def go():
        async with Client(world["bob"]) as one, Client(world["bob"]) as two:
            for c in (one, two):
                assert (await c.recv())["type"] == "welcome"
            third = Client(world["bob"])
            await third.ws.connect()
            refusal = json.loads(await third.ws.receive_from())
            assert (refusal["type"], refusal["code"], refusal["details"]["limit"]) == ("error", "rate_limited", 2)
            assert await third.ws.receive_output() == {"type": "websocket.close", "code": 4429}
            async with Client(world["alice"]) as other:  # another user is not affected
                assert (await other.recv())["type"] == "welcome"
        # Closed sockets give their places back.
        async with Client(world["bob"]) as again:
            assert (await again.recv())["type"] == "welcome"
    run(go())


def test_subscriptions_per_socket_are_capped(world, settings):
    settings.MYTHLINE_MAX_SUBSCRIPTIONS_PER_SOCKET = 2

    async def go():
        async with Client(world["bob"]) as c:
            await c.recv()
            for topic in ("channel:tale/general", "story:tale"):
                assert (await c.request(type="subscribe", topic=topic))["type"] == "subscribed"
            reply = await c.request(type="subscribe", topic="doc:tale/main")
            assert (reply["type"], reply["code"]) == ("error", "rate_limited")
            # Re-subscribing to a held topic is not one more.
            assert (await c.request(type="subscribe", topic="story:tale"))["type"] == "subscribed"
            await c.request(type="unsubscribe", topic="story:tale")
            assert (await c.request(type="subscribe", topic="doc:tale/main"))["type"] == "subscribed"
    run(go())


def test_replaying_subscriptions_count_as_reads(world, settings):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "read": ("1/m", 2)}

    async def go():
        async with Client(world["bob"]) as c:
            await c.recv()
            for _ in range(5):  # live-only subscriptions cost no read
                assert (await c.request(type="subscribe", topic="channel:tale/general"))["type"] == "subscribed"
            answers = [(await c.request(type="subscribe", topic="channel:tale/general", after=0))["type"]
                       for _ in range(4)]
            assert answers[-1] == "error" and answers.count("subscribed") <= 3
    run(go())


def test_demoted_channel_creator_manages_no_more(world, api):
    story, bob = world["story"], world["bob"]
    client = api(bob)
    assert client.post("/api/stories/tale/channels", {"name": "den", "kind": "private"}, format="json").status_code == 201
    participant_add(story=story, user=bob, role=Participant.Role.VIEWER)
    r = client.patch("/api/stories/tale/channels/den", {"topic": "mine still?"}, format="json")
    assert r.status_code == 403 and error_code(r) == "forbidden"
    r = client.post("/api/stories/tale/channels/den/members", {"username": "vera"}, format="json")
    assert r.status_code == 403 and error_code(r) == "forbidden"
