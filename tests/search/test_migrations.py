"""The migrations: messages stored before search existed are indexed by 0002, on either database,
and 0001 undoes cleanly (its full-text index with it)."""
import pytest
from django.core.management import call_command
from django.db import connection

from search.models import MessageText
from tests.search.conftest import post

pytestmark = pytest.mark.django_db(transaction=True)


def test_messages_stored_before_search_are_indexed_by_the_migration(make_user, make_story, api):
    alice = make_user("alice")
    make_story(alice, slug="tale")
    first = post(alice, "tale", "general", payload={"text": "an old lighthouse"})
    post(alice, "tale", "general", msg_type="dialogue", payload={"character": "Mara", "line": "old words"})
    call_command("migrate", "search", "zero", verbosity=0)  # as before the app existed: no index at all
    try:
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        assert not [t for t in tables if t.startswith("search_")]
    finally:
        call_command("migrate", "search", verbosity=0)
    assert MessageText.objects.count() == 2
    assert len(api(alice).get("/api/search", {"q": "old"}).json()["results"]) == 2
    assert [r["message"]["id"] for r in api(alice).get("/api/search", {"q": "lighthouse"}).json()["results"]] == \
        [str(first.pk)]
    later = post(alice, "tale", "general", payload={"text": "a new lighthouse"})  # and new posts as ever
    assert len(api(alice).get("/api/search", {"q": "lighthouse"}).json()["results"]) == 2
    assert MessageText.objects.filter(message=later).exists()


def test_on_postgres_0003_folds_diacritics_with_unaccent_kept_in_a_schema_of_its_own(make_user, make_story, api):
    """Some hosts keep extensions off the search_path (a schema `extensions`): 0003 finds the
    `unaccent` dictionary there. Undone and done again, the index folds diacritics as before."""
    if connection.vendor != "postgresql":
        pytest.skip("the unaccent configuration is PostgreSQL's (SQLite's FTS5 folds diacritics itself)")
    alice = make_user("alice")
    make_story(alice, slug="tale")
    cafe = post(alice, "tale", "general", payload={"text": "the café2 on the quay"})
    call_command("migrate", "search", "0002", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA IF NOT EXISTS extensions")
        cursor.execute("ALTER EXTENSION unaccent SET SCHEMA extensions")
    try:
        assert api(alice).get("/api/search", {"q": "cafe2"}).json()["results"] == []  # `simple`: kept
        call_command("migrate", "search", verbosity=0)
        [found] = api(alice).get("/api/search", {"q": "cafe2"}).json()["results"]
        assert found["message"]["id"] == str(cafe.pk) and "<mark>café2</mark>" in found["highlight"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER EXTENSION unaccent SET SCHEMA public")
        call_command("migrate", "search", "0002", verbosity=0)  # the configuration follows the dictionary
        call_command("migrate", "search", verbosity=0)
    [found] = api(alice).get("/api/search", {"q": "cafe2"}).json()["results"]
    assert found["message"]["id"] == str(cafe.pk)
