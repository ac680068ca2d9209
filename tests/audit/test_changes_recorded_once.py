"""A change made twice (a stale object, a second caller at once, the idle sweeper of several
`serve --workers` processes) is made, published and recorded once: the writes are UPDATEs and
DELETEs guarded by the old state, and only the caller whose statement changed the row goes on.
They used to trust the object in memory, so each caller wrote its own audit row and sent its own
event (and a token revoked meanwhile could still be rotated into a fresh one)."""
import asyncio
import threading
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.utils import timezone

from accounts.models import ApiToken, hash_token
from accounts.services import token_issue, token_revoke, token_rotate
from audit.models import RightsEvent
from messaging.models import Channel
from messaging.services import archive_idle_channels, channel_create, channel_set_archived
from mythline_site.errors import Conflict, NotFound
from stories import services as story_services
from stories.models import Participant
from tests.concurrency import at_once, postgres_only
from tests.messaging.test_consumers import Client


def rows(event_type, **filters):
    return RightsEvent.objects.filter(event_type=event_type, **filters).count()


def fresh(channel):
    return Channel.objects.select_related("story", "created_by", "inbox_agent").get(pk=channel.pk)


@pytest.mark.django_db(transaction=True)
def test_archiving_from_two_stale_objects_is_recorded_and_published_once(make_user, make_story):
    alice = make_user("alice")
    alice.test_token = token_issue(user=alice)
    story = make_story(alice, slug="tale")
    channel = channel_create(story=story, creator=alice, name="backstage", kind="public")

    async def go():
        async with Client(alice) as watcher:
            await watcher.recv()  # welcome
            assert (await watcher.request(type="subscribe", topic="story:tale"))["type"] == "subscribed"
            for archived, event in ((True, "channel.archived"), (False, "channel.unarchived")):
                # two pages loaded before either acts
                first, second = [await database_sync_to_async(fresh)(channel) for _ in range(2)]
                await database_sync_to_async(channel_set_archived)(channel=first, by=alice, archived=archived)
                await database_sync_to_async(channel_set_archived)(channel=second, by=alice, archived=archived)
                assert (first.archived_at is not None, second.archived_at is not None) == (archived, archived)
                seen = await watcher.until("event")
                assert (seen["event"], seen["data"]["name"]) == (event, "backstage")
                await watcher.nothing()  # not a second time

    asyncio.run(go())
    connections.close_all()
    assert rows("channel.archived", channel=channel) == 1
    assert rows("channel.unarchived", channel=channel) == 1


def test_revoking_from_two_stale_objects_is_recorded_once(make_user):
    bob = make_user("bob")
    raw = token_issue(user=bob, label="ci")
    first, second = (ApiToken.objects.get(key_hash=hash_token(raw)) for _ in range(2))
    assert token_revoke(token=first, by=bob) is True
    assert token_revoke(token=second, by=bob) is False  # it was revoked meanwhile: nothing to do
    assert second.revoked_at == first.revoked_at  # and the object now shows when
    assert rows("token.revoked", subject=bob) == 1


def test_a_token_revoked_meanwhile_is_not_rotated(make_user, api):
    bob = make_user("bob")
    raw = token_issue(user=bob, label="ci")
    stale = ApiToken.objects.get(key_hash=hash_token(raw))
    token_revoke(token=ApiToken.objects.get(pk=stale.pk), by=bob)
    with pytest.raises(Conflict):
        token_rotate(token=stale, by=bob)  # used to revoke nothing and issue a fresh token
    assert not ApiToken.objects.filter(user=bob, revoked_at__isnull=True).exists()
    assert rows("token.rotated", subject=bob) == 0
    assert api(None).get("/api/stories", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


# --- Callers at once, on PostgreSQL (SQLite serializes write transactions) ----------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_archiving_at_once_from_many_callers_and_sweepers_is_recorded_once(make_user, make_story):
    postgres_only()
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    by_hand = channel_create(story=story, creator=alice, name="backstage", kind="public")
    objects = [fresh(by_hand) for _ in range(8)]  # each caller's own, loaded before any acts
    _, errors = at_once(8, lambda i: channel_set_archived(channel=objects[i], by=alice, archived=True))
    assert errors == [None] * 8
    assert rows("channel.archived", channel=by_hand) == 1

    idle = channel_create(story=story, creator=alice, name="quiet", kind="public", idle_archive_seconds=60)
    Channel.objects.filter(pk=idle.pk).update(last_message_at=timezone.now() - timedelta(hours=1))
    # Eight server processes' sweepers at once: one archives it, and only that one counts it.
    counts, errors = at_once(8, lambda i: len(archive_idle_channels()))
    assert errors == [None] * 8
    assert sum(counts) == 1
    assert rows("channel.archived", channel=idle, note="idle") == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_removing_a_participant_twice_at_once_is_recorded_once(make_user, make_story, api, monkeypatch):
    postgres_only()
    alice, bob = make_user("alice"), make_user("bob")
    make_story(alice, slug="tale", editors=[bob])
    clients = [api(alice), api(alice)]
    # Hold both removals after they have found bob's row, so both go on to delete it.
    found = threading.Barrier(2, timeout=10)
    real_json = story_services.participant_json

    def json_then_wait(participant):
        data = real_json(participant)
        try:
            found.wait()
        except threading.BrokenBarrierError:
            pass
        return data

    monkeypatch.setattr(story_services, "participant_json", json_then_wait)
    answers, errors = at_once(2, lambda i: clients[i].delete("/api/stories/tale/participants/bob"))
    assert errors == [None, None]
    assert sorted(a.status_code for a in answers) == [204, 404], [a.content for a in answers]
    assert not Participant.objects.filter(story__slug="tale", user=bob).exists()
    assert rows("participant.removed", subject=bob) == 1


def test_removing_a_participant_already_gone_is_not_found(make_user, make_story):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    story_services.participant_remove(story=story, user=bob, by=alice)
    with pytest.raises(NotFound):
        story_services.participant_remove(story=story, user=bob, by=alice)
    assert rows("participant.removed", subject=bob) == 1
