"""The cost of co-editing is bounded (issue 14): edits per request and per push, how far behind a
REST edit's base may be (mapped before the row lock, only what landed meanwhile under it), old
revisions rebuilt from a snapshot replaying fewer than MYTHLINE_DOC_SNAPSHOT_EVERY changes,
documents and forks per story, and `Idempotency-Key` on document edits."""
import asyncio

import pytest
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from mythline_site.errors import PayloadTooLarge
from stories import changesets, documents
from stories.changesets import ChangeSet, replay, shift_ranges, utf16_len
from stories.documents import document_edit, document_push, rebuild
from stories.models import Document, DocumentChange, DocumentSnapshot
from tests.conftest import error_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def tale(make_user, make_story, make_agent, api):
    alice, vera = make_user("alice"), make_user("vera")
    story = make_story(alice, slug="tale", viewers=[vera])
    scribe = make_agent("scribe", stories=[story])
    return {"story": story, "alice": api(alice), "scribe": api(scribe),
            "users": {"alice": alice, "scribe": scribe, "vera": vera}}


def ops(client, body, doc="main", key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(f"/api/stories/tale/documents/{doc}/ops", body, format="json", **headers)


def stored(doc="main"):
    d = Document.objects.get(name=doc)
    return d.revision, d.text, DocumentChange.objects.filter(document=d).count()


def appended(client, *parts):
    for part in parts:
        assert ops(client, {"append": part}).status_code == 200


# --- edits per request and per push -------------------------------------------------------------

def test_a_rest_edit_with_more_edits_than_the_cap_is_refused_and_changes_nothing(tale, settings):
    settings.MYTHLINE_DOC_MAX_EDITS = 3
    appended(tale["alice"], "abcdef")
    before = stored()
    edits = [{"from": i, "to": i, "insert": "x"} for i in range(4)]
    r = ops(tale["scribe"], {"base_revision": 1, "edits": edits})
    assert r.status_code == 413 and error_code(r) == "payload_too_large"
    assert r.json()["error"]["details"] == {"edits": 4, "max_edits": 3}
    assert stored() == before
    r = ops(tale["scribe"], {"base_revision": 1, "edits": edits[:3]})  # at the cap
    assert r.status_code == 200 and stored()[1] == "xaxbxcdef"


def test_a_push_changing_more_ranges_than_the_cap_is_refused_and_changes_nothing(tale, settings):
    settings.MYTHLINE_DOC_MAX_PUSH_CHANGES = 2
    alice = tale["users"]["alice"]
    doc = Document.objects.get(name="main")
    document_push(doc=doc, author=alice, revision=0, changes=[[0, "abcd"]])
    before = stored()
    with pytest.raises(PayloadTooLarge) as refused:
        document_push(doc=doc, author=alice, revision=1, changes=[[0, "x"], 1, [0, "y"], 1, [0, "z"], 2])
    assert refused.value.details == {"changes": 3, "max_changes": 2}
    assert stored() == before
    document_push(doc=doc, author=alice, revision=1, changes=[[0, "x"], 1, [0, "y"], 3])
    assert stored()[1] == "xaybcd"


@pytest.mark.django_db(transaction=True)
def test_the_push_cap_over_the_socket(tale, settings):
    from tests.messaging.test_consumers import Client

    from accounts.services import token_issue
    settings.MYTHLINE_DOC_MAX_PUSH_CHANGES = 2
    alice = tale["users"]["alice"]
    alice.test_token = token_issue(user=alice)

    async def go():
        async with Client(alice) as a:
            await a.recv()
            await a.request(type="subscribe", topic="doc:tale/main")
            assert (await a.until("doc.state"))["max_changes"] == 2  # the editor splits by it
            refused = await a.request(type="doc.push", topic="doc:tale/main", revision=0, client_id="A",
                                      changes=[[0, "x"], [0, "y"], [0, "z"]])
            assert refused["type"] == "error" and refused["code"] == "payload_too_large"
            await a.send(type="doc.push", topic="doc:tale/main", revision=0, changes=[[0, "ok"]], client_id="A")
            assert (await a.until("doc.change"))["revision"] == 1
    try:
        asyncio.run(go())
    finally:
        close_old_connections()
    assert stored() == (1, "ok", 1)


# --- how far behind a REST edit may be ------------------------------------------------------------

def test_an_edit_made_too_many_revisions_ago_is_a_conflict_naming_the_current_revision(tale, settings):
    settings.MYTHLINE_DOC_MAX_LAG = 3
    appended(tale["alice"], "a", "b", "c", "d", "e")  # revision 5
    before = stored()
    r = ops(tale["scribe"], {"base_revision": 1, "edits": [{"from": 0, "to": 0, "insert": ">"}]})
    assert r.status_code == 409 and error_code(r) == "conflict"
    details = r.json()["error"]["details"]
    assert details == {"revision": 5, "current_revision": 5, "base_revision": 1, "max_lag": 3}
    assert stored() == before
    r = ops(tale["scribe"], {"base_revision": 2, "edits": [{"from": 0, "to": 0, "insert": ">"}]})  # 3 behind
    assert r.status_code == 200 and stored()[1] == ">abcde"


def test_a_stale_edit_is_mapped_before_the_lock_and_only_what_landed_meanwhile_under_it(tale, monkeypatch):
    """The mapping through the changes since the base happens before the row lock (on SQLite the
    site-wide write lock); under it only the revisions committed in between are mapped."""
    alice, scribe = tale["users"]["alice"], tale["users"]["scribe"]
    appended(tale["alice"], "Hello world")
    for _ in range(5):  # revisions 2..6, all before the edited range
        doc = Document.objects.get(name="main")
        document_push(doc=doc, author=alice, revision=doc.revision, changes=[[0, "."], utf16_len(doc.text)])
    mapped, locked = [], []
    real_map, real_locked = documents._map_through, documents._locked

    def spy_map(doc_id, edits, length, after, upto, current):
        mapped.append((after, upto, bool(locked)))
        return real_map(doc_id, edits, length, after, upto, current)

    def racing_lock(doc):
        if not locked:  # a push lands between the mapping and the lock
            locked.append("push")
            current = Document.objects.get(pk=doc.pk)
            document_push(doc=current, author=alice, revision=current.revision,
                          changes=[[0, "!"], utf16_len(current.text)])
            return real_locked(doc)
        locked.append("edit")
        return real_locked(doc)

    monkeypatch.setattr(documents, "_map_through", spy_map)
    monkeypatch.setattr(documents, "_locked", racing_lock)
    change = document_edit(doc=Document.objects.get(name="main"), author=scribe,
                           body={"base_revision": 1, "edits": [{"from": 6, "to": 11, "insert": "there"}]})
    assert change.revision == 8
    assert mapped == [(1, 6, False), (6, 7, True)]
    assert stored()[1] == "!.....Hello there"


# --- old revisions: snapshots, bounded replay -----------------------------------------------------

storable = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=5)
steps_strategy = st.lists(st.tuples(st.sampled_from(["append", "edit", "stale", "push"]), storable,
                                    st.integers(0, 30), st.integers(0, 4), st.integers(0, 3)),
                          min_size=1, max_size=30)


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 6), storable, steps_strategy)
def test_any_old_revision_rebuilds_exactly_replaying_fewer_changes_than_the_snapshot_interval(
        tale, settings, every, initial, steps):
    settings.MYTHLINE_DOC_SNAPSHOT_EVERY = every
    settings.MYTHLINE_STORY_MAX_DOCUMENTS = 10_000
    alice = tale["users"]["alice"]
    doc = documents.document_create(story=tale["story"], creator=alice, name=f"p{Document.objects.count()}",
                                    text=initial)
    seen = {0: initial}
    for kind, insert, at, length, back in steps:
        doc.refresh_from_db()
        current = doc.text
        if kind == "append" and insert:
            document_edit(doc=doc, author=alice, body={"append": insert})
        elif kind in ("edit", "stale"):
            base = max(0, doc.revision - back) if kind == "stale" else doc.revision
            old = seen[base]
            start = min(at, len(old))
            try:
                document_edit(doc=doc, author=alice, body={"base_revision": base, "edits": [
                    {"from": start, "to": min(len(old), start + length), "insert": insert}]})
            except documents.Conflict:
                pass  # touched by a later change: nothing applied
        else:
            start = min(at, len(current))
            units = utf16_len(current[:start])
            span = utf16_len(current[start:start + length])
            cs = ChangeSet.of([(units, units + span, insert)], utf16_len(current))
            document_push(doc=doc, author=alice, revision=doc.revision, changes=cs.to_json())
        doc.refresh_from_db()
        seen[doc.revision] = doc.text
    for revision, expected in seen.items():
        text, replayed = rebuild(doc, revision)
        assert text == expected
        assert replayed == (0 if revision == doc.revision else revision % every) < every


def test_get_an_old_revision_replays_from_the_nearest_snapshot(tale, settings, django_assert_max_num_queries):
    settings.MYTHLINE_DOC_SNAPSHOT_EVERY = 4
    appended(tale["alice"], *"abcdefghij")  # revisions 1..10; snapshots at 4 and 8
    doc = Document.objects.get(name="main")
    assert sorted(DocumentSnapshot.objects.filter(document=doc).values_list("revision", flat=True)) == [4, 8]
    assert rebuild(doc, 7) == ("abcdefg", 3) and rebuild(doc, 8) == ("abcdefgh", 0)
    assert rebuild(doc, 3) == ("abc", 3)  # `main` starts empty, without a snapshot
    for revision, expected in ((9, "abcdefghi"), (10, "abcdefghij"), (0, "")):
        r = tale["alice"].get("/api/stories/tale/documents/main", {"revision": revision})
        assert r.status_code == 200 and (r.json()["text"], r.json()["revision"]) == (expected, revision)
    r = tale["alice"].get("/api/stories/tale/documents/main", {"revision": 11})
    assert r.status_code == 400 and error_code(r) == "invalid"


def test_a_fork_stores_its_text_once_until_it_is_edited(tale):
    appended(tale["alice"], "One.", " Two.")
    r = tale["alice"].post("/api/stories/tale/documents", {"name": "branch", "fork_of": "main", "at_revision": 1},
                           format="json")
    assert r.status_code == 201
    fork = Document.objects.get(name="branch")
    assert not DocumentSnapshot.objects.filter(document=fork).exists()
    appended_fork = ops(tale["scribe"], {"append": " Three?"}, doc="branch")
    assert appended_fork.status_code == 200
    assert list(DocumentSnapshot.objects.filter(document=fork).values_list("revision", "text")) == [(0, "One.")]
    assert tale["alice"].get("/api/stories/tale/documents/branch", {"revision": 0}).json()["text"] == "One."


@hsettings(max_examples=60, deadline=None)
@given(st.data())
def test_replay_composes_to_the_same_text_as_applying_one_by_one(data):
    text = data.draw(st.text(alphabet="ab\n😀", max_size=12))
    flush = data.draw(st.sampled_from([1, 2, 3, 4096]))
    expected, jsons = text, []
    for _ in range(data.draw(st.integers(0, 12))):
        n = utf16_len(expected)
        edits = []
        for _ in range(data.draw(st.integers(0, 3))):
            a = data.draw(st.integers(0, n))
            b = data.draw(st.integers(a, n))
            edits.append((a, b, data.draw(st.text(alphabet="xy\n", max_size=3))))
        try:
            cs = ChangeSet.of(edits, n)
            expected_next = cs.apply(expected)
        except (changesets.InvalidChangeSet, ValueError):
            continue  # overlapping edits or a split surrogate pair: not a change a client may send
        jsons.append(cs.to_json())
        expected = expected_next
    old = changesets.REPLAY_FLUSH_SECTIONS
    changesets.REPLAY_FLUSH_SECTIONS = flush
    try:
        assert replay(text, jsons) == (expected, len(jsons))
    finally:
        changesets.REPLAY_FLUSH_SECTIONS = old


@hsettings(max_examples=200, deadline=None)
@given(st.data())
def test_shift_ranges_agrees_with_touches_range_map_pos_and_map(data):
    n = data.draw(st.integers(0, 20))
    later_edits, pos = [], 0
    while pos <= n and data.draw(st.booleans()):
        a = data.draw(st.integers(pos, n))
        b = data.draw(st.integers(a, n))
        later_edits.append((a, b, data.draw(st.sampled_from(["", "x", "yy"]))))
        pos = b + 1
    later = ChangeSet.of(later_edits, n)
    edits, pos = [], 0
    while pos <= n and data.draw(st.booleans()):
        a = data.draw(st.integers(pos, n))
        b = data.draw(st.integers(a, n))
        edits.append((a, b, data.draw(st.sampled_from(["", "z", "zz"]))))
        pos = b
    ranges = [(a, b) for a, b, _ in edits]
    expected = None if any(later.touches_range(a, b) for a, b in ranges) else [
        (later.map_pos(a, 1), later.map_pos(b, -1) if b > a else later.map_pos(b, 1)) for a, b in ranges]
    assert shift_ranges(later, ranges) == expected
    if expected is not None:  # the edits moved by it are the change set `map` gives
        cs = ChangeSet.of(edits, n)
        moved = [(a, b, text) for (a, b), (_, _, text) in zip(expected, edits)]
        assert ChangeSet.of(moved, later.new_length) == cs.map(later)


# --- documents and forks per story ----------------------------------------------------------------

def test_documents_per_story_are_capped(tale, settings):
    settings.MYTHLINE_STORY_MAX_DOCUMENTS = 2  # `main` and one more
    create = tale["alice"].post
    assert create("/api/stories/tale/documents", {"name": "notes"}, format="json").status_code == 201
    for body in ({"name": "more"}, {"name": "branch", "fork_of": "main"}):
        r = create("/api/stories/tale/documents", body, format="json")
        assert r.status_code == 409 and error_code(r) == "conflict"
        assert r.json()["error"]["details"] == {"max_documents": 2}
    assert sorted(Document.objects.values_list("name", flat=True)) == ["main", "notes"]


def test_forks_per_story_are_capped(tale, settings):
    settings.MYTHLINE_STORY_MAX_FORKS = 1
    create = tale["alice"].post
    assert create("/api/stories/tale/documents", {"name": "b1", "fork_of": "main"}, format="json").status_code == 201
    r = create("/api/stories/tale/documents", {"name": "b2", "fork_of": "b1"}, format="json")
    assert r.status_code == 409 and error_code(r) == "conflict" and r.json()["error"]["details"] == {"max_forks": 1}
    assert create("/api/stories/tale/documents", {"name": "plain"}, format="json").status_code == 201
    assert sorted(Document.objects.values_list("name", flat=True)) == ["b1", "main", "plain"]


# --- Idempotency-Key on document edits ------------------------------------------------------------

def test_an_edit_repeated_with_its_idempotency_key_answers_the_first_change(tale, settings):
    settings.MYTHLINE_DOC_MAX_LAG = 2
    body = {"base_revision": 0, "edits": [{"from": 0, "to": 0, "insert": "Once"}], "client_id": "k"}
    first = ops(tale["scribe"], body, key="edit-1")
    assert first.status_code == 200 and first.json()["revision"] == 1
    appended(tale["alice"], ".", ".", ".")  # the document moves on, past the lag cap of the first edit
    again = ops(tale["scribe"], body, key="edit-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert stored() == (4, "Once...", 4)
    other = ops(tale["scribe"], {**body, "edits": [{"from": 0, "to": 0, "insert": "Twice"}]}, key="edit-1")
    assert other.status_code == 409 and error_code(other) == "conflict"
    assert other.json()["error"]["details"] == {"Idempotency-Key": "used with another body"}
    assert stored() == (4, "Once...", 4)


def test_idempotency_keys_are_scoped_to_the_sender_and_the_document(tale):
    tale["alice"].post("/api/stories/tale/documents", {"name": "notes"}, format="json")
    assert ops(tale["scribe"], {"append": "a"}, key="k").json()["revision"] == 1
    assert ops(tale["alice"], {"append": "a"}, key="k").json()["revision"] == 2  # another sender
    assert ops(tale["scribe"], {"append": "a"}, doc="notes", key="k").json()["revision"] == 1  # another document
    assert ops(tale["scribe"], {"append": "a"}, key="k").json()["revision"] == 1  # a repeat
    assert stored() == (2, "aa", 2) and stored("notes") == (1, "a", 1)
    r = ops(tale["scribe"], {"append": "a"}, key="x" * 256)
    assert r.status_code == 400 and error_code(r) == "invalid" and stored() == (2, "aa", 2)
