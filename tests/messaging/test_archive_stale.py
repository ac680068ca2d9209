"""Archiving acts on what it read only if that still holds: the admin actions count and log only the
channels they changed, and the idle sweeper (and the archive-at-post-time check) leave a channel
open when it received a message, was unarchived or had its idle limit changed after the read."""
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from audit import services as audit
from audit.models import RightsEvent
from messaging.models import Channel, Message
from messaging.policies import access_channel
from messaging.services import (
    archive_idle_channel,
    archive_idle_channels,
    channel_create,
    channel_set_archived,
    channel_update,
    idle_channels,
    message_post,
)

CHANGELIST = reverse("admin:messaging_channel_changelist")


@pytest.fixture
def tale(make_user, make_story):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    return {"alice": alice, "bob": bob, "story": story}


def say(user, story, channel, text, access=None):
    access = access or access_channel(user, story.slug, channel, for_write=True)
    return message_post(sender=user, access=access, data={"msg_type": "text", "payload": {"text": text}})


def make_idle(channel: Channel, seconds: int = 60) -> None:
    """The channel's last message (and its creation) lie `seconds + 1` seconds back."""
    long_ago = timezone.now() - timedelta(seconds=seconds + 1)
    Channel.objects.filter(pk=channel.pk).update(last_message_at=long_ago, created_at=long_ago)


def archive_events(channel, event_type=audit.CHANNEL_ARCHIVED):
    return RightsEvent.objects.filter(channel_id=channel.pk, event_type=event_type).count()


def admin_log(channel):
    kind = ContentType.objects.get_for_model(Channel)
    return list(LogEntry.objects.filter(content_type=kind, object_id=str(channel.pk))
                .values_list("change_message", flat=True))


# --- Admin actions count what they changed ----------------------------------------------------

@pytest.fixture
def admin_client(tale, client):
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456"))
    return client


def someone_else_acts_first(monkeypatch, act):
    """While the admin action works through the channels it read, another admin's change lands:
    right after the action's first change is recorded, `act()` runs (once)."""
    record, state = audit.record, {"done": False}

    def recording(*args, **kwargs):
        row = record(*args, **kwargs)
        if not state["done"]:
            state["done"] = True
            act()
        return row

    monkeypatch.setattr(audit, "record", recording)


def test_archive_action_counts_only_the_channels_it_archived(tale, admin_client, monkeypatch):
    alice, story = tale["alice"], tale["story"]
    first = channel_create(story=story, creator=alice, name="a-first", kind="public")
    second = channel_create(story=story, creator=alice, name="b-second", kind="public")
    # The action read both open; before it gets to the second, alice archives it herself.
    someone_else_acts_first(monkeypatch, lambda: channel_set_archived(
        channel=Channel.objects.get(pk=second.pk), by=alice, archived=True))
    response = admin_client.post(CHANGELIST, {"action": "archive_selected",
                                              "_selected_action": [str(first.pk), str(second.pk)]}, follow=True)
    page = response.content.decode()
    assert "Archived 1 channel." in page and "Archived 2 channels." not in page
    assert Channel.objects.filter(pk__in=[first.pk, second.pk], archived_at__isnull=False).count() == 2
    assert admin_log(first) == ["Archived the channel."] and admin_log(second) == []
    assert archive_events(first) == 1 and archive_events(second) == 1  # one each: boss's, alice's


def test_unarchive_action_counts_only_the_channels_it_unarchived(tale, admin_client, monkeypatch):
    alice, story = tale["alice"], tale["story"]
    first = channel_create(story=story, creator=alice, name="a-first", kind="public")
    second = channel_create(story=story, creator=alice, name="b-second", kind="public")
    for channel in (first, second):
        channel_set_archived(channel=channel, by=alice, archived=True)
    someone_else_acts_first(monkeypatch, lambda: channel_set_archived(
        channel=Channel.objects.get(pk=second.pk), by=alice, archived=False))
    response = admin_client.post(CHANGELIST, {"action": "unarchive_selected",
                                              "_selected_action": [str(first.pk), str(second.pk)]}, follow=True)
    page = response.content.decode()
    assert "Unarchived 1 channel." in page and "Unarchived 2 channels." not in page
    assert Channel.objects.filter(pk__in=[first.pk, second.pk], archived_at__isnull=True).count() == 2
    assert admin_log(first) == ["Unarchived the channel."] and admin_log(second) == []
    assert archive_events(second, audit.CHANNEL_UNARCHIVED) == 1


def test_archive_action_on_open_and_archived_channels_counts_the_open_ones(tale, admin_client):
    alice, story = tale["alice"], tale["story"]
    open_one = channel_create(story=story, creator=alice, name="open", kind="public")
    closed = channel_create(story=story, creator=alice, name="closed", kind="public")
    channel_set_archived(channel=closed, by=alice, archived=True)
    response = admin_client.post(CHANGELIST, {"action": "archive_selected",
                                              "_selected_action": [str(open_one.pk), str(closed.pk)]}, follow=True)
    assert "Archived 1 channel." in response.content.decode()
    assert admin_log(closed) == [] and archive_events(closed) == 1


# --- The idle sweeper and a stale read -----------------------------------------------------------

def test_a_message_after_the_sweep_read_keeps_the_channel_open(tale):
    alice, bob, story = tale["alice"], tale["bob"], tale["story"]
    brief = channel_create(story=story, creator=alice, name="brief", kind="public", idle_archive_seconds=60)
    # A sweep 61 s from now reads it idle ...
    sweep_at = timezone.now() + timedelta(seconds=61)
    [candidate] = idle_channels(now=sweep_at)
    assert candidate.pk == brief.pk
    say(bob, story, "brief", "Still here.")  # ... a message comes in (it is not idle yet) ...
    assert archive_idle_channel(candidate, now=sweep_at) is False  # ... and the archive step leaves it open.
    brief.refresh_from_db()
    assert brief.archived_at is None and archive_events(brief) == 0
    say(bob, story, "brief", "And posting goes on.")
    assert Message.objects.filter(channel=brief).count() == 2
    # Once it is idle again, the next sweep archives it.
    assert [c.pk for c in archive_idle_channels(now=timezone.now() + timedelta(seconds=61))] == [brief.pk]
    assert archive_events(brief) == 1


def test_an_idle_limit_changed_after_the_sweep_read_keeps_the_channel_open(tale):
    alice, story = tale["alice"], tale["story"]
    brief = channel_create(story=story, creator=alice, name="brief", kind="public", idle_archive_seconds=60)
    make_idle(brief)
    [candidate] = idle_channels()
    channel_update(channel=Channel.objects.get(pk=brief.pk), by=alice, idle_archive_seconds=None)
    assert archive_idle_channel(candidate) is False
    brief.refresh_from_db()
    assert brief.archived_at is None and brief.idle_archive_seconds is None


def test_the_sweep_archives_a_channel_that_stayed_idle(tale):
    alice, story = tale["alice"], tale["story"]
    brief = channel_create(story=story, creator=alice, name="brief", kind="public", idle_archive_seconds=60)
    make_idle(brief)
    [candidate] = idle_channels()
    assert archive_idle_channel(candidate) is True
    assert archive_idle_channel(candidate) is False  # once
    brief.refresh_from_db()
    assert brief.archived_at is not None and archive_events(brief) == 1


def test_a_post_read_before_an_unarchive_does_not_archive_again(tale):
    """bob's post read the channel idle; meanwhile it was archived and unarchived (which restarts
    its idle clock): the post is stored and the channel stays open."""
    alice, bob, story = tale["alice"], tale["bob"], tale["story"]
    brief = channel_create(story=story, creator=alice, name="brief", kind="public", idle_archive_seconds=60)
    make_idle(brief)
    stale = access_channel(bob, story.slug, "brief", for_write=True)
    assert [c.pk for c in archive_idle_channels()] == [brief.pk]
    channel_set_archived(channel=Channel.objects.get(pk=brief.pk), by=alice, archived=False)
    result = say(bob, story, "brief", "Back again.", access=stale)
    assert result.created and result.message.seq == 1
    brief.refresh_from_db()
    assert brief.archived_at is None and archive_events(brief) == 1


def test_a_post_to_a_channel_still_idle_archives_it_and_is_refused(tale):
    alice, bob, story = tale["alice"], tale["bob"], tale["story"]
    brief = channel_create(story=story, creator=alice, name="brief", kind="public", idle_archive_seconds=60)
    make_idle(brief)
    with pytest.raises(Exception) as refused:
        say(bob, story, "brief", "Too late.")
    assert getattr(refused.value, "code", None) == "archived"
    brief.refresh_from_db()
    assert brief.archived_at is not None and not Message.objects.filter(channel=brief).exists()
