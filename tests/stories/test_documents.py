"""Co-editing over REST (agents, positions in characters) and the WebSocket (browsers, CodeMirror
change sets in UTF-16 units)."""
import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from stories.changesets import ChangeSet, utf16_len
from stories.documents import document_edit, document_push, text_at
from stories.models import Document, DocumentChange
from tests.conftest import error_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def tale(make_user, make_story, make_agent, api):
    alice, vera = make_user("alice"), make_user("vera")
    story = make_story(alice, slug="tale", viewers=[vera])
    scribe = make_agent("scribe", stories=[story])
    return {"story": story, "alice": api(alice), "vera": api(vera), "scribe": api(scribe),
            "users": {"alice": alice, "scribe": scribe, "vera": vera}}


def ops(client, body, doc="main"):
    return client.post(f"/api/stories/tale/documents/{doc}/ops", body, format="json")


def text(client, doc="main", **params):
    return client.get(f"/api/stories/tale/documents/{doc}", params).json()


def test_every_story_starts_with_main(tale):
    docs = tale["alice"].get("/api/stories/tale/documents").json()["results"]
    assert [(d["name"], d["revision"], d["text"]) for d in docs] == [("main", 0, "")]


def test_append_edits_and_find_replace(tale):
    r = ops(tale["scribe"], {"append": "The lamp 😀 burned."})
    assert r.status_code == 200 and r.json()["revision"] == 1 and r.json()["change"]["author"] == "scribe"
    # characters, not UTF-16 units: "burned" starts at 11 even though the emoji is 2 units
    r = ops(tale["scribe"], {"base_revision": 1, "edits": [{"from": 11, "to": 17, "insert": "flickered"}]})
    assert r.status_code == 200, r.content
    assert text(tale["alice"])["text"] == "The lamp 😀 flickered."
    r = ops(tale["alice"], {"base_revision": 2, "find": "lamp", "replace": "old lamp"})
    assert r.json()["revision"] == 3
    assert text(tale["alice"])["text"] == "The old lamp 😀 flickered."
    assert text(tale["alice"], revision=1)["text"] == "The lamp 😀 burned."
    log = tale["alice"].get("/api/stories/tale/documents/main/ops", {"after": 1}).json()
    assert [c["revision"] for c in log["results"]] == [2, 3] and log["revision"] == 3


def test_stale_edit_is_mapped_through_later_changes(tale):
    ops(tale["alice"], {"append": "Hello world"})
    ops(tale["alice"], {"base_revision": 1, "edits": [{"from": 0, "to": 0, "insert": ">> "}]})  # r2, before it
    r = ops(tale["scribe"], {"base_revision": 1, "edits": [{"from": 6, "to": 11, "insert": "there"}]})  # made at r1
    assert r.status_code == 200 and r.json()["revision"] == 3
    assert text(tale["alice"])["text"] == ">> Hello there"


def test_stale_overlapping_edit_conflicts_and_changes_nothing(tale):
    ops(tale["alice"], {"append": "Hello world"})
    ops(tale["alice"], {"base_revision": 1, "edits": [{"from": 6, "to": 11, "insert": "sea"}]})
    r = ops(tale["scribe"], {"base_revision": 1, "edits": [{"from": 8, "to": 11, "insert": "LD"}]})
    assert r.status_code == 409 and error_code(r) == "conflict"
    assert r.json()["error"]["details"]["revision"] == 2
    assert text(tale["alice"])["text"] == "Hello sea" and DocumentChange.objects.count() == 2


@pytest.mark.parametrize("find,status", [("o", 409), ("zebra", 409)])
def test_find_must_match_exactly_once(tale, find, status):
    ops(tale["alice"], {"append": "foo boo"})
    r = ops(tale["scribe"], {"base_revision": 1, "find": find, "replace": "x"})
    assert r.status_code == status and error_code(r) == "conflict"
    assert r.json()["error"]["details"]["matches"] in (0, 4)
    assert text(tale["alice"])["revision"] == 1


def test_fork_at_a_revision(tale):
    ops(tale["alice"], {"append": "One."})
    ops(tale["alice"], {"append": " Two."})
    r = tale["alice"].post("/api/stories/tale/documents", {"name": "branch", "fork_of": "main", "at_revision": 1},
                           format="json")
    assert r.status_code == 201 and r.json()["forked_from"] == "main" and r.json()["forked_at_revision"] == 1
    assert text(tale["alice"], "branch")["text"] == "One." and text(tale["alice"], "branch")["revision"] == 0
    ops(tale["scribe"], {"append": " Three?"}, doc="branch")
    assert text(tale["alice"], "branch")["text"] == "One. Three?" and text(tale["alice"])["text"] == "One. Two."
    r = tale["alice"].post("/api/stories/tale/documents", {"name": "branch"}, format="json")
    assert r.status_code == 409


@pytest.mark.parametrize("body,status,code", [
    ({"edits": [{"from": 0, "to": 0, "insert": "x"}]}, 400, "invalid"),  # no base_revision
    ({"base_revision": 0, "edits": [{"from": 0, "to": 5, "insert": "x"}]}, 400, "invalid"),  # out of range
    ({"base_revision": 9, "edits": []}, 400, "invalid"),
    ({"base_revision": 0, "edits": "nope"}, 400, "invalid"),
    ({"append": ""}, 400, "invalid"),
    ({"append": 5}, 400, "invalid"),
    ({"append": "a", "find": "b"}, 400, "invalid"),
    ({"append": "a", "colour": "red"}, 400, "invalid"),
    ({}, 400, "invalid"),
    ({"append": "x" * 70000}, 413, "payload_too_large"),
])
def test_bad_rest_edits(tale, body, status, code):
    r = ops(tale["scribe"], body)
    assert r.status_code == status and error_code(r) == code, r.content
    assert Document.objects.get(name="main").revision == 0 and not DocumentChange.objects.exists()


def test_viewers_read_but_do_not_edit_and_unknown_documents_404(tale):
    assert tale["vera"].get("/api/stories/tale/documents/main").status_code == 200
    r = ops(tale["vera"], {"append": "mine"})
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert ops(tale["alice"], {"append": "x"}, doc="nope").status_code == 404
    assert tale["alice"].get("/api/stories/tale/documents/nope").status_code == 404


def test_export_carries_each_documents_history(tale):
    ops(tale["scribe"], {"append": "Once."})
    export = json.loads(b"".join(tale["alice"].get("/api/stories/tale/export").streaming_content))
    [main] = export["documents"]
    assert main["text"] == "Once." and [(c["revision"], c["author"]) for c in main["changes"]] == [(1, "scribe")]


# --- the browser protocol (service level) ---------------------------------------------------------

def test_push_at_current_revision_and_conflict_when_stale(tale):
    alice = tale["users"]["alice"]
    doc = Document.objects.get(name="main")
    document_push(doc=doc, author=alice, revision=0, changes=[[0, "ab😀"]], client_id="c1")
    assert Document.objects.get(pk=doc.pk).text == "ab😀"
    from mythline_site.errors import Conflict, Invalid
    with pytest.raises(Conflict) as stale:
        document_push(doc=doc, author=alice, revision=0, changes=[[0, "x"], 4], client_id="c2")
    assert stale.value.details == {"revision": 1}
    for bad in ([5, [0, "x"]], [[0, "x"]], "nope", [2, [1, "x"], 1], [-1]):  # lengths must match 4 units
        with pytest.raises(Invalid):
            document_push(doc=doc, author=alice, revision=1, changes=bad)
    with pytest.raises(Invalid):  # a change that splits the emoji's surrogate pair
        document_push(doc=doc, author=alice, revision=1, changes=[3, [1]])
    assert Document.objects.get(pk=doc.pk).revision == 1


# Storable text: no NUL (refused, see below) and no lone surrogates (not Unicode text; refused too).
storable = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
edit_ops = st.lists(st.tuples(st.sampled_from(["append", "edit", "push"]), storable,
                              st.integers(0, 40), st.integers(0, 5)), min_size=1, max_size=25)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edit_ops)
def test_text_rebuilt_from_the_log_equals_the_stored_text(tale, steps):
    """Any mix of browser pushes and agent edits: every revision rebuilds from the log."""
    alice = tale["users"]["alice"]
    doc = Document.objects.create(story=tale["story"], name=f"p{Document.objects.count()}", created_by=alice)
    seen = {0: ""}
    for kind, insert, at, length in steps:
        doc.refresh_from_db()
        current = doc.text
        if kind == "append" and insert:
            document_edit(doc=doc, author=alice, body={"append": insert})
        elif kind == "edit":
            start = min(at, len(current))
            document_edit(doc=doc, author=alice, body={"base_revision": doc.revision, "edits": [
                {"from": start, "to": min(len(current), start + length), "insert": insert}]})
        else:
            start = min(at, len(current))
            units = utf16_len(current[:start])
            span = utf16_len(current[start:start + length])
            cs = ChangeSet.of([(units, units + span, insert)], utf16_len(current))
            document_push(doc=doc, author=alice, revision=doc.revision, changes=cs.to_json())
        doc.refresh_from_db()
        seen[doc.revision] = doc.text
    for revision, expected in seen.items():
        assert text_at(doc, revision) == expected


# --- the browser protocol over the socket ---------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_doc_frames_over_the_socket(tale):
    from tests.messaging.test_consumers import Client

    from accounts.services import token_issue
    for user in tale["users"].values():
        user.test_token = token_issue(user=user)
    alice, scribe, vera = (tale["users"][n] for n in ("alice", "scribe", "vera"))

    async def go():
        async with Client(alice) as a, Client(scribe) as s, Client(vera) as v:
            for c in (a, s, v):
                await c.recv()
                sub = await c.request(type="subscribe", topic="doc:tale/main")
                assert sub["type"] == "subscribed" and sub["revision"] == 0
                assert await c.until("doc.state") == {"type": "doc.state", "topic": "doc:tale/main", "revision": 0,
                                                      "text": "", "max_insert_chars": 65536, "max_chars": 2_000_000,
                                                      "max_changes": 10_000}
            await a.send(type="doc.push", topic="doc:tale/main", revision=0, changes=[[0, "Hi"]], client_id="A")
            for c in (a, s, v):  # everyone, the sender included
                change = await c.until("doc.change")
                assert change["revision"] == 1 and change["changes"] == [[0, "Hi"]]
                assert change["client_id"] == "A" and change["author"] == "alice"
            stale = await s.request(type="doc.push", topic="doc:tale/main", revision=0, changes=[[0, "X"]],
                                    client_id="S")
            assert stale["type"] == "error" and stale["code"] == "conflict" and stale["revision"] == 1
            pulled = await s.request(type="doc.pull", topic="doc:tale/main", after=0)
            assert [c["revision"] for c in pulled["changes"]] == [1]
            denied = await v.request(type="doc.push", topic="doc:tale/main", revision=1, changes=[2, [0, "!"]])
            assert denied["code"] == "forbidden"
            await a.send(type="cursor", topic="doc:tale/main", anchor=1, head=2)
            cursor = await s.until("cursor")
            assert cursor["user"]["username"] == "alice" and (cursor["anchor"], cursor["head"]) == (1, 2)
            assert cursor["revision"] == 1
            # an agent's REST edit reaches the sockets as a doc.change too
            await database_sync_to_async(document_edit)(doc=await database_sync_to_async(Document.objects.get)(
                name="main"), author=scribe, body={"append": "!"})
            assert (await v.until("doc.change"))["revision"] == 2
    try:
        asyncio.run(go())
    finally:
        close_old_connections()


def test_find_counts_overlapping_matches_as_ambiguous(tale):
    ops(tale["alice"], {"append": "aaa"})
    r = ops(tale["scribe"], {"base_revision": 1, "find": "aa", "replace": "b"})
    assert r.status_code == 409 and r.json()["error"]["details"]["matches"] == 2


def test_documents_keep_plain_newlines(tale):
    r = tale["alice"].post("/api/stories/tale/documents", {"name": "notes", "text": "a\r\nb\rc"}, format="json")
    assert r.status_code == 201 and r.json()["text"] == "a\nb\nc"


def test_nul_characters_are_refused_everywhere(tale):
    """No database stores NUL in text (PostgreSQL refuses it): 400, nothing applied."""
    for body in ({"append": "a\x00b"}, {"base_revision": 0, "edits": [{"from": 0, "to": 0, "insert": "\x00"}]}):
        r = ops(tale["scribe"], body)
        assert r.status_code == 400 and error_code(r) == "invalid", body
    from mythline_site.errors import Invalid
    with pytest.raises(Invalid):
        document_push(doc=Document.objects.get(name="main"), author=tale["users"]["alice"], revision=0,
                      changes=[[0, "x\x00"]])
    r = tale["alice"].post("/api/stories/tale/documents", {"name": "nul", "text": "a\x00"}, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid"
    assert Document.objects.get(name="main").revision == 0 and not Document.objects.filter(name="nul").exists()
