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
