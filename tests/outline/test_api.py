"""The outline over REST (docs/protocol.md, "The outline"): scenes in a dense order, their fields
and limits, optimistic concurrency, the story's access rules, document ranges that follow the text
through later edits, the export and the admin."""
import json

import pytest

from outline.models import OutlineScene
from stories.documents import document_create, document_edit
from stories.models import Participant
from stories.services import participant_add
from tests.conftest import error_code

pytestmark = pytest.mark.django_db

URL = "/api/stories/tale/outline"


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, bob, vera, olga = make_user("alice"), make_user("bob"), make_user("vera"), make_user("olga")
    story = make_story(alice, slug="tale", editors=[bob], viewers=[vera])
    narrator = make_agent("narrator", capabilities=["narration"], stories=[story])  # an editor agent
    return {"story": story, "alice": alice, "bob": bob, "vera": vera, "olga": olga, "narrator": narrator}


def add(client, title, url=URL, **fields):
    r = client.post(url, {"title": title, **fields}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def titles(client, url=URL):
    r = client.get(url)
    assert r.status_code == 200, r.content
    body = r.json()
    assert [s["position"] for s in body["results"]] == list(range(1, body["count"] + 1))  # dense, 1..N
    return [s["title"] for s in body["results"]]


def test_crud_keeps_a_dense_order(api, tale):
    alice = api(tale["alice"])
    first = add(alice, "The storm", summary="Night falls.", beats=["Wind", "A knock"], pov="Mara",
                characters=["Mara", "Elias"])
    assert first["position"] == 1 and first["status"] == "planned" and first["version"] == 1
    assert first["beats"] == ["Wind", "A knock"] and first["characters"] == ["Mara", "Elias"]
    assert first["created_by"] == first["updated_by"] == "alice" and first["range"] is None
    second = add(alice, "The boat")
    opening = add(alice, "Before", position=1)
    assert titles(alice) == ["Before", "The storm", "The boat"]
    got = alice.get(f"{URL}/{first['id']}").json()
    assert got["position"] == 2 and got["title"] == "The storm" and got["story"] == "tale"

    r = api(tale["bob"]).patch(f"{URL}/{first['id']}", {"status": "drafting", "beats": ["Wind"]}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "drafting" and r.json()["beats"] == ["Wind"] and r.json()["updated_by"] == "bob"
    assert r.json()["version"] == 2 and r.json()["summary"] == "Night falls."  # untouched fields stay

    assert alice.delete(f"{URL}/{opening['id']}").status_code == 204
    assert titles(alice) == ["The storm", "The boat"]
    assert alice.get(f"{URL}/{opening['id']}").status_code == 404
    assert alice.get(f"{URL}/{second['id']}").json()["position"] == 2


def test_moves_shift_the_scenes_between(api, tale):
    alice = api(tale["alice"])
    ids = [add(alice, t)["id"] for t in "ABCDE"]
    r = alice.post(f"{URL}/{ids[0]}/move", {"position": 4}, format="json")
    assert r.status_code == 200 and r.json()["position"] == 4 and r.json()["version"] == 2
    assert titles(alice) == list("BCDAE")
    alice.post(f"{URL}/{ids[4]}/move", {"position": 1}, format="json")
    assert titles(alice) == list("EBCDA")
    assert alice.post(f"{URL}/{ids[2]}/move", {"position": 3}, format="json").status_code == 200  # where it is
    assert titles(alice) == list("EBCDA")
    for bad in (0, 6, "2", None, True):
        r = alice.post(f"{URL}/{ids[1]}/move", {"position": bad}, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid", (bad, r.content)
    assert error_code(alice.post(f"{URL}/{ids[1]}/move", {}, format="json")) == "invalid"
    for bad in (0, 7, -1):
        r = alice.post(URL, {"title": "X", "position": bad}, format="json")
        assert r.status_code == 400 and r.json()["error"]["details"] == {"position": "from 1 to 6"}, bad
    add(alice, "Last", position=6)  # N+1: the end
    assert titles(alice) == list("EBCDA") + ["Last"]
    assert list(OutlineScene.objects.filter(story=tale["story"]).order_by("position")
                .values_list("position", flat=True)) == [1, 2, 3, 4, 5, 6]


def test_bad_values_are_refused_with_the_field_named(api, tale, settings):
    settings.MYTHLINE_OUTLINE_MAX_BEATS = 3
    alice = api(tale["alice"])
    cases = [
        ({}, "title"), ({"title": "  "}, "title"), ({"title": "x" * 201}, "title"),
        ({"title": "T", "summary": "s" * 10_001}, "summary"),
        ({"title": "T", "beats": ["a", "b", "c", "d"]}, "beats"), ({"title": "T", "beats": "a"}, "beats"),
        ({"title": "T", "beats": ["b" * 1001]}, "beats[0]"), ({"title": "T", "beats": [""]}, "beats[0]"),
        ({"title": "T", "beats": [3]}, "beats[0]"),
        ({"title": "T", "status": "done"}, "status"), ({"title": "T", "characters": "Mara"}, "characters"),
        ({"title": "T\x00"}, "title"), ({"title": "T", "beats": ["a\x00"]}, "beats[0]"),
        ({"title": "T", "colour": "red"}, "colour"), ({"title": "T", "pov": 3}, "pov"),
    ]
    for body, field in cases:
        r = alice.post(URL, body, format="json")
        assert r.status_code == 400, (body, r.content)
        assert error_code(r) == "invalid" and field in r.json()["error"]["details"], (body, r.json())
    assert alice.post(URL, [1], format="json").status_code == 400
    scene = add(alice, "T")
    r = alice.patch(f"{URL}/{scene['id']}", {"position": 3}, format="json")
    assert r.status_code == 400 and "move" in r.json()["error"]["details"]["position"]
    assert error_code(alice.patch(f"{URL}/{scene['id']}", {"status": "finished"}, format="json")) == "invalid"
    assert OutlineScene.objects.count() == 1


def test_a_story_holds_at_most_the_configured_number_of_scenes(api, tale, settings):
    settings.MYTHLINE_OUTLINE_MAX_SCENES = 3
    alice = api(tale["alice"])
    for t in "ABC":
        add(alice, t)
    r = alice.post(URL, {"title": "D"}, format="json")
    assert r.status_code == 409 and error_code(r) == "conflict"
    assert r.json()["error"]["details"] == {"max_scenes": 3} and "3 scenes" in r.json()["error"]["message"]
    assert titles(alice) == list("ABC")


def test_a_stale_version_is_a_conflict_and_changes_nothing(api, tale):
    alice, bob = api(tale["alice"]), api(tale["bob"])
    scene = add(alice, "The storm")
    assert bob.patch(f"{URL}/{scene['id']}", {"title": "Storm", "version": 1}, format="json").status_code == 200
    r = alice.patch(f"{URL}/{scene['id']}", {"title": "The gale", "version": 1}, format="json")
    assert r.status_code == 409 and error_code(r) == "conflict" and r.json()["error"]["details"] == {"version": 2}
    assert alice.get(f"{URL}/{scene['id']}").json()["title"] == "Storm"
    other = add(alice, "Other")
    r = alice.post(f"{URL}/{scene['id']}/move", {"position": 2, "version": 1}, format="json")
    assert r.status_code == 409 and titles(alice) == ["Storm", "Other"]
    r = alice.delete(f"{URL}/{other['id']}?version=9")
    assert r.status_code == 409 and r.json()["error"]["details"] == {"version": 1}
    assert error_code(alice.delete(f"{URL}/{other['id']}?version=x")) == "invalid"
    assert alice.delete(f"{URL}/{other['id']}?version=1").status_code == 204
    r = alice.patch(f"{URL}/{scene['id']}", {"title": "The gale", "version": 2}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 3


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_access_follows_the_story(api, tale, visibility, make_user):
    story = tale["story"]
    story.visibility = visibility
    story.save()
    scene = add(api(tale["alice"]), "Owner's")
    for who in ("bob", "narrator"):  # an editor, an editor agent
        client = api(tale[who])
        add(client, f"{who}'s")
        assert client.patch(f"{URL}/{scene['id']}", {"summary": who}, format="json").status_code == 200
        assert client.post(f"{URL}/{scene['id']}/move", {"position": 1}, format="json").status_code == 200
    vera = api(tale["vera"])  # a viewer reads, never writes
    assert vera.get(URL).status_code == 200 and vera.get(f"{URL}/{scene['id']}").status_code == 200
    writes = [lambda c: c.post(URL, {"title": "X"}, format="json"),
              lambda c: c.patch(f"{URL}/{scene['id']}", {"title": "X"}, format="json"),
              lambda c: c.post(f"{URL}/{scene['id']}/move", {"position": 2}, format="json"),
              lambda c: c.delete(f"{URL}/{scene['id']}")]
    for write in writes:
        r = write(vera)
        assert r.status_code == 403 and error_code(r) == "forbidden", r.content
    olga = api(tale["olga"])  # an outsider
    if visibility == "public":
        assert olga.get(URL).status_code == 200 and olga.get(f"{URL}/{scene['id']}").status_code == 200
        expected = (403, "forbidden")
    else:
        for r in (olga.get(URL), olga.get(f"{URL}/{scene['id']}")):
            assert (r.status_code, error_code(r)) == (404, "not_found")
        expected = (404, "not_found")
    for write in writes:
        r = write(olga)
        assert (r.status_code, error_code(r)) == expected, r.content
    anonymous = api(None)
    assert anonymous.get(URL).status_code == 401 and anonymous.post(URL, {"title": "X"}, format="json").status_code == 401
    assert titles(api(tale["alice"])) == ["Owner's", "bob's", "narrator's"]
    # Demoted to viewer: the next write is refused.
    participant_add(story=story, user=tale["bob"], role=Participant.Role.VIEWER)
    assert api(tale["bob"]).post(URL, {"title": "X"}, format="json").status_code == 403


def test_a_scene_of_another_story_is_not_found_here(api, tale, make_story):
    make_story(tale["alice"], slug="other")
    alice = api(tale["alice"])
    elsewhere = add(alice, "Elsewhere", url="/api/stories/other/outline")
    for r in (alice.get(f"{URL}/{elsewhere['id']}"), alice.patch(f"{URL}/{elsewhere['id']}", {"title": "X"},
                                                                  format="json"),
              alice.post(f"{URL}/{elsewhere['id']}/move", {"position": 1}, format="json"),
              alice.delete(f"{URL}/{elsewhere['id']}"), alice.get(f"{URL}/99999999999")):
        assert (r.status_code, error_code(r)) == (404, "not_found"), r.content
    assert alice.get(f"/api/stories/other/outline/{elsewhere['id']}").json()["title"] == "Elsewhere"


# --- ranges ---------------------------------------------------------------------------------------

def edit(client, edits, base, doc="main"):
    r = client.post(f"/api/stories/tale/documents/{doc}/ops", {"base_revision": base, "edits": edits}, format="json")
    assert r.status_code == 200, r.content
    return r.json()["revision"]


def text_of(client, doc="main"):
    return client.get(f"/api/stories/tale/documents/{doc}").json()["text"]


def covered(client, scene_id, doc="main"):
    rng = client.get(f"{URL}/{scene_id}").json()["range"]
    return text_of(client, doc)[rng["from"]:rng["to"]], rng


def test_a_range_follows_its_text_through_later_edits(api, tale):
    alice, bob = api(tale["alice"]), api(tale["bob"])
    rev = edit(alice, [{"from": 0, "insert": "Prologue. The storm broke. Epilogue."}], 0)
    text = text_of(alice)
    at = text.index("The storm broke.")
    scene = add(alice, "The storm", range={"document": "main", "from": at, "to": at + 16})
    assert scene["range"] == {"document": "main", "from": at, "to": at + 16, "revision": rev, "gone": False}
    # Text typed before it moves it; the scene still covers the same words.
    rev = edit(bob, [{"from": 0, "insert": "Title\n\n"}], rev)
    assert covered(alice, scene["id"])[0] == "The storm broke."
    # Text typed inside it grows it; at its edges stays outside.
    start = text_of(alice).index("storm")
    rev = edit(bob, [{"from": start, "insert": "great "}], rev)
    got, rng = covered(alice, scene["id"])
    assert got == "The great storm broke." and rng["revision"] == rev and not rng["gone"]
    end = text_of(alice).index(" Epilogue")
    rev = edit(bob, [{"from": end, "insert": " [edge]"}], rev)
    assert covered(alice, scene["id"])[0] == "The great storm broke."
    # Part of it deleted: it shrinks to what is left.
    start = text_of(alice).index("great ")
    rev = edit(bob, [{"from": start, "to": start + 6}], rev)
    assert covered(alice, scene["id"])[0] == "The storm broke."
    # Its whole text deleted (with some around it): gone, collapsed where it was.
    text = text_of(alice)
    start, end = text.index(". The storm") + 1, text.index(" [edge]")
    rev = edit(bob, [{"from": start, "to": end}], rev)
    got, rng = covered(alice, scene["id"])
    assert got == "" and rng["gone"] is True and rng["from"] == rng["to"] == start and rng["revision"] == rev
    # ... and stays gone when text is typed there again.
    rev = edit(bob, [{"from": start, "insert": " The storm broke again."}], rev)
    assert covered(alice, scene["id"])[1]["gone"] is True
    # The list says the same as the scene.
    listed = alice.get(URL).json()["results"][0]["range"]
    assert listed == covered(alice, scene["id"])[1]
    # A new range (through PATCH) is live again.
    text = text_of(alice)
    at = text.index("The storm broke again.")
    r = alice.patch(f"{URL}/{scene['id']}", {"range": {"document": "main", "from": at, "to": at + 22},
                                             "status": "drafted"}, format="json")
    assert r.status_code == 200 and r.json()["range"]["gone"] is False
    assert covered(alice, scene["id"])[0] == "The storm broke again."
    r = alice.patch(f"{URL}/{scene['id']}", {"range": None}, format="json")
    assert r.json()["range"] is None


def test_a_replaced_range_is_gone_and_a_point_only_moves(api, tale):
    alice = api(tale["alice"])
    rev = edit(alice, [{"from": 0, "insert": "One. Two. Three."}], 0)
    two = add(alice, "Two", range={"document": "main", "from": 5, "to": 9})
    point = add(alice, "Next", range={"document": "main", "from": 16})  # a point: where a scene will go
    assert point["range"]["from"] == point["range"]["to"] == 16
    rev = edit(alice, [{"from": 5, "to": 9, "insert": "Deux."}], rev)  # exactly its text, replaced
    got, rng = covered(alice, two["id"])
    assert got == "Deux." and not rng["gone"]  # a rewrite of the scene: it covers the new text
    rev = edit(alice, [{"from": 3, "to": 11, "insert": "!"}], rev)  # its text and more, replaced
    assert covered(alice, two["id"])[1]["gone"] is True
    assert text_of(alice) == "One!Three."
    got, rng = covered(alice, point["id"])
    assert (rng["from"], rng["to"], rng["gone"]) == (10, 10, False)
    edit(alice, [{"from": 0, "to": 10}], rev)  # everything deleted: a point stays a (live) point
    assert covered(alice, point["id"])[1] == {"document": "main", "from": 0, "to": 0,
                                              "revision": rev + 1, "gone": False}


def test_range_positions_count_characters_not_utf16_units(api, tale):
    alice = api(tale["alice"])
    rev = edit(alice, [{"from": 0, "insert": "🌊🌊 The wave. 🌊"}], 0)
    scene = add(alice, "Wave", range={"document": "main", "from": 3, "to": 12})
    assert covered(alice, scene["id"])[0] == "The wave."
    edit(alice, [{"from": 0, "insert": "🐚"}], rev)
    got, rng = covered(alice, scene["id"])
    assert got == "The wave." and (rng["from"], rng["to"]) == (4, 13)


def test_a_range_given_at_an_older_revision_is_mapped_or_refused(api, tale, settings):
    alice = api(tale["alice"])
    r1 = edit(alice, [{"from": 0, "insert": "Alpha beta gamma."}], 0)
    r2 = edit(alice, [{"from": 0, "insert": ">> "}], r1)
    scene = add(alice, "Beta", range={"document": "main", "from": 6, "to": 10, "revision": r1})
    assert scene["range"]["revision"] == r2 and covered(alice, scene["id"])[0] == "beta"
    edit(alice, [{"from": 9, "to": 13}], r2)  # "beta" deleted
    r = alice.post(URL, {"title": "Beta", "range": {"document": "main", "from": 6, "to": 10, "revision": r1}},
                   format="json")
    assert r.status_code == 409 and error_code(r) == "conflict" and "deleted" in r.json()["error"]["message"]
    settings.MYTHLINE_DOC_MAX_LAG = 1
    r = alice.post(URL, {"title": "Old", "range": {"document": "main", "from": 0, "to": 1, "revision": 0}},
                   format="json")
    assert r.status_code == 409 and r.json()["error"]["details"]["max_lag"] == 1


def test_bad_ranges_are_refused(api, tale, make_story):
    alice = api(tale["alice"])
    edit(alice, [{"from": 0, "insert": "Short."}], 0)
    other = make_story(tale["alice"], slug="other")
    document_create(story=other, creator=tale["alice"], name="notes", text="elsewhere")
    document_create(story=tale["story"], creator=tale["alice"], name="notes2", text="x")
    cases = [
        ({"document": "notes", "from": 0, "to": 1}, "range.document"),  # another story's document
        ({"document": "main", "from": 0, "to": 7}, "range"), ({"document": "main", "from": 4, "to": 2}, "range"),
        ({"document": "main", "from": -1, "to": 2}, "range"), ({"document": "main", "from": "0"}, "range.from"),
        ({"document": "main", "from": 0, "revision": 5}, "range.revision"), ({"from": 0}, "range.document"),
        ({"document": "main", "from": 0, "colour": 1}, "range.colour"), ("main", "range"),
    ]
    for rng, field in cases:
        r = alice.post(URL, {"title": "T", "range": rng}, format="json")
        assert r.status_code == 400 and field in r.json()["error"]["details"], (rng, r.content)
    scene = add(alice, "Notes", range={"document": "notes2", "from": 0, "to": 1})
    assert scene["range"]["document"] == "notes2"


# --- export and admin -----------------------------------------------------------------------------

def test_the_export_has_the_outline_in_order_with_mapped_ranges(api, tale):
    alice = api(tale["alice"])
    rev = edit(alice, [{"from": 0, "insert": "The storm broke."}], 0)
    add(alice, "B", beats=["x"])
    add(alice, "A", position=1, range={"document": "main", "from": 4, "to": 9})
    edit(alice, [{"from": 0, "insert": "Then "}], rev)
    r = alice.get("/api/stories/tale/export")
    assert r.status_code == 200
    export = json.loads(b"".join(r.streaming_content))
    outline = export["outline"]
    assert [s["title"] for s in outline] == ["A", "B"] and outline[1]["beats"] == ["x"]
    assert outline[0]["range"] == {"document": "main", "from": 9, "to": 14, "revision": rev + 1, "gone": False}
    assert export["documents"][0]["text"][9:14] == "storm"


def test_staff_browse_the_outline_in_the_admin(client, tale, make_user, api):
    alice = api(tale["alice"])
    edit(alice, [{"from": 0, "insert": "The storm broke."}], 0)
    scene = add(alice, "The storm", status="drafting", range={"document": "main", "from": 4, "to": 9})
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    r = client.get("/admin/outline/outlinescene/?status__exact=drafting")
    assert r.status_code == 200 and b"The storm" in r.content
    r = client.get(f"/admin/outline/outlinescene/?story__id__exact={tale['story'].pk}&q=storm")
    assert r.status_code == 200 and b"The storm" in r.content
    r = client.get(f"/admin/outline/outlinescene/{scene['id']}/change/")
    assert r.status_code == 200 and b"main 4..9 at r1 (live)" in r.content
    assert client.get("/admin/outline/outlinescene/add/").status_code == 403


def test_services_refuse_what_rest_refuses(tale):
    """The services check values themselves (MCP and REST share them)."""
    from mythline_site.errors import Forbidden, Invalid
    from outline.services import scene_create

    with pytest.raises(Invalid):
        scene_create(story=tale["story"], by=tale["alice"], data={"title": "T", "beats": [None]})
    with pytest.raises(Forbidden):
        scene_create(story=tale["story"], by=tale["vera"], data={"title": "T"})
    doc = tale["story"].documents.get(name="main")
    document_edit(doc=doc, author=tale["alice"], body={"append": "x"})
    assert OutlineScene.objects.count() == 0


def test_a_read_far_behind_stores_the_range_re_anchored_and_the_answers_stay_the_same(api, tale, monkeypatch):
    """Reads map a range only through the changes since it was last re-anchored (outline.selectors
    REANCHOR_AFTER): what they answer is the same, the scene's version and events untouched."""
    monkeypatch.setattr("outline.selectors.REANCHOR_AFTER", 3)
    alice = api(tale["alice"])
    rev = edit(alice, [{"from": 0, "insert": "The storm broke. Calm."}], 0)
    scene = add(alice, "The storm", range={"document": "main", "from": 4, "to": 9})
    for _ in range(2):
        rev = edit(alice, [{"from": 0, "insert": "> "}], rev)
    assert covered(alice, scene["id"])[0] == "storm"
    stored = OutlineScene.objects.get(pk=scene["id"])
    assert stored.range_revision == 1  # 2 changes behind: mapped on read, not stored
    rev = edit(alice, [{"from": 0, "insert": "> "}], rev)
    got, rng = covered(alice, scene["id"])
    assert got == "storm" and rng["revision"] == rev == 4
    stored = OutlineScene.objects.get(pk=scene["id"])
    assert (stored.range_revision, stored.range_from, stored.range_to, stored.version) == (4, 10, 15, 1)
    text = text_of(alice)
    start = text.index("The storm")
    for n in range(3):  # deleted, then typed again: gone, and still gone once stored
        rev = edit(alice, [{"from": start, "to": start + 16}] if n == 0 else [{"from": 0, "insert": "~"}], rev)
    assert covered(alice, scene["id"])[1]["gone"] is True
    assert OutlineScene.objects.get(pk=scene["id"]).range_gone is True
    rev = edit(alice, [{"from": 0, "insert": "x"}], rev)
    assert covered(alice, scene["id"])[1]["gone"] is True and alice.get(f"{URL}/{scene['id']}").json()["version"] == 1


def test_a_change_that_changes_nothing_keeps_the_version(api, tale):
    alice = api(tale["alice"])
    scene = add(alice, "The storm", beats=["Wind"])
    for body in ({}, {"title": "The storm", "beats": ["Wind"]}, {"range": None}, {"status": "planned", "version": 1}):
        r = alice.patch(f"{URL}/{scene['id']}", body, format="json")
        assert r.status_code == 200 and r.json()["version"] == 1, body
    r = alice.patch(f"{URL}/{scene['id']}", {"title": "The storm", "summary": "New."}, format="json")
    assert r.json()["version"] == 2 and r.json()["summary"] == "New."
