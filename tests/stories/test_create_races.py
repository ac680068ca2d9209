"""Get-or-create under concurrency, on PostgreSQL: N requests released together by a barrier, each
on its own thread and database connection. Joining a story twice at once (a double click, two
tabs) and an owner adding the same user twice at once used to select, find nothing, and insert:
the loser hit the unique constraint and answered 500. Now every request answers and exactly one
row exists.

SQLite runs each write transaction as BEGIN IMMEDIATE, so the race cannot happen there: these
tests need DATABASE_URL=postgres://... (skipped on SQLite, where writers are serialised; CI runs them on Postgres).
"""
import pytest

from messaging.models import Channel, Membership
from stories.models import Participant
from tests.concurrency import at_once, bearer_clients, postgres_race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

N = 8


@pytest.fixture(autouse=True)
def _postgres(settings):
    postgres_race(settings)


def _answers(results):
    return sorted(r.status_code for r in results)


def test_joining_a_story_n_times_at_once_answers_each_and_adds_one_participant(make_user, make_story):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale")
    clients = bearer_clients([bob], N)
    results, errors = at_once(N, lambda i: clients[i].post("/api/stories/tale/join", format="json"))
    assert errors == [None] * N
    assert _answers(results) == [200] * (N - 1) + [201], [r.content[:200] for r in results]
    assert {r.json()["role"] for r in results} == {"editor"}
    assert Participant.objects.filter(story=story, user=bob).count() == 1
    room = Channel.objects.get(story=story, name="room")
    assert Membership.objects.filter(channel=room, user=bob).count() == 1


def test_an_owner_adding_one_user_n_times_at_once_adds_one_participant(make_user, make_story):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale")
    clients = bearer_clients([alice], N)
    results, errors = at_once(N, lambda i: clients[i].post(
        "/api/stories/tale/participants", {"username": "bob", "role": "viewer"}, format="json"))
    assert errors == [None] * N
    assert _answers(results) == [200] * (N - 1) + [201], [r.content[:200] for r in results]
    assert {(r.json()["username"], r.json()["role"]) for r in results} == {("bob", "viewer")}
    assert Participant.objects.filter(story=story, user=bob).count() == 1


def test_adding_an_agent_n_times_at_once_gives_it_one_participant_and_one_inbox(make_user, make_story,
                                                                                make_agent):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    make_agent("narrator")
    clients = bearer_clients([alice], N)
    results, errors = at_once(N, lambda i: clients[i].post(
        "/api/stories/tale/participants", {"username": "narrator", "role": "editor"}, format="json"))
    assert errors == [None] * N
    assert _answers(results) == [200] * (N - 1) + [201], [r.content[:200] for r in results]
    assert Participant.objects.filter(story=story, user__username="narrator").count() == 1
    assert Channel.objects.filter(story=story, name="inbox.narrator").count() == 1


def test_a_join_racing_an_owners_add_keeps_one_row_with_the_owners_role(make_user, make_story):
    """Joining keeps the role of a participant already in; the owner's add sets one. Whichever
    runs first, one row, and the role is the owner's (join then add, or add then join: viewer)."""
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale")
    owner, joiner = bearer_clients([alice, bob], 2)

    def call(i):
        if i % 2:
            return joiner.post("/api/stories/tale/join", format="json")
        return owner.post("/api/stories/tale/participants", {"username": "bob", "role": "viewer"},
                          format="json")

    results, errors = at_once(2, call)
    assert errors == [None, None]
    assert all(r.status_code in (200, 201) for r in results), [r.content[:200] for r in results]
    assert Participant.objects.filter(story=story, user=bob).count() == 1
    assert Participant.objects.get(story=story, user=bob).role == "viewer"
