"""Document versions over REST and through the services: naming revisions, the story's access rules,
the limits and bad input (refused in words, nothing stored changed), comparing two revisions or a
fork with its parent, restoring an old revision as a new one (the log kept), the export, and the
MCP tools' own checks."""
import json

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from stories.documents import document_edit, text_at
from stories.models import Document, DocumentChange
from tests.conftest import error_code
from versions import diff as word_diff
from versions.models import DocumentVersion

pytestmark = pytest.mark.django_db


def base(story="tale", doc="main"):
    return f"/api/stories/{story}/documents/{doc}"


@pytest.fixture
def tale(make_user, make_story, make_agent, api):
    """`tale` (public) and `hush` (private): owner owns both, ed edits, vera views, scribe is an
    editor agent, olga is signed in and in neither. main of tale holds three revisions."""
    owner, editor, viewer, outsider = (make_user(n) for n in ("owner", "ed", "vera", "olga"))
    public = make_story(owner, slug="tale", editors=[editor], viewers=[viewer])
    private = make_story(owner, slug="hush", visibility="private", editors=[editor], viewers=[viewer])
    agent = make_agent("scribe", stories=[public, private])
    main = Document.objects.get(story=public, name="main")
    for text in ("The keeper climbed.", " The lamp was dark.", " A ship 🚢 came."):
        document_edit(doc=main, author=owner, body={"append": text})
    document_edit(doc=Document.objects.get(story=private, name="main"), author=owner, body={"append": "HUSH text."})
    users = {"owner": owner, "ed": editor, "vera": viewer, "olga": outsider, "scribe": agent}
    return {name: api(user) for name, user in users.items()} | {"users": users, "anon": api(None)}


def name(client, body, story="tale", doc="main"):
    return client.post(f"{base(story, doc)}/versions", body, format="json")


def stored():
    return sorted(DocumentVersion.objects.values_list("document__name", "revision", "name", "note"))


def log_of(story="tale", doc="main"):
    return list(DocumentChange.objects.filter(document__story__slug=story, document__name=doc)
                .order_by("revision").values_list("revision", "changes"))


# --- naming -------------------------------------------------------------------------------------------

def test_name_list_rename_and_delete(tale):
    owner = tale["owner"]
    r = name(owner, {"name": "First light", "revision": 1, "note": "before the lamp"})
    assert r.status_code == 201, r.json()
    first = r.json()
    assert {k: first[k] for k in ("document", "revision", "name", "note", "created_by")} == {
        "document": "main", "revision": 1, "name": "First light", "note": "before the lamp", "created_by": "owner"}
    r = name(tale["scribe"], {"name": "  Current   draft "})  # default: the current revision; spaces collapsed
    assert r.status_code == 201 and (r.json()["revision"], r.json()["name"]) == (3, "Current draft")
    assert name(tale["ed"], {"name": "Empty page", "revision": 0}).json()["revision"] == 0

    listed = tale["vera"].get(f"{base()}/versions").json()
    assert [(v["name"], v["revision"]) for v in listed["results"]] == [
        ("Current draft", 3), ("First light", 1), ("Empty page", 0)]
    assert listed["next"] is None
    assert tale["vera"].get(f"{base()}/versions/{first['id']}").json()["name"] == "First light"

    r = tale["ed"].patch(f"{base()}/versions/{first['id']}", {"name": "Dawn", "note": ""}, format="json")
    assert r.status_code == 200 and (r.json()["name"], r.json()["note"], r.json()["revision"]) == ("Dawn", "", 1)
    assert tale["owner"].delete(f"{base()}/versions/{first['id']}").status_code == 204
    assert tale["owner"].get(f"{base()}/versions/{first['id']}").status_code == 404
    assert stored() == [("main", 0, "Empty page", ""), ("main", 3, "Current draft", "")]
    assert [rev for rev, _ in log_of()] == [1, 2, 3]  # naming never touches the log


def test_names_are_unique_per_document_in_any_case(tale):
    owner = tale["owner"]
    assert name(owner, {"name": "Draft"}).status_code == 201
    r = name(owner, {"name": "DRAFT", "revision": 1})
    assert r.status_code == 409 and error_code(r) == "conflict"
    assert r.json()["error"]["details"] == {"name": "taken", "id": DocumentVersion.objects.get(name="Draft").pk}
    assert r.json()["error"]["message"] == "Document 'main' already has a version named 'DRAFT' (r3)."
    other = name(owner, {"name": "Other"}).json()
    r = owner.patch(f"{base()}/versions/{other['id']}", {"name": "draft"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["details"]["name"] == "taken"
    # Another document may use the name: a fork of main.
    assert owner.post("/api/stories/tale/documents", {"name": "alt", "fork_of": "main"}, format="json").status_code == 201
    assert name(owner, {"name": "draft"}, doc="alt").status_code == 201
    assert stored() == [("alt", 0, "draft", ""), ("main", 3, "Draft", ""), ("main", 3, "Other", "")]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": 12}, "name"),
    ({"name": None}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "ok", "revision": "2"}, "revision"),
    ({"name": "ok", "revision": True}, "revision"),
    ({"name": "ok", "revision": 2.5}, "revision"),
    ({"name": "ok", "revision": -1}, "revision"),
    ({"name": "ok", "revision": 4}, "revision"),  # past the current revision (3)
    ({"name": "ok", "note": 5}, "note"),
    ({"name": "ok", "note": "n" * 2001}, "note"),
    ({"name": "bad\x00name"}, None),  # NUL: refused before the view
    ({"name": "ok", "document": "main"}, "document"),
])
def test_bad_names_are_refused_and_nothing_is_stored(tale, body, field):
    r = name(tale["owner"], body)
    assert r.status_code == 400, r.json()
    assert error_code(r) == "invalid"
    if field:
        assert field in (r.json()["error"]["details"] or {}), r.json()
    assert stored() == []


def test_malformed_and_non_object_bodies(tale):
    owner = tale["owner"]
    for raw in ('{"name": "x"', "[1, 2]", '"name"', ""):
        r = owner.generic("POST", f"{base()}/versions", raw, content_type="application/json")
        assert r.status_code == 400 and error_code(r) == "invalid", raw
        r = owner.generic("POST", f"{base()}/restore", raw, content_type="application/json")
        assert r.status_code == 400 and error_code(r) == "invalid", raw
    version = name(owner, {"name": "v"}).json()
    r = owner.patch(f"{base()}/versions/{version['id']}", {"revision": 1}, format="json")
    assert r.status_code == 400 and "revision" in r.json()["error"]["details"]
    assert stored() == [("main", 3, "v", "")]


def test_at_most_max_versions_per_document(tale, settings):
    settings.MYTHLINE_DOC_MAX_VERSIONS = 2
    owner = tale["owner"]
    assert name(owner, {"name": "a", "revision": 1}).status_code == 201
    assert name(owner, {"name": "b", "revision": 2}).status_code == 201
    r = name(owner, {"name": "c"})
    assert r.status_code == 409 and r.json()["error"]["details"] == {"max_versions": 2}
    assert "delete one" in r.json()["error"]["message"]
    assert [v[2] for v in stored()] == ["a", "b"]


def test_unknown_documents_and_versions_are_404(tale):
    owner = tale["owner"]
    assert owner.get(f"{base(doc='nope')}/versions").status_code == 404
    assert name(owner, {"name": "x"}, doc="nope").status_code == 404
    owner.post("/api/stories/tale/documents", {"name": "notes", "text": "n"}, format="json")
    other = name(owner, {"name": "on notes"}, doc="notes").json()
    # A version of another document is not found under this one.
    assert owner.get(f"{base()}/versions/{other['id']}").status_code == 404
    assert owner.delete(f"{base()}/versions/{other['id']}").status_code == 404
    assert owner.post(f"{base()}/restore", {"version": other["id"]}, format="json").status_code == 404
    assert owner.delete(f"{base()}/versions/999999").status_code == 404


# --- who may ---------------------------------------------------------------------------------------------

WRITERS = ("owner", "ed", "scribe")


@pytest.mark.parametrize("who", ["owner", "ed", "vera", "olga", "scribe", "anon"])
def test_access_public_story(tale, who):
    client = tale[who]
    read = {"owner": 200, "ed": 200, "vera": 200, "olga": 200, "scribe": 200, "anon": 401}[who]
    write = {"owner": 201, "ed": 201, "scribe": 201, "vera": 403, "olga": 403, "anon": 401}[who]
    version = name(tale["owner"], {"name": "kept", "revision": 1}).json()
    assert client.get(f"{base()}/versions").status_code == read
    assert client.get(f"{base()}/compare?from=1").status_code == read
    assert client.get(f"{base()}/versions/{version['id']}").status_code == read
    r = name(client, {"name": f"by {who}"})
    assert r.status_code == write, r.content
    ok = write == 201
    assert client.patch(f"{base()}/versions/{version['id']}", {"note": who}, format="json").status_code == \
        (200 if ok else write)
    r = client.post(f"{base()}/restore", {"revision": 1}, format="json")
    assert r.status_code == (200 if ok else write)
    assert client.delete(f"{base()}/versions/{version['id']}").status_code == (204 if ok else write)
    if not ok:
        assert error_code(r) == ("unauthenticated" if who == "anon" else "forbidden")
        assert text_at(Document.objects.get(story__slug="tale", name="main"), 3).endswith("came.")
        assert Document.objects.get(story__slug="tale", name="main").revision == 3
        assert [v[2] for v in stored()] == ["kept"]


@pytest.mark.parametrize("who", ["owner", "ed", "vera", "olga", "scribe"])
def test_access_private_story(tale, who):
    client = tale[who]
    insider = who != "olga"
    r = client.get(f"{base('hush')}/versions")
    assert r.status_code == (200 if insider else 404)
    r = client.get(f"{base('hush')}/compare?from=0")
    assert r.status_code == (200 if insider else 404)
    if not insider:
        assert "HUSH" not in r.content.decode() and "hush" in r.json()["error"]["message"]
    r = name(client, {"name": "x"}, story="hush")
    assert r.status_code == {"owner": 201, "ed": 201, "scribe": 201, "vera": 403, "olga": 404}[who]
    r = client.post(f"{base('hush')}/restore", {"revision": 0}, format="json")
    assert r.status_code == {"owner": 200, "ed": 200, "scribe": 200, "vera": 403, "olga": 404}[who]


# --- compare ---------------------------------------------------------------------------------------

def joined(ops, *kinds):
    return "".join(o["text"] for o in ops if o["op"] in kinds)


def test_compare_two_revisions(tale):
    r = tale["vera"].get(f"{base()}/compare", {"from": 1, "to": 3})
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["from"] == {"document": "main", "revision": 1, "current_revision": 3, "length": 19}
    assert body["to"]["revision"] == 3 and body["to"]["length"] == len("The keeper climbed. The lamp was dark. A ship 🚢 came.")
    assert body["diff"] == [{"op": "equal", "text": "The keeper climbed."},
                            {"op": "insert", "text": " The lamp was dark. A ship 🚢 came."}]
    assert body["stats"] == {"inserted": 34, "deleted": 0, "inserted_words": 7, "deleted_words": 0}
    # `to` defaults to the current revision; backwards is a deletion.
    assert tale["vera"].get(f"{base()}/compare", {"from": 1}).json()["diff"] == body["diff"]
    back = tale["vera"].get(f"{base()}/compare", {"from": 3, "to": 1}).json()
    assert [o["op"] for o in back["diff"]] == ["equal", "delete"] and back["stats"]["deleted"] == 34
    same = tale["vera"].get(f"{base()}/compare", {"from": 2, "to": 2}).json()
    assert same["diff"] == [{"op": "equal", "text": "The keeper climbed. The lamp was dark."}]
    assert tale["vera"].get(f"{base()}/compare", {"from": 0, "to": 0}).json()["diff"] == []


def test_compare_words_and_astral_characters(tale):
    owner = tale["owner"]
    owner.post(f"{base()}/ops", {"base_revision": 3, "find": "A ship 🚢 came.", "replace": "Two ships 🚢🛳️ came, 👩‍👩‍👧 aboard."},
               format="json")
    body = owner.get(f"{base()}/compare", {"from": 3}).json()
    diff = body["diff"]
    old, new = text_at(Document.objects.get(story__slug="tale", name="main"), 3), \
        Document.objects.get(story__slug="tale", name="main").text
    assert joined(diff, "equal", "delete") == old and joined(diff, "equal", "insert") == new
    # Word by word; an emoji (with its variation selector) and an emoji family are one token each,
    # never split between a deletion and an insertion.
    assert diff == [{"op": "equal", "text": "The keeper climbed. The lamp was dark. "},
                    {"op": "delete", "text": "A ship"}, {"op": "insert", "text": "Two ships"},
                    {"op": "equal", "text": " 🚢"}, {"op": "insert", "text": "🛳️"}, {"op": "equal", "text": " came"},
                    {"op": "insert", "text": ", 👩‍👩‍👧 aboard"}, {"op": "equal", "text": "."}]
    assert body["stats"] == {"inserted": len("Two ships🛳️, 👩‍👩‍👧 aboard"), "deleted": len("A ship"),
                             "inserted_words": 3, "deleted_words": 2}
    # Lengths count characters (code points), as REST edits do.
    assert body["to"]["length"] == len(new)


def test_compare_refusals(tale, settings):
    vera = tale["vera"]
    for params, field in (({}, "from"), ({"from": "x"}, "from"), ({"from": 4}, "from"), ({"from": -1}, "from"),
                          ({"from": 1, "to": 9}, "to"), ({"from": 1, "to": "3.0"}, "to"), ({"parent": 1}, "parent"),
                          ({"parent": "yes"}, "parent"), ({"from": 1, "rev": 2}, "rev")):
        r = vera.get(f"{base()}/compare", params)
        assert r.status_code == 400 and error_code(r) == "invalid", params
        assert field in r.json()["error"]["details"], (params, r.json())
    settings.MYTHLINE_DOC_DIFF_MAX_TOKENS = 10
    r = vera.get(f"{base()}/compare", {"from": 1})
    assert r.status_code == 413 and error_code(r) == "payload_too_large"
    assert r.json()["error"]["details"]["max_tokens"] == 10


def test_compare_a_fork_with_its_parent(tale):
    owner = tale["owner"]
    assert owner.post("/api/stories/tale/documents", {"name": "alt", "fork_of": "main", "at_revision": 2},
                      format="json").status_code == 201
    owner.post(f"{base(doc='alt')}/ops", {"base_revision": 0, "find": "dark", "replace": "lit, and warm"},
               format="json")
    body = tale["vera"].get(f"{base(doc='alt')}/compare", {"parent": 1}).json()
    assert (body["from"]["document"], body["from"]["revision"]) == ("main", 3)
    assert (body["to"]["document"], body["to"]["revision"]) == ("alt", 1)
    assert body["diff"] == [{"op": "equal", "text": "The keeper climbed. The lamp was "},
                            {"op": "delete", "text": "dark. A ship 🚢 came"}, {"op": "insert", "text": "lit, and warm"},
                            {"op": "equal", "text": "."}]
    r = tale["vera"].get(f"{base(doc='alt')}/compare", {"parent": 1, "from": 0})
    assert r.status_code == 400 and "parent" in r.json()["error"]["details"]


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="ab .,\n😀é\u0301\u200d👩", max_size=60), st.text(alphabet="ab .,\n😀é\u0301\u200d👩", max_size=60))
def test_diff_rebuilds_both_texts(a, b):
    ops = word_diff.diff(a, b)
    assert joined(ops, "equal", "delete") == a
    assert joined(ops, "equal", "insert") == b
    assert all(o["text"] for o in ops)
    assert all(x["op"] != y["op"] for x, y in zip(ops, ops[1:]))  # adjacent operations merged


def test_diff_of_a_large_text_stays_readable_and_fast():
    import time

    paragraphs = [f"Paragraph {i} tells of the sea, the lamp and keeper number {i}." for i in range(3000)]
    a = "\n\n".join(paragraphs)
    changed = paragraphs[:]
    changed[10] = changed[10].replace("the lamp", "the great lamp")
    changed[2500] = changed[2500].replace("sea", "storm")
    b = "\n\n".join(changed)
    started = time.monotonic()
    ops = word_diff.diff(a, b)
    assert time.monotonic() - started < 5
    assert [(o["op"], o["text"]) for o in ops if o["op"] != "equal"] == [
        ("insert", "great "), ("delete", "sea"), ("insert", "storm")]


# --- restore ---------------------------------------------------------------------------------------

def test_restore_makes_a_new_revision_and_keeps_the_log(tale):
    owner = tale["owner"]
    main = Document.objects.get(story__slug="tale", name="main")
    before = {r: text_at(main, r) for r in range(4)}
    log_before = log_of()
    r = owner.post(f"{base()}/restore", {"revision": 1}, format="json")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["revision"], body["restored_revision"], body["changed"], body["version"]) == (4, 1, True, None)
    assert body["change"]["revision"] == 4 and body["change"]["author"] == "owner" and body["change"]["via"] == "rest"
    main.refresh_from_db()
    assert (main.revision, main.text) == (4, "The keeper climbed.")
    assert log_of()[:3] == log_before and len(log_of()) == 4  # one change appended, none rewritten
    assert {r: text_at(main, r) for r in range(4)} == before
    assert text_at(main, 4) == before[1]
    # The change log reads like any other edit.
    ops = owner.get(f"{base()}/ops?after=3").json()["results"]
    assert [c["revision"] for c in ops] == [4]

    # Restoring the same text again writes nothing.
    r = owner.post(f"{base()}/restore", {"revision": 1}, format="json")
    assert r.status_code == 200 and (r.json()["changed"], r.json()["revision"], r.json()["change"]) == (False, 4, None)
    assert len(log_of()) == 4

    # By a version's id; then forwards again (nothing is ever lost).
    version = name(owner, {"name": "Full", "revision": 3}).json()
    r = tale["scribe"].post(f"{base()}/restore", {"version": version["id"]}, format="json")
    assert r.status_code == 200 and r.json()["version"]["name"] == "Full" and r.json()["restored_revision"] == 3
    main.refresh_from_db()
    assert (main.revision, main.text) == (5, before[3])


def test_restore_refusals_change_nothing(tale, settings):
    owner = tale["owner"]
    version = name(owner, {"name": "v1", "revision": 1}).json()
    for body, field in (({}, "revision"), ({"revision": 1, "version": version["id"]}, "revision"),
                        ({"revision": "1"}, "revision"), ({"revision": 7}, "revision"), ({"revision": -2}, "revision"),
                        ({"revision": True}, "revision"), ({"version": "x"}, "version"), ({"text": "x"}, "text")):
        r = owner.post(f"{base()}/restore", body, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid", body
        assert field in r.json()["error"]["details"], (body, r.json())
    settings.MYTHLINE_DOC_MAX_INSERT_CHARS = 5
    r = owner.post(f"{base()}/restore", {"revision": 3}, format="json")  # from r3 to r3: nothing to insert
    assert r.status_code == 200 and r.json()["changed"] is False
    owner.post(f"{base()}/restore", {"revision": 0}, format="json")  # deletes only: allowed
    r = owner.post(f"{base()}/restore", {"revision": 3}, format="json")
    assert r.status_code == 413 and error_code(r) == "payload_too_large"
    assert r.json()["error"]["details"]["max_insert_chars"] == 5
    main = Document.objects.get(story__slug="tale", name="main")
    assert (main.revision, main.text) == (4, "")


def test_restore_keeps_unchanged_text_around_the_change(tale):
    """One change, only over what differs: the text before and after it is not replaced."""
    owner = tale["owner"]
    owner.post(f"{base()}/ops", {"base_revision": 3, "find": "lamp", "replace": "great lamp"}, format="json")
    r = owner.post(f"{base()}/restore", {"revision": 3}, format="json")
    changes = r.json()["change"]["changes"]
    assert changes[0] == len("The keeper climbed. The ")  # kept, in UTF-16 units
    assert changes[1] == [len("great ")]  # deleted
    main = Document.objects.get(story__slug="tale", name="main")
    assert main.text == text_at(main, 3)


# --- events, export, MCP helpers ----------------------------------------------------------------

def test_version_events_are_published_after_commit(tale, monkeypatch):
    sent = []
    monkeypatch.setattr("messaging.events.publish_story_event",
                        lambda story, event, data, **kw: sent.append((story.slug, event, data)))
    owner = tale["owner"]
    version = name(owner, {"name": "Dawn", "revision": 1}).json()
    owner.patch(f"{base()}/versions/{version['id']}", {"name": "Dawn"}, format="json")  # unchanged: no event
    owner.patch(f"{base()}/versions/{version['id']}", {"note": "n"}, format="json")
    owner.delete(f"{base()}/versions/{version['id']}")
    name(tale["vera"], {"name": "refused"})
    assert [(s, e) for s, e, _ in sent] == [("tale", "document.version.created"), ("tale", "document.version.updated"),
                                            ("tale", "document.version.deleted")]
    assert sent[0][2]["name"] == "Dawn" and sent[2][2] == {"id": version["id"], "document": "main", "name": "Dawn"}


def test_export_has_every_documents_versions(tale):
    owner = tale["owner"]
    name(owner, {"name": "Dawn", "revision": 1, "note": "n"})
    owner.post("/api/stories/tale/documents", {"name": "alt", "fork_of": "main"}, format="json")
    name(owner, {"name": "Fork start"}, doc="alt")
    r = owner.get("/api/stories/tale/export")
    export = json.loads(b"".join(r.streaming_content))
    assert [(v["document"], v["revision"], v["name"]) for v in export["versions"]] == [
        ("alt", 0, "Fork start"), ("main", 1, "Dawn")]


def test_mcp_helpers_apply_the_same_rules(tale):
    from mythline_site.errors import Forbidden, Invalid, NotFound
    from versions import mcp

    users = tale["users"]
    made = mcp._name_version(users["scribe"], "tale", "main", "By agent", 2, None)
    assert (made["revision"], made["created_by"]) == (2, "scribe")
    listed = mcp._list_versions(users["vera"], "tale", "main")
    assert [v["name"] for v in listed["results"]] == ["By agent"] and listed["current_revision"] == 3
    cmp = mcp._compare(users["vera"], "tale", "main", 2, None, False)
    assert cmp["diff"][-1] == {"op": "insert", "text": " A ship 🚢 came."}
    with pytest.raises(Invalid):
        mcp._compare(users["vera"], "tale", "main", None, None, False)
    with pytest.raises(Invalid):
        mcp._compare(users["vera"], "tale", "main", 1, None, True)
    with pytest.raises(Forbidden):
        mcp._restore(users["vera"], "tale", "main", 1, None)
    with pytest.raises(Forbidden):
        mcp._name_version(users["vera"], "tale", "main", "nope", None, None)
    with pytest.raises(NotFound):
        mcp._list_versions(users["olga"], "hush", "main")
    out = mcp._restore(users["scribe"], "tale", "main", None, made["id"])
    assert (out["revision"], out["change"]["via"], out["restored_revision"]) == (4, "mcp", 2)
