"""The message write path: gapless seq under concurrency, idempotency, publish after commit."""
import asyncio
import json
import threading
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from messaging.models import Message
from messaging.policies import access_channel
from messaging.services import message_post
from mythline_site.errors import Conflict


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
    # Token lookup, channel + access (one query), seq UPDATE ... RETURNING, INSERT; the test's
    # outer transaction turns BEGIN/COMMIT into SAVEPOINT/RELEASE, which are counted here.
    # (The first request also stamps the token's last_used_at, at most once a minute.)
    assert len(set(counts[1:])) == 1, counts
    assert counts[-1] == 6, [q["sql"] for q in ctx.captured_queries]
