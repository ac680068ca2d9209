"""Concurrent outline writes on PostgreSQL: requests released together by a barrier, each on its own
thread and database connection. Every insert, move and delete of a story's outline runs under the
story's row lock, so positions stay 1..N with no duplicate and no gap, and every request answers
(no 500 from the unique (story, position) constraint).

SQLite runs each write transaction as BEGIN IMMEDIATE, so the race cannot happen there: skipped on
SQLite (DATABASE_URL=postgres://... runs it)."""
import pytest

from outline.models import OutlineScene
from tests.concurrency import at_once, bearer_clients, postgres_race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

N = 8
URL = "/api/stories/tale/outline"


@pytest.fixture(autouse=True)
def _postgres(settings):
    postgres_race(settings)


def _positions(story):
    return list(OutlineScene.objects.filter(story=story).order_by("position").values_list("position", flat=True))


@pytest.fixture
def tale(make_user, make_story):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    return story, [alice, bob]


def test_inserts_at_once_at_the_same_place_all_land_in_a_dense_order(tale):
    story, users = tale
    clients = bearer_clients(users, N)
    for t in ("first", "last"):
        assert clients[0].post(URL, {"title": t}, format="json").status_code == 201
    results, errors = at_once(N, lambda i: clients[i].post(URL, {"title": f"new {i}", "position": 2},
                                                           format="json"))
    assert errors == [None] * N
    assert sorted(r.status_code for r in results) == [201] * N, [r.content[:200] for r in results]
    assert _positions(story) == list(range(1, N + 3))
    titles = list(OutlineScene.objects.filter(story=story).order_by("position").values_list("title", flat=True))
    assert titles[0] == "first" and titles[-1] == "last" and sorted(titles[1:-1]) == sorted(f"new {i}"
                                                                                              for i in range(N))


def test_moves_inserts_and_deletes_at_once_keep_positions_dense(tale):
    story, users = tale
    clients = bearer_clients(users, N)
    ids = [clients[0].post(URL, {"title": f"s{i}"}, format="json").json()["id"] for i in range(2 * N)]

    def call(i):
        client = clients[i]
        if i % 3 == 0:
            return client.post(f"{URL}/{ids[i]}/move", {"position": 1 + (i * 7) % N}, format="json")
        if i % 3 == 1:
            return client.post(URL, {"title": f"n{i}", "position": 1 + i % N}, format="json")
        return client.delete(f"{URL}/{ids[i]}")

    results, errors = at_once(N, call)
    assert errors == [None] * N
    assert all(r.status_code in (200, 201, 204) for r in results), [r.content[:200] for r in results]
    created = sum(r.status_code == 201 for r in results)
    deleted = sum(r.status_code == 204 for r in results)
    assert _positions(story) == list(range(1, 2 * N + created - deleted + 1))


def test_the_limit_holds_under_concurrent_inserts(tale, settings):
    settings.MYTHLINE_OUTLINE_MAX_SCENES = 3
    story, users = tale
    clients = bearer_clients(users, N)
    results, errors = at_once(N, lambda i: clients[i].post(URL, {"title": f"t{i}"}, format="json"))
    assert errors == [None] * N
    assert sorted(r.status_code for r in results) == [201] * 3 + [409] * (N - 3)
    assert _positions(story) == [1, 2, 3]
