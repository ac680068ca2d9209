"""A plain post on PostgreSQL is stored by one statement (messaging.services._insert_plain): the
channel's seq, the message and its search entry, committed together with no round trip to the
process while the channel's row lock is held. These tests hold it to the general path: what a user
sees (seq, search, the archived refusal, repeats) is the same, and `_plain` only lets through posts
for which the general path would write nothing more."""
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from messaging import services
from messaging.models import Channel, Message
from messaging.policies import access_channel
from messaging.services import channel_set_archived, clean_message_input, inbox_ensure, message_post
from mythline_site.errors import Archived
from notifications import services as notifications
from search.models import MessageText
from webhooks import services as webhooks

pytestmark = pytest.mark.django_db(transaction=True)


def post(user, story, data, channel="general"):
    return message_post(sender=user, access=access_channel(user, story.slug, channel, for_write=True), data=data)


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]


def test_a_plain_post_on_postgres_is_one_statement_and_reads_back_as_any_post(make_user, make_story):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement post is Postgres's (SQLite takes its write lock per transaction)")
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    post(alice, story, {"msg_type": "text", "payload": {"text": "first"}})
    with CaptureQueriesContext(connection) as queries:
        result = post(alice, story, {"msg_type": "narration", "payload": {"text": "The lighthouse keeper woke."}})
    assert result.created and result.data["seq"] == 2
    [statement] = writes(queries)  # no BEGIN, no SAVEPOINT, no second INSERT
    assert statement.startswith("WITH s AS (UPDATE")
    stored = Message.objects.get(pk=result.message.pk)
    assert (stored.seq, stored.payload, stored.msg_type) == (2, {"text": "The lighthouse keeper woke."}, "narration")
    assert MessageText.objects.get(message_id=stored.pk).text == "The lighthouse keeper woke."
    general = Channel.objects.get(story=story, name="general")
    assert general.last_seq == 2 and general.last_message_at == stored.created_at


def test_a_post_into_a_channel_archived_after_its_checks_is_refused_and_stores_nothing(make_user, make_story):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    access = access_channel(alice, story.slug, "general", for_write=True)  # checked while open
    channel_set_archived(channel=Channel.objects.get(story=story, name="general"), by=alice, archived=True)
    with pytest.raises(Archived):
        message_post(sender=alice, access=access, data={"msg_type": "text", "payload": {"text": "too late"}})
    assert not Message.objects.exists() and not MessageText.objects.exists()
    assert Channel.objects.get(story=story, name="general").last_seq == 0


def test_the_same_id_twice_is_one_post(make_user, make_story):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    body = {"id": str(uuid.uuid4()), "msg_type": "text", "payload": {"text": "once"}}
    first, again = post(alice, story, body), post(alice, story, body)
    assert (first.created, again.created) == (True, False)
    assert again.data["seq"] == first.data["seq"] == 1
    assert Message.objects.count() == MessageText.objects.count() == 1


CASES = {
    "text": {"msg_type": "text", "payload": {"text": "plain words"}},
    "narration": {"msg_type": "narration", "payload": {"text": "plain words"}},
    "a mention": {"msg_type": "text", "payload": {"text": "over to you @bob"}},
    "an agent mention": {"msg_type": "text", "payload": {"text": "over to you @scribe"}},
    "a decision": {"msg_type": "decision", "payload": {"text": "we keep the storm"}},
    "a private audience": {"msg_type": "text", "payload": {"text": "psst"}, "audience": ["bob"]},
    "a reply to bob": {"msg_type": "text", "payload": {"text": "agreed"}},
}


@pytest.mark.parametrize("channel_kind", ["general", "inbox"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_plain_lets_through_only_posts_the_general_path_writes_nothing_more_for(
        case, channel_kind, make_user, make_agent, make_story, settings):
    """The drift guard: were notifications or webhooks to start writing for a post `_plain` lets
    through, the one-statement path would lose those rows. So for each kind of post, in a channel
    and in an inbox with an active webhook: `_plain` is true only where the general path's
    side writes (recipients, notifications, webhook deliveries) write and read nothing."""
    settings.MYTHLINE_WEBHOOK_ALLOW_INSECURE = settings.MYTHLINE_WEBHOOK_ALLOW_PRIVATE = True
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    scribe = make_agent("scribe", stories=[story])
    webhooks.webhook_set(agent=scribe, url="http://127.0.0.1:9/hook")  # never called: deliveries stay pending
    channel = (inbox_ensure(story=story, agent=scribe) if channel_kind == "inbox"
               else Channel.objects.get(story=story, name="general"))
    data = dict(CASES[case])
    if case == "a reply to bob":
        data["reply_to"] = str(post(bob, story, {"msg_type": "text", "payload": {"text": "shall we?"}},
                                    channel=channel.name).message.pk)
    clean = clean_message_input(data, sender=alice, story=story, channel=channel)
    stored = post(alice, story, data, channel=channel.name).message
    stored.pk = uuid.uuid4()  # the same post once more, as the general path would see it; rolled back
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        notifications.on_posted(stored, channel)
        webhooks.on_posted(stored, channel)
        transaction.set_rollback(True)
    side_effects = bool(queries.captured_queries) or bool(clean.recipient_ids)
    assert not (services._plain(clean, channel) and side_effects), (case, channel_kind, queries.captured_queries)
    if case in ("text", "narration") and channel_kind == "general":
        assert services._plain(clean, channel)  # the common post takes the short path
