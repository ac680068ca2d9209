"""An agent's inbox is created on first need (`inbox_ensure`: joining, a route). N callers at once
on PostgreSQL used to all find none and insert: every loser hit the unique channel name and
failed with IntegrityError (a 500). Now each gets the one inbox. Needs DATABASE_URL=postgres://...
(skipped on SQLite, where writers are serialised; CI runs it on Postgres)."""
import pytest
from django.db import transaction

from messaging.models import Channel, Membership
from messaging.services import inbox_ensure
from tests.concurrency import at_once
from tests.stories.test_create_races import N, _postgres  # noqa: F401 - _postgres is autouse

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_n_callers_ensuring_one_inbox_at_once_get_the_same_one(make_user, make_story, make_agent):
    story = make_story(make_user("alice"), slug="tale")
    narrator = make_agent("narrator")  # of no story yet: no inbox

    def ensure(i):
        with transaction.atomic():  # as its callers (participant_add, message_route) hold one
            return inbox_ensure(story=story, agent=narrator).pk

    results, errors = at_once(N, ensure)
    assert errors == [None] * N
    inbox = Channel.objects.get(story=story, name="inbox.narrator")
    assert results == [inbox.pk] * N
    assert (inbox.kind, inbox.inbox_agent_id) == (Channel.Kind.INBOX, narrator.pk)
    assert list(Membership.objects.filter(channel=inbox).values_list("user_id", "role")) \
        == [(narrator.pk, Membership.Role.OWNER)]
