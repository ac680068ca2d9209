"""One batch's scope (messaging.scope.BatchScope): what a batch's writes collect is handed over once,
on the way out, in order; nothing when the block raised; and nothing of what was added inside a
savepoint that rolled back, as Django drops an on_commit hook registered there."""
import pytest
from django.db import transaction

from messaging.models import Channel
from messaging.policies import access_channel
from messaging.scope import BatchScope
from messaging.services import inbox_ensure, message_post
from webhooks import services as webhooks
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


def scope_and_flushes():
    flushed = []
    return BatchScope("test_scope", flushed.append), flushed


def test_entries_are_handed_over_once_in_order_by_the_outermost_block():
    scope, flushed = scope_and_flushes()
    assert scope.add("outside") is False and scope.state() is None
    with transaction.atomic(), scope.open():
        scope.add("a")
        with scope.open():  # nested: the outer block flushes
            scope.add("b")
            scope.state()["seen"] = 1
        assert flushed == []
        assert scope.state() == {"seen": 1}
        scope.add("c")
    assert flushed == [["a", "b", "c"]]
    assert scope.state() is None and scope.add("after") is False


def test_a_block_that_raised_hands_nothing_over():
    scope, flushed = scope_and_flushes()
    with pytest.raises(ZeroDivisionError), transaction.atomic(), scope.open():
        scope.add("a")
        1 / 0
    assert flushed == [] and scope.state() is None


def test_what_was_added_in_a_savepoint_that_rolled_back_is_dropped():
    scope, flushed = scope_and_flushes()
    with transaction.atomic(), scope.open():
        scope.add("before")
        with transaction.atomic():  # a savepoint, released: its entries stand
            scope.add("kept")
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            scope.add("rolled back")
            with transaction.atomic():
                scope.add("inside the rolled-back one")
            1 / 0
        with transaction.atomic():
            scope.add("rolled back by set_rollback")
            transaction.set_rollback(True)
        scope.add("after")
    assert flushed == [["before", "kept", "after"]]


def test_a_delivery_made_in_a_savepoint_that_rolled_back_is_not_inserted(make_user, make_agent, make_story, settings):
    """webhooks.one_batch through BatchScope: of two inbox posts in one batch block, the one whose
    savepoint rolled back leaves no delivery (a Delivery for a message that is not stored would
    fail the batch's COMMIT)."""
    settings.MYTHLINE_WEBHOOK_ALLOW_INSECURE = settings.MYTHLINE_WEBHOOK_ALLOW_PRIVATE = True
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    scout = make_agent("scout", stories=[story])
    webhooks.webhook_set(agent=scout, url="http://127.0.0.1:9/hook")  # never called: deliveries stay pending
    inbox = inbox_ensure(story=story, agent=scout)
    access = access_channel(alice, story.slug, inbox.name, for_write=True)

    def post(text):
        return message_post(sender=alice, access=access, data={"msg_type": "text", "payload": {"text": text}}).message

    with transaction.atomic(), webhooks.one_batch():
        kept = post("Look north.")
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            post("Then east.")
            1 / 0
        assert not Delivery.objects.exists()  # inserted on the way out, together
    assert list(Delivery.objects.values_list("message_id", flat=True)) == [kept.pk]
    assert Channel.objects.get(pk=inbox.pk).messages.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_scope_opens_only_inside_a_transaction():
    """Outside one, a commit or a rollback inside the block would settle what its entries depend on
    before they are handed over (a committed entry dropped, a rolled-back one kept)."""
    from django.db.transaction import TransactionManagementError

    scope, flushed = scope_and_flushes()
    with pytest.raises(TransactionManagementError), scope.open():
        pass
    assert flushed == []


@pytest.mark.django_db(transaction=True)
def test_in_the_outermost_transaction_as_a_request_runs_it():
    """A request's batch opens the scope in the outermost transaction: its own entries carry no
    marker (nothing rolls them back alone), those of a savepoint inside do."""
    scope, flushed = scope_and_flushes()
    with transaction.atomic(), scope.open():
        scope.add("the batch's")
        with transaction.atomic():
            scope.add("a released savepoint's")
        with transaction.atomic():
            scope.add("a rolled-back savepoint's")
            transaction.set_rollback(True)
        scope.add("the batch's again")
    assert flushed == [["the batch's", "a released savepoint's", "the batch's again"]]
