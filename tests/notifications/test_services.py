"""Who a message notifies: mentions in text and in `mentions`, replies, decisions; never the
sender, never someone who may not read it; one per user and message; agents' inbox copies."""
import pytest

from messaging.models import Message
from mythline_site.errors import Invalid
from notifications import mentions, selectors, services
from notifications.models import Notification
from tests.notifications.conftest import post

pytestmark = pytest.mark.django_db


def feed(user):
    return [(n.kind, n.actor.username if n.actor else None, n.excerpt) for n in selectors.feed(user).order_by("id")]


def test_names_in_text():
    payload = {"text": "Hi @Bob, @carol. mail mia@example.org @@x (@vera) @ end @dot.name. @a-b-",
               "beats": ["@Bob again", {"deep": ["@deep_one"]}], "n": 3}
    assert mentions.names_in_text(payload) == ["bob", "carol", "vera", "dot.name", "a-b", "deep_one"]
    assert mentions.names_in_text({"text": "no mentions"}) == []
    many = {"text": " ".join(f"@u{i}" for i in range(80))}
    assert len(mentions.names_in_text(many)) == mentions.MAX_MENTIONS


def test_a_mention_in_text_notifies_the_participant_case_insensitively(cast):
    result = post(cast["bob"], payload={"text": "Over to you, @CAROL. And @nobody, @otto."})
    assert result.data["mentions"] == ["carol"]  # otto takes no part; nobody exists
    assert Message.objects.get(pk=result.message.pk).mentions == ["carol"]
    assert feed(cast["carol"]) == [("mention", "bob", "Over to you, @CAROL. And @nobody, @otto.")]
    assert feed(cast["otto"]) == [] and feed(cast["bob"]) == []
    n = selectors.feed(cast["carol"]).get()
    assert n.message_id == result.message.pk and n.channel.name == "general" and n.story.slug == "tale"


def test_explicit_mentions_are_validated_and_stored(cast):
    result = post(cast["bob"], payload={"text": "plain"}, mentions=["vera", "scribe"])
    assert result.data["mentions"] == ["vera", "scribe"]
    assert [k for k, *_ in feed(cast["vera"])] == ["mention"]
    for bad, why in [("vera", "must be a list of usernames"), ([1], "must be a list of usernames"),
                     ([""], "must be a list of usernames"),
                     ([f"u{i}" for i in range(51)], "may list at most 50 usernames"),
                     (["ghost"], mentions.NOT_PARTICIPANTS), (["otto"], mentions.NOT_PARTICIPANTS)]:
        with pytest.raises(Invalid) as refused:
            post(cast["bob"], payload={"text": "x"}, mentions=bad)
        assert refused.value.details == {"mentions": why}, bad
    # The same answer for a user who does not exist and one who takes no part: nothing leaks.
    assert Notification.objects.filter(user=cast["otto"]).count() == 0


def test_mention_is_a_reserved_msg_type(cast):
    with pytest.raises(Invalid) as refused:
        post(cast["bob"], msg_type="mention", payload={"text": "fake"})
    assert "msg_type" in refused.value.details


def test_never_the_sender_and_one_per_user_and_message(cast):
    post(cast["bob"], payload={"text": "@bob talks to himself, @carol @Carol"}, mentions=["carol", "bob"])
    assert feed(cast["bob"]) == []
    assert len(feed(cast["carol"])) == 1


def test_replies_notify_the_replied_sender_and_a_mention_wins(cast):
    first = post(cast["carol"], payload={"text": "Who keeps the lamp?"}).message
    post(cast["bob"], payload={"text": "I do."}, reply_to=str(first.pk))
    post(cast["bob"], payload={"text": "@carol, really."}, reply_to=str(first.pk))
    post(cast["carol"], payload={"text": "self reply"}, reply_to=str(first.pk))
    assert [k for k, *_ in feed(cast["carol"])] == ["reply", "mention"]


def test_a_decision_notifies_the_story_owner(cast):
    post(cast["bob"], msg_type="decision", payload={"text": "We go north."})
    assert feed(cast["alice"]) == [("decision", "bob", "We go north.")]
    post(cast["alice"], msg_type="decision", payload={"text": "Her own."})
    assert len(feed(cast["alice"])) == 1


def test_a_mention_of_someone_who_may_not_read_notifies_no_one(cast):
    # carol is no member of the private channel cabal; alice, the owner, reads everything.
    post(cast["bob"], channel="cabal", payload={"text": "@carol @alice psst"})
    assert feed(cast["carol"]) == []
    assert [k for k, *_ in feed(cast["alice"])] == ["mention"]
    # An audience that leaves someone out.
    post(cast["bob"], payload={"text": "@carol @vera humans only"}, audience=["vera"])
    assert feed(cast["carol"]) == [] and len(feed(cast["vera"])) == 1
    post(cast["bob"], payload={"text": "@scribe not for agents"}, audience="humans")
    assert feed(cast["scribe"]) == []


def test_relations_notify_no_one_but_an_edit_mentions_the_newly_named(cast):
    first = post(cast["bob"], payload={"text": "Hello @carol"}).message
    post(cast["carol"], msg_type="reaction", payload={"key": "👍"}, relates_to=str(first.pk))
    assert feed(cast["bob"]) == []
    post(cast["bob"], msg_type="edit", payload={"payload": {"text": "Hello @carol and @vera"}},
         relates_to=str(first.pk))
    assert len(feed(cast["carol"])) == 1  # already told of this message
    vera = selectors.feed(cast["vera"]).get()
    assert (vera.kind, vera.message_id, vera.excerpt) == ("mention", first.pk, "Hello @carol and @vera")
    with pytest.raises(Invalid) as refused:
        post(cast["bob"], msg_type="delete", payload={}, relates_to=str(first.pk), mentions=["carol"])
    assert "mentions" in refused.value.details


def test_an_agent_gets_a_copy_in_its_inbox_that_is_never_scanned(cast):
    result = post(cast["bob"], payload={"text": "@scribe write the storm, and @carol"})
    copy = Message.objects.get(channel__name="inbox.scribe", msg_type="mention")
    assert copy.sender == cast["bob"]
    assert copy.payload == {"message_id": str(result.message.pk), "story": "tale", "channel": "general",
                            "kind": "mention", "excerpt": "@scribe write the storm, and @carol"}
    assert not copy.mentions  # the copy mentions no one: carol is told once, by the message itself
    assert len(feed(cast["carol"])) == 1 and len(feed(cast["scribe"])) == 1
    # A message in the agent's own inbox makes no copy (it reads it there).
    post(cast["alice"], channel="inbox.scribe", payload={"text": "@scribe a task"})
    assert Message.objects.filter(channel__name="inbox.scribe", msg_type="mention").count() == 1
    assert len(feed(cast["scribe"])) == 2


def test_an_edit_and_a_deletion_reach_the_feed_and_the_agents_copy(cast):
    """The feed shows a message as it is now: an edit rewrites the excerpt and edits the agent's inbox
    copy; a deletion empties it and deletes the copy (in the inbox's log, by whoever edited or
    deleted the message)."""
    from messaging import relations

    first = post(cast["bob"], payload={"text": "@scribe and @carol: the key is under the mat"}).message
    copy = Message.objects.get(channel__name="inbox.scribe", msg_type="mention")
    post(cast["bob"], msg_type="edit", payload={"payload": {"text": "@scribe and @carol: the plan changed"}},
         relates_to=str(first.pk))
    assert feed(cast["carol"]) == [("mention", "bob", "@scribe and @carol: the plan changed")]
    assert feed(cast["scribe"]) == [("mention", "bob", "@scribe and @carol: the plan changed")]
    copy_edit = Message.objects.get(channel__name="inbox.scribe", msg_type="edit")
    assert (copy_edit.relates_to_id, copy_edit.sender) == (copy.pk, cast["bob"])
    assert relations.views_for([copy], cast["scribe"])[copy.pk]["payload"]["excerpt"] == (
        "@scribe and @carol: the plan changed")
    # An edit that leaves the excerpt as it was tells the agent nothing new.
    post(cast["bob"], msg_type="edit", payload={"payload": {"text": "@scribe and @carol: the plan changed"}},
         relates_to=str(first.pk))
    assert Message.objects.filter(channel__name="inbox.scribe", msg_type="edit").count() == 1
    post(cast["alice"], msg_type="delete", payload={}, relates_to=str(first.pk))  # the owner deletes it
    assert feed(cast["carol"]) == [("mention", "bob", "")] and feed(cast["scribe"]) == [("mention", "bob", "")]
    deletion = Message.objects.get(channel__name="inbox.scribe", msg_type="delete")
    assert (deletion.relates_to_id, deletion.sender) == (copy.pk, cast["alice"])
    assert relations.views_for([copy], cast["scribe"])[copy.pk]["deleted"] is True
    # Deleting the message again stores nothing new, in general or in the inbox.
    again = post(cast["alice"], msg_type="delete", payload={}, relates_to=str(first.pk))
    assert not again.created
    assert Message.objects.filter(channel__name="inbox.scribe", msg_type="delete").count() == 1


def test_notify_and_mark_read(cast):
    vera = cast["vera"]
    a = services.notify(user=vera, kind="webhook.disabled", excerpt="x" * 300)
    b = services.notify(user=vera, kind="webhook.disabled", excerpt="again")
    other = services.notify(user=cast["carol"], kind="webhook.disabled")
    assert len(a.excerpt) == 200 and selectors.unread_count(vera) == 2
    assert services.mark_read(user=vera, ids=[a.pk, other.pk]) == 1
    other.refresh_from_db()
    assert other.read_at is None  # someone else's id is ignored
    assert services.mark_read(user=vera, all=True) == 0
    b.refresh_from_db()
    assert b.read_at is not None


def test_an_edit_does_not_reach_the_copy_of_an_agent_that_lost_access(cast):
    """The new text of a message in a private channel the agent has left is not news for it: its
    inbox copy is not edited (and no webhook delivery carries it); an agent still in is told."""
    from messaging.models import Channel
    from messaging.services import member_add, member_remove

    cabal = Channel.objects.get(name="cabal")
    member_add(channel=cabal, user=cast["scribe"], by=cast["bob"])
    first = post(cast["bob"], channel="cabal", payload={"text": "@scribe the vault code is on the card"}).message
    assert Message.objects.filter(channel__name="inbox.scribe", msg_type="mention").count() == 1
    member_remove(channel=cabal, user=cast["scribe"], by=cast["bob"])
    post(cast["bob"], channel="cabal", msg_type="edit", relates_to=str(first.pk),
         payload={"payload": {"text": "@scribe the vault code is 1234"}})
    assert not Message.objects.filter(channel__name="inbox.scribe", msg_type="edit").exists()
    assert not [m for m in Message.objects.filter(channel__name="inbox.scribe") if "1234" in str(m.payload)]
    # Back in the channel, the next edit reaches the copy again.
    member_add(channel=cabal, user=cast["scribe"], by=cast["bob"])
    post(cast["bob"], channel="cabal", msg_type="edit", relates_to=str(first.pk),
         payload={"payload": {"text": "@scribe the vault code changed"}})
    assert Message.objects.filter(channel__name="inbox.scribe", msg_type="edit").count() == 1


def test_only_the_agents_copies_follow_an_edit_or_a_deletion(cast):
    """A message of the channel that took the id an agent's copy would have (ids are the poster's
    to choose) is not edited or deleted as if it were the copy."""
    import uuid

    first_id = uuid.uuid4()
    squatter = post(cast["bob"], id=str(services.copy_id(first_id, "scribe")), payload={"text": "mine"}).message
    first = post(cast["bob"], id=str(first_id), payload={"text": "@scribe the key is under the mat"}).message
    post(cast["bob"], msg_type="edit", payload={"payload": {"text": "@scribe the plan changed"}},
         relates_to=str(first.pk))
    post(cast["alice"], msg_type="delete", payload={}, relates_to=str(first.pk))
    assert not Message.objects.filter(relates_to=squatter).exists()
    assert Message.objects.get(pk=squatter.pk).payload == {"text": "mine"}


def test_losing_access_hides_the_notification(cast):
    from messaging.models import Channel
    from messaging.services import member_add, member_remove

    cabal = Channel.objects.get(name="cabal")
    member_add(channel=cabal, user=cast["carol"], by=cast["bob"])
    post(cast["bob"], channel="cabal", payload={"text": "@carol secret"})
    assert selectors.unread_count(cast["carol"]) == 1
    member_remove(channel=cabal, user=cast["carol"], by=cast["bob"])
    assert selectors.unread_count(cast["carol"]) == 0 and feed(cast["carol"]) == []
