"""The story bible under concurrency, on PostgreSQL (SQLite serialises writers): N requests released
together. The story's row serialises bible writes, so the same name added at once is one entry
(the others 409), the last places under the entries cap go to exactly that many, and PATCHes with
the same `version` at once are one change (the others 409)."""
import pytest

from bible.models import BibleEntry
from tests.concurrency import at_once, bearer_clients, postgres_race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

N = 8


@pytest.fixture(autouse=True)
def _postgres(settings):
    postgres_race(settings)


@pytest.fixture
def clients(make_user, make_story):
    owner = make_user("owner")
    make_story(owner, slug="tale")
    return bearer_clients([owner], N)


def codes(results):
    return sorted(r.status_code for r in results)


def test_the_same_name_at_once_is_one_entry(clients):
    results, errors = at_once(N, lambda i: clients[i].post(
        "/api/stories/tale/bible", {"kind": "character", "name": "Mara" if i % 2 else "MARA"}, format="json"))
    assert errors == [None] * N
    assert codes(results) == [201] + [409] * (N - 1)
    assert BibleEntry.objects.count() == 1


def test_the_entries_cap_holds_at_once(clients, settings):
    settings.MYTHLINE_BIBLE_MAX_ENTRIES = 3
    results, errors = at_once(N, lambda i: clients[i].post(
        "/api/stories/tale/bible", {"kind": "lore", "name": f"Rule {i}"}, format="json"))
    assert errors == [None] * N
    assert codes(results) == [201] * 3 + [409] * (N - 3)
    assert BibleEntry.objects.count() == 3


def test_patches_with_one_version_at_once_are_one_change(clients):
    assert clients[0].post("/api/stories/tale/bible", {"kind": "lore", "name": "Tide"}, format="json").status_code == 201
    results, errors = at_once(N, lambda i: clients[i].patch(
        "/api/stories/tale/bible/tide", {"description": f"writer {i}", "version": 1}, format="json"))
    assert errors == [None] * N
    assert codes(results) == [200] + [409] * (N - 1)
    [winner] = [r.json() for r in results if r.status_code == 200]
    assert BibleEntry.objects.get().version == 2 == winner["version"]
    assert BibleEntry.objects.get().description == winner["description"]
