"""One reaction per key, user and message, and one deletion per message, under N posts at once on
PostgreSQL: the check runs under the channel's row lock (after the seq is taken), so exactly one
is stored, the others answer it (`created: false`), and the seqs stay gapless. Needs
DATABASE_URL=postgres://... (skipped on SQLite, where writers are serialised)."""
import pytest

from messaging.models import Message
from messaging.policies import access_channel
from messaging.services import message_post
from tests.concurrency import at_once, postgres_race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
N = 8


def test_n_identical_reactions_and_deletions_at_once_store_one_each(make_user, make_story, settings):
    postgres_race(settings)
    alice, bob = make_user("alice"), make_user("bob")
    make_story(alice, slug="tale", editors=[bob])

    def post(user, body):
        return message_post(sender=user, access=access_channel(user, "tale", "general", for_write=True), data=body)

    target = post(bob, {"msg_type": "text", "payload": {"text": "Night fell."}}).message
    reaction = {"msg_type": "reaction", "payload": {"key": "🔥"}, "relates_to": str(target.pk)}
    results, errors = at_once(N, lambda i: post(alice, reaction))
    assert errors == [None] * N
    assert sorted(r.created for r in results) == [False] * (N - 1) + [True]
    assert len({r.message.pk for r in results}) == 1
    deletion = {"msg_type": "delete", "payload": {}, "relates_to": str(target.pk)}
    results, errors = at_once(N, lambda i: post(alice if i % 2 else bob, deletion))
    assert errors == [None] * N
    assert sum(r.created for r in results) == 1 and len({r.message.pk for r in results}) == 1
    assert list(Message.objects.filter(channel=target.channel).order_by("seq").values_list("seq", flat=True)) \
        == [1, 2, 3]
