"""The message write path: gapless seq under concurrency, idempotency, publish after commit."""
import asyncio
import json
import threading
import uuid

import pytest
from asgiref.sync import async_to_sync
from prometheus_client import REGISTRY
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.services import token_issue
from agents.mcp import build_server
from messaging.models import Channel, Message
from messaging.policies import access_channel
from messaging.services import channel_create, channel_set_archived, message_post, message_publish
from mythline_site.asgi import application
from mythline_site.errors import Conflict, Forbidden, RateLimited


def post(user, story, channel="general", text="hello", **extra):
    access = access_channel(user, story.slug, channel, for_write=True)
    return message_post(sender=user, access=access, data={"msg_type": "text", "payload": {"text": text}, **extra})


@pytest.mark.django_db(transaction=True)
def test_seq_is_gapless_under_eight_concurrent_writers(make_user, make_story):
    owner = make_user("owner")
    writers = [make_user(f"w{i}") for i in range(8)]
    story = make_story(owner, editors=writers)
    errors = []
    start = threading.Barrier(len(writers))

    def write(user):
        try:
            start.wait()
            for i in range(50):
                post(user, story, text=f"{user.username}-{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(u,)) for u in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    seqs = list(Message.objects.filter(channel__story=story, channel__name="general").order_by("seq")
                .values_list("seq", flat=True))
    assert seqs == list(range(1, 401))
    # Each writer's own posts keep their order too.
    for user in writers:
        texts = list(Message.objects.filter(sender=user).order_by("seq").values_list("payload__text", flat=True))
        assert texts == [f"{user.username}-{i}" for i in range(50)]
    assert story.channels.get(name="general").last_seq == 400


def test_repeat_with_same_id_returns_original(make_user, make_story):
    alice = make_user("alice")
    story = make_story(alice)
    mid = str(uuid.uuid4())
    first = post(alice, story, text="once", id=mid)
    post(alice, story, text="other")
    again = post(alice, story, text="once", id=mid)
    assert first.created and not again.created
    assert again.data == first.data
    assert Message.objects.filter(story=story).count() == 2


def test_same_id_with_other_content_is_conflict(make_user, make_story):
    alice = make_user("alice")
    story = make_story(alice)
    mid = str(uuid.uuid4())
    post(alice, story, text="once", id=mid)
    with pytest.raises(Conflict):
        post(alice, story, text="twice", id=mid)
    assert list(Message.objects.filter(story=story).values_list("seq", flat=True)) == [1]


def test_same_id_from_another_sender_is_conflict(make_user, make_story):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, editors=[bob])
    mid = str(uuid.uuid4())
    post(alice, story, text="same", id=mid)
    with pytest.raises(Conflict):
        post(bob, story, text="same", id=mid)


def test_idempotency_key_over_rest(make_user, make_story, api):
    alice = make_user("alice")
    story = make_story(alice)
    client = api(alice)
    url = f"/api/stories/{story.slug}/channels/general/messages"
    body = {"msg_type": "text", "payload": {"text": "retry me"}}
    r1 = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    r2 = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r2.json()["id"] == r1.json()["id"] and r2.json()["seq"] == 1
    r3 = client.post(url, {"msg_type": "text", "payload": {"text": "changed"}}, format="json",
                     HTTP_IDEMPOTENCY_KEY="k-1")
    assert r3.status_code == 409 and r3.json()["error"]["code"] == "conflict"
    r4 = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert r4.status_code == 201 and r4.json()["seq"] == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_one_id_store_it_once(make_user, make_story):
    alice = make_user("alice")
    story = make_story(alice)
    mid = str(uuid.uuid4())
    results, errors = [], []
    start = threading.Barrier(6)

    def write():
        try:
            start.wait()
            results.append(post(alice, story, text="race", id=mid))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sum(r.created for r in results) == 1
    assert {r.data["seq"] for r in results} == {1}
    assert Message.objects.filter(story=story).count() == 1


def _listen(group):
    layer = get_channel_layer()
    name = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, name)
    return layer, name


def _receive(layer, name, timeout=5):
    async def recv():
        return await asyncio.wait_for(layer.receive(name), timeout)
    return async_to_sync(recv)()


@pytest.mark.django_db(transaction=True)
def test_committed_post_publishes_once_and_rolled_back_post_publishes_nothing(make_user, make_story):
    alice = make_user("alice")
    story = make_story(alice)
    channel = story.channels.get(name="general")
    layer, name = _listen(channel.group_name)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            post(alice, story, text="rolled back")
            raise RuntimeError("abort")
    assert not Message.objects.filter(story=story).exists()
    committed = post(alice, story, text="committed")
    event = _receive(layer, name)
    # The first event to arrive is the committed post: the rolled-back one published nothing.
    assert event["type"] == "message.created" and event["id"] == committed.data["id"]
    assert event["seq"] == 1
    frame = json.loads(event["frame"])
    assert frame == {"type": "message", "topic": f"channel:{story.slug}/general", "message": committed.data}
    # And exactly once: the next event is the next post, not a duplicate.
    second = post(alice, story, text="second")
    assert _receive(layer, name)["id"] == second.data["id"]


def test_queries_per_post_are_constant(make_user, make_story, api):
    alice = make_user("alice")
    story = make_story(alice)
    client = api(alice)
    url = f"/api/stories/{story.slug}/channels/general/messages"
    counts = []
    for i in range(5):
        with CaptureQueriesContext(connection) as ctx:
            r = client.post(url, {"msg_type": "text", "payload": {"text": f"n{i}"}}, format="json")
        assert r.status_code == 201
        counts.append(len(ctx.captured_queries))
    # Token lookup, channel + access (one query), seq UPDATE ... RETURNING, INSERT, the search
    # index's INSERT (search.services.index_posted); on Postgres the last three are one statement
    # (services._insert_plain). The test's outer transaction turns BEGIN/COMMIT into
    # SAVEPOINT/RELEASE, which are counted here.
    # (The first request also stamps the token's last_used_at, at most once a minute.)
    assert len(set(counts[1:])) == 1, counts
    assert counts[-1] == (5 if connection.vendor == "postgresql" else 7), [q["sql"] for q in ctx.captured_queries]


# --- message_publish: the one way REST, the WebSocket and MCP post -------------------------------

def test_message_publish_checks_the_rate_then_access_then_posts_and_counts(make_user, make_story, settings):
    alice, vera = make_user("alice"), make_user("vera")
    story = make_story(alice, viewers=[vera])
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("1/m", 1)}  # two posts, then 429
    published = lambda: REGISTRY.get_sample_value("mythline_messages_published_total",  # noqa: E731
                                                  {"protocol": "test"}) or 0
    counted = published()
    text = {"msg_type": "text", "payload": {"text": "hello"}}
    first = message_publish(sender=alice, story=story.slug, channel="general", data=text, idempotency_key="k",
                            via="test")
    again = message_publish(sender=alice, story=story.slug, channel="general", data=text, idempotency_key="k",
                            via="test")
    assert first.created and not again.created and again.message.pk == first.message.pk
    assert published() == counted + 1  # the repeat is not counted
    with pytest.raises(RateLimited):  # the repeat took a unit too: the budget is per request
        message_publish(sender=alice, story=story.slug, channel="general", data=text, via="test")
    with pytest.raises(Forbidden):  # a viewer reads but does not post
        message_publish(sender=vera, story=story.slug, channel="general", data=text, via="test")
    assert Message.objects.filter(story=story).count() == 1


def _rest_error(client, story, channel, data):
    r = client.post(f"/api/stories/{story}/channels/{channel}/messages", data, format="json")
    assert r.status_code >= 400, r.content
    return r.status_code, r.json()["error"]


async def _ws_publish(token, story, channel, data) -> dict:
    """The answer to one `publish` frame."""
    ws = WebsocketCommunicator(application, "/ws/", headers=[(b"authorization", f"Bearer {token}".encode())])
    connected, _ = await ws.connect(timeout=5)
    assert connected
    try:
        await ws.send_to(text_data=json.dumps({"type": "publish", "topic": f"channel:{story}/{channel}",
                                               "ref": "p1", **data}))
        while True:
            frame = json.loads(await ws.receive_from(timeout=5))
            if frame.get("ref") == "p1":
                break
    finally:
        await ws.disconnect()
    return frame


async def _ws_error(token, story, channel, data):
    frame = await _ws_publish(token, story, channel, data)
    assert frame["type"] == "error", frame
    return {"code": frame["code"], "message": frame["message"], "details": frame.get("details")}


async def _mcp_error(user, story, channel, data):
    result = await build_server(agent=user).call_tool("post_message", {"story": story, "channel": channel, **data})
    assert result.isError, result
    return result.structuredContent["error"]


BAD_POSTS = {
    # name: (sender, channel, body, REST status)
    "payload-schema": ("bob", "general", {"msg_type": "dialogue", "payload": {"line": "Hm."}}, 400),
    "msg-type": ("bob", "general", {"msg_type": "Not A Type", "payload": {"text": "x"}}, 400),
    "unknown-audience": ("bob", "general", {"msg_type": "text", "payload": {"text": "x"}, "audience": ["nobody"]},
                         400),
    "no-such-channel": ("bob", "nope", {"msg_type": "text", "payload": {"text": "x"}}, 404),
    "viewer": ("vera", "general", {"msg_type": "text", "payload": {"text": "x"}}, 403),
    "archived": ("bob", "old", {"msg_type": "text", "payload": {"text": "x"}}, 409),
}


@pytest.fixture
def crew(make_user, make_story, api):
    """Story `tale`: owner alice, editor bob, viewer vera; `old` is an archived public channel."""
    alice, bob, vera = make_user("alice"), make_user("bob"), make_user("vera")
    story = make_story(alice, slug="tale", editors=[bob], viewers=[vera])
    old = channel_create(story=story, creator=alice, name="old", kind=Channel.Kind.PUBLIC)
    channel_set_archived(channel=old, by=alice, archived=True)
    users = {"alice": alice, "bob": bob, "vera": vera}
    return {"story": story, "users": users, "rest": {name: api(user) for name, user in users.items()},
            "tokens": {name: token_issue(user=user) for name, user in users.items()}}


@pytest.mark.django_db(transaction=True)
def test_every_transport_gives_the_same_error_for_the_same_bad_post(crew):
    for name, (who, channel, body, status) in BAD_POSTS.items():
        rest_status, rest = _rest_error(crew["rest"][who], "tale", channel, body)
        ws = asyncio.run(_ws_error(crew["tokens"][who], "tale", channel, body))
        mcp = asyncio.run(_mcp_error(crew["users"][who], "tale", channel, body))
        assert rest_status == status, (name, rest)
        assert rest == ws == mcp, name
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_every_transport_draws_on_one_post_budget_one_unit_a_post(crew, settings):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("1/m", 3)}  # four posts, then 429
    bob, body = crew["users"]["bob"], {"msg_type": "text", "payload": {"text": "x"}}
    for i in range(2):
        r = crew["rest"]["bob"].post("/api/stories/tale/channels/general/messages",
                                     {"msg_type": "text", "payload": {"text": f"rest {i}"}}, format="json")
        assert r.status_code == 201, r.content
    frame = asyncio.run(_ws_publish(crew["tokens"]["bob"], "tale", "general",
                                    {"msg_type": "text", "payload": {"text": "ws"}}))
    assert frame["type"] == "published", frame
    published = asyncio.run(build_server(agent=bob).call_tool(
        "post_message", {"story": "tale", "channel": "general", "msg_type": "text", "payload": {"text": "mcp"}}))
    assert not published.isError, published
    status, rest = _rest_error(crew["rest"]["bob"], "tale", "general", body)
    assert status == 429 and rest["code"] == "rate_limited" and rest["details"]["retry_after"] >= 1
    for error in (asyncio.run(_ws_error(crew["tokens"]["bob"], "tale", "general", body)),
                  asyncio.run(_mcp_error(bob, "tale", "general", body))):
        assert (error["code"], error["message"], set(error["details"])) == \
            (rest["code"], rest["message"], {"retry_after"})
    assert Message.objects.filter(sender=bob).count() == 4
