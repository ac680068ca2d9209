"""Refusing stale browser pushes cheaply (SPEC 9: `conflict` with the current revision, never a
rebase on the server): from what the process saw committed, then from a plain read, and only
then under the row lock; with every check of the full path still applied."""
import asyncio

import pytest
from django.db import close_old_connections

from mythline_site.errors import Conflict, Forbidden, Invalid
from stories.documents import committed_revision, document_edit, document_push
from stories.models import Document, DocumentChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, vera = make_user("alice"), make_user("vera")
    story = make_story(alice, slug="tale", viewers=[vera])
    scribe = make_agent("scribe", stories=[story])
    return {"story": story, "users": {"alice": alice, "scribe": scribe, "vera": vera}}


def test_a_push_older_than_a_revision_seen_committed_is_refused_without_a_query(
        tale, django_capture_on_commit_callbacks, django_assert_num_queries):
    alice = tale["users"]["alice"]
    doc = Document.objects.get(name="main")
    with django_capture_on_commit_callbacks(execute=True):
        document_push(doc=doc, author=alice, revision=0, changes=[[0, "ab"]], client_id="c1")
    assert committed_revision(doc) == 1
    with django_assert_num_queries(0), pytest.raises(Conflict) as stale:
        document_push(doc=doc, author=alice, revision=0, changes=[[0, "x"], 2], client_id="c2")
    assert stale.value.details == {"revision": 1}
    # The arguments are still checked first.
    with django_assert_num_queries(0), pytest.raises(Invalid):
        document_push(doc=doc, author=alice, revision="0", changes=[[0, "x"], 2])
    with django_assert_num_queries(0), pytest.raises(Invalid):
        document_push(doc=doc, author=alice, revision=0, changes=[[0, "x"], 2], client_id="c" * 65)
    assert Document.objects.get(pk=doc.pk).text == "ab"
    assert DocumentChange.objects.filter(document=doc).count() == 1


def test_a_stale_push_unknown_to_the_process_is_refused_by_one_read_without_a_write_transaction(
        tale, django_assert_num_queries):
    alice, scribe = tale["users"]["alice"], tale["users"]["scribe"]
    doc = Document.objects.get(name="main")
    # Committed elsewhere (as by another process: this test's transaction never commits, so
    # nothing here learns of it but the database).
    document_edit(doc=doc, author=scribe, body={"append": "Hi"})
    assert committed_revision(doc) == 0
    with django_assert_num_queries(1) as queries, pytest.raises(Conflict) as stale:
        document_push(doc=doc, author=alice, revision=0, changes=[[0, "x"]], client_id="c")
    assert stale.value.details == {"revision": 1}
    assert "SAVEPOINT" not in queries.captured_queries[0]["sql"] and "UPDATE" not in queries.captured_queries[0]["sql"]
    # At the current revision it goes through the row lock as before.
    change = document_push(doc=doc, author=alice, revision=1, changes=[2, [0, "!"]], client_id="c")
    assert change.revision == 2 and Document.objects.get(pk=doc.pk).text == "Hi!"


@pytest.mark.django_db(transaction=True)
def test_stale_pushes_refused_early_still_pass_the_role_check_and_the_rate_limit(tale, settings):
    from tests.messaging.test_consumers import Client

    from accounts.services import token_issue
    for user in tale["users"].values():
        user.test_token = token_issue(user=user)
    alice, scribe, vera = (tale["users"][n] for n in ("alice", "scribe", "vera"))
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("1/m", 3)}  # 4 pushes, then 429

    async def go():
        async with Client(alice) as a, Client(scribe) as s, Client(vera) as v:
            for c in (a, s, v):
                await c.recv()
                await c.request(type="subscribe", topic="doc:tale/main")
                await c.until("doc.state")
            await a.send(type="doc.push", topic="doc:tale/main", revision=0, changes=[[0, "Hi"]], client_id="A")
            for c in (a, s, v):
                assert (await c.until("doc.change"))["revision"] == 1
            # A viewer is refused as a viewer, stale or not.
            denied = await v.request(type="doc.push", topic="doc:tale/main", revision=0, changes=[[0, "X"]])
            assert denied["code"] == "forbidden"
            # A malformed stale push is invalid, not a conflict.
            bad = await s.request(type="doc.push", topic="doc:tale/main", revision=0, changes=[[0, "X"]],
                                  client_id=7)
            assert bad["code"] == "invalid"
            # Stale pushes count against the sender's budget like any other.
            codes = []
            for _ in range(5):
                reply = await s.request(type="doc.push", topic="doc:tale/main", revision=0, changes=[[0, "X"]],
                                        client_id="S")
                codes.append(reply["code"])
                if reply["code"] == "conflict":
                    assert reply["revision"] == 1 and reply["topic"] == "doc:tale/main"
            assert codes[0] == "conflict" and codes[-1] == "rate_limited", codes
    try:
        asyncio.run(go())
    finally:
        close_old_connections()
    doc = Document.objects.get(name="main")
    assert (doc.revision, doc.text) == (1, "Hi")


def test_where_agents_suggest_an_agents_push_is_refused_and_a_persons_goes_through(tale):
    story = tale["story"]
    story.agents_suggest = True
    story.save()
    doc = Document.objects.get(name="main")
    with pytest.raises(Forbidden) as refused:
        document_push(doc=doc, author=tale["users"]["scribe"], revision=0, changes=[[0, "x"]], client_id="a")
    assert "suggest" in refused.value.message
    assert document_push(doc=doc, author=tale["users"]["alice"], revision=0, changes=[[0, "ok"]]).revision == 1
    assert Document.objects.get(pk=doc.pk).text == "ok"
