"""The story bible over REST: CRUD, search, progressions by scene, the story's access rules, the
limits (refused with nothing stored changed), optimistic concurrency, and the export."""
import json

import pytest

from bible.models import BibleEntry, BibleProgression
from tests.conftest import error_code

pytestmark = pytest.mark.django_db

MARA = {"kind": "character", "name": "Mara Quinn", "aliases": ["Mara", "the keeper's daughter"],
        "description": "Nineteen, keeps the light when her father cannot.",
        "fields": {"voice": "short sentences, sea words", "age": "19"}}


def url(story, entry=None, *rest):
    base = f"/api/stories/{story}/bible"
    return "/".join([base, *([entry] if entry else []), *rest])


@pytest.fixture
def tale(make_user, make_story, make_agent):
    owner, editor, viewer, outsider = (make_user(n) for n in ("owner", "ed", "vera", "olga"))
    public = make_story(owner, slug="tale", editors=[editor], viewers=[viewer])
    private = make_story(owner, slug="hush", visibility="private", editors=[editor], viewers=[viewer])
    agent = make_agent("scribe", stories=[public, private])  # an editor
    watcher = make_agent("watcher")
    from stories.services import participant_add
    participant_add(story=public, user=watcher, role="viewer")
    participant_add(story=private, user=watcher, role="viewer")
    return {"owner": owner, "ed": editor, "vera": viewer, "olga": outsider, "scribe": agent, "watcher": watcher}


def create(client, story="tale", **body):
    return client.post(url(story), {**MARA, **body}, format="json")


def test_crud_and_search(tale, api):
    owner = api(tale["owner"])
    r = create(owner)
    assert r.status_code == 201, r.json()
    entry = r.json()
    assert entry["slug"] == "mara-quinn" and entry["version"] == 1 and entry["story"] == "tale"
    assert entry["aliases"] == ["Mara", "the keeper's daughter"] and entry["fields"]["age"] == "19"
    assert entry["created_by"] == entry["updated_by"] == "owner" and entry["progressions"] == []
    r = owner.post(url("tale"), {"kind": "place", "name": "Skerry Rock", "description": "A bare rock, a tower."},
                   format="json")
    assert r.status_code == 201
    owner.post(url("tale"), {"kind": "object", "name": "The Bell", "aliases": ["ship's bell"]}, format="json")

    listed = owner.get(url("tale")).json()
    assert [e["name"] for e in listed["results"]] == ["Mara Quinn", "Skerry Rock", "The Bell"]
    assert listed["next"] is None
    assert [e["slug"] for e in owner.get(url("tale"), {"kind": "place"}).json()["results"]] == ["skerry-rock"]
    for q, found in (("KEEPER'S", ["mara-quinn"]), ("tower", ["skerry-rock"]), ("SHIP", ["the-bell"]),
                     ("nobody", [])):
        assert [e["slug"] for e in owner.get(url("tale"), {"q": q}).json()["results"]] == found, q
    page = owner.get(url("tale"), {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    assert [e["name"] for e in owner.get(page["next"]).json()["results"]] == ["The Bell"]
    assert error_code(owner.get(url("tale"), {"kind": "monster"})) == "invalid"
    assert error_code(owner.get(url("tale"), {"scene": "zero"})) == "invalid"

    assert owner.get(url("tale", "mara-quinn")).json() == entry
    r = owner.patch(url("tale", "mara-quinn"), {"name": "Mara", "aliases": ["Mara Quinn"], "version": 1},
                    format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["name"] == "Mara" and r.json()["version"] == 2 and r.json()["slug"] == "mara-quinn"
    assert r.json()["description"] == MARA["description"]  # untouched
    # the same values again: nothing changes, no new version
    assert owner.patch(url("tale", "mara-quinn"), {"name": "Mara"}, format="json").json()["version"] == 2

    assert owner.delete(url("tale", "the-bell")).status_code == 204
    assert error_code(owner.get(url("tale", "the-bell"))) == "not_found"
    assert not BibleEntry.objects.filter(slug="the-bell").exists()


def test_names_are_unique_in_a_story_in_any_case_and_slugs_follow(tale, api):
    owner = api(tale["owner"])
    assert create(owner).status_code == 201
    r = create(owner, name="MARA   quinn", kind="lore")
    assert r.status_code == 409 and error_code(r) == "conflict" and r.json()["error"]["details"]["slug"] == "mara-quinn"
    # renamed, the slug stays; a new entry with the old name gets the next slug
    owner.patch(url("tale", "mara-quinn"), {"name": "Mara Q."}, format="json")
    r = create(owner, name="Mara Quinn!")
    assert r.status_code == 201 and r.json()["slug"] == "mara-quinn-2"
    r = owner.patch(url("tale", "mara-quinn-2"), {"name": "mara q."}, format="json")
    assert error_code(r) == "conflict"
    assert owner.post(url("tale"), {"kind": "lore", "name": "Ωμέγα"}, format="json").json()["slug"] == "ωμέγα"
    assert owner.get(url("tale", "ωμέγα")).status_code == 200
    assert owner.post(url("tale"), {"kind": "lore", "name": "?!"}, format="json").json()["slug"] == "entry"
    # an alias repeated (any case), or equal to the name, is kept once
    r = create(owner, name="Elias", aliases=["elias", "Eli", "ELI", " Old   Eli "])
    assert r.json()["aliases"] == ["Eli", "Old Eli"]


def test_progressions_resolve_by_scene(tale, api):
    owner = api(tale["owner"])
    create(owner)
    r = owner.post(url("tale", "mara-quinn", "progressions"),
                   {"from_scene": 3, "fields": {"age": "20", "scar": "left hand"}, "note": "after the storm"},
                   format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["version"] == 2 and [p["from_scene"] for p in r.json()["progressions"]] == [3]
    r = owner.post(url("tale", "mara-quinn", "progressions"),
                   {"from_scene": 7, "description": "The keeper now."}, format="json")
    seven = r.json()["progressions"][1]["id"]
    assert error_code(owner.post(url("tale", "mara-quinn", "progressions"), {"from_scene": 7, "description": "x"},
                                 format="json")) == "conflict"
    for body in ({"from_scene": 0, "description": "x"}, {"from_scene": 2}, {"from_scene": "2", "description": "x"},
                 {"description": "x"}, {"from_scene": 2, "description": "x", "extra": 1},
                 {"from_scene": 2, "fields": {"a": 1}}):
        assert error_code(owner.post(url("tale", "mara-quinn", "progressions"), body, format="json")) == "invalid", body

    def at(scene):
        return owner.get(url("tale", "mara-quinn"), {"scene": scene}).json()

    base = owner.get(url("tale", "mara-quinn")).json()
    assert base["fields"] == MARA["fields"] and "scene" not in base
    assert at(1)["fields"] == MARA["fields"] and at(1)["applied"] == []
    assert at(3)["fields"] == {**MARA["fields"], "age": "20", "scar": "left hand"}
    assert at(3)["description"] == MARA["description"]
    assert at(9)["description"] == "The keeper now." and at(9)["fields"]["scar"] == "left hand"
    assert len(at(9)["applied"]) == 2 and at(9)["scene"] == 9
    listed = owner.get(url("tale"), {"scene": 4}).json()["results"][0]
    assert listed["fields"]["age"] == "20" and listed["description"] == MARA["description"]

    assert owner.delete(url("tale", "mara-quinn", "progressions", str(seven))).status_code == 204
    assert at(9)["description"] == MARA["description"] and at(9)["version"] == 4
    assert error_code(owner.delete(url("tale", "mara-quinn", "progressions", str(seven)))) == "not_found"


def test_optimistic_concurrency(tale, api):
    owner, ed = api(tale["owner"]), api(tale["ed"])
    create(owner)
    assert ed.patch(url("tale", "mara-quinn"), {"description": "Mine.", "version": 1}, format="json").status_code == 200
    r = owner.patch(url("tale", "mara-quinn"), {"description": "Theirs.", "version": 1}, format="json")
    assert r.status_code == 409 and error_code(r) == "conflict" and r.json()["error"]["details"] == {"version": 2}
    assert owner.get(url("tale", "mara-quinn")).json()["description"] == "Mine."
    assert error_code(owner.patch(url("tale", "mara-quinn"), {"version": "2"}, format="json")) == "invalid"
    assert error_code(owner.delete(url("tale", "mara-quinn") + "?version=1")) == "conflict"
    assert owner.delete(url("tale", "mara-quinn") + "?version=2").status_code == 204


@pytest.mark.parametrize("story", ["tale", "hush"])
def test_access_rules(tale, api, story):
    owner = api(tale["owner"])
    create(owner, story=story)
    hidden = story == "hush"
    for who in ("owner", "ed", "vera", "scribe", "watcher"):  # participants read
        client = api(tale[who])
        assert client.get(url(story)).status_code == 200, who
        assert client.get(url(story, "mara-quinn")).status_code == 200, who
    outsider = api(tale["olga"])
    for r in (outsider.get(url(story)), outsider.get(url(story, "mara-quinn"))):
        assert r.status_code == (404 if hidden else 200)
    for i, who in enumerate(("owner", "ed", "scribe")):  # editors, agents with editor role, write
        client = api(tale[who])
        r = client.post(url(story), {"kind": "lore", "name": f"Rule {i}"}, format="json")
        assert r.status_code == 201, (who, r.json())
        assert client.patch(url(story, f"rule-{i}"), {"description": "x"}, format="json").status_code == 200
        assert client.post(url(story, f"rule-{i}", "progressions"), {"from_scene": 2, "description": "y"},
                           format="json").status_code == 201
    before = sorted(BibleEntry.objects.values_list("slug", "version", "description"))
    progressions = BibleProgression.objects.count()
    refused = {"vera": 403, "watcher": 403, "olga": 404 if hidden else 403}
    for who, status in refused.items():
        client = api(tale[who])
        answers = [client.post(url(story), {"kind": "lore", "name": "Intruder"}, format="json"),
                   client.patch(url(story, "mara-quinn"), {"description": "defaced"}, format="json"),
                   client.delete(url(story, "mara-quinn")),
                   client.post(url(story, "mara-quinn", "progressions"), {"from_scene": 1, "description": "z"},
                               format="json"),
                   client.delete(url(story, "rule-0", "progressions", "1"))]
        for r in answers:
            assert r.status_code == status, (who, r.status_code)
            assert error_code(r) == ("not_found" if status == 404 else "forbidden")
    assert sorted(BibleEntry.objects.values_list("slug", "version", "description")) == before
    assert BibleProgression.objects.count() == progressions
    assert api(None).get(url(story)).status_code == 401


def test_limits_are_refused_with_nothing_changed(tale, api, settings):
    settings.MYTHLINE_BIBLE_MAX_ENTRIES = 2
    settings.MYTHLINE_BIBLE_MAX_PROGRESSIONS = 1
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "write": ("100/s", 1000)}  # many refusals in a row
    owner = api(tale["owner"])
    create(owner)
    stored = owner.get(url("tale", "mara-quinn")).json()
    too_long = "x" * 121
    cases = [
        ({"name": too_long}, "invalid"), ({"name": "  "}, "invalid"), ({"name": 5}, "invalid"),
        ({"kind": "monster"}, "invalid"), ({"aliases": ["a"] * 21}, "invalid"), ({"aliases": [too_long]}, "invalid"),
        ({"aliases": "Mara"}, "invalid"), ({"aliases": [""]}, "invalid"),
        ({"description": "x" * 20_001}, "payload_too_large"), ({"description": None}, "invalid"),
        ({"fields": {f"f{i}": "v" for i in range(31)}}, "invalid"), ({"fields": {"voice": "x" * 2001}}, "invalid"),
        ({"fields": {"voice": 3}}, "invalid"), ({"fields": ["voice"]}, "invalid"), ({"fields": {"": "v"}}, "invalid"),
        ({"fields": {"k" * 65: "v"}}, "invalid"), ({"description": "nul\x00"}, "invalid"), ({"slug": "x"}, "invalid"),
    ]
    for change, code in cases:
        r = owner.patch(url("tale", "mara-quinn"), change, format="json")
        assert error_code(r) == code, (change, r.json())
        r = owner.post(url("tale"), {**MARA, "name": "Other", **change}, format="json")
        assert error_code(r) == code, (change, r.json())
    assert owner.get(url("tale", "mara-quinn")).json() == stored
    assert BibleEntry.objects.count() == 1
    # the largest allowed values pass
    r = owner.patch(url("tale", "mara-quinn"), {"description": "x" * 20_000, "aliases": [f"a{i}" for i in range(20)],
                                                "fields": {f"f{i}": "v" * 2000 for i in range(30)}}, format="json")
    assert r.status_code == 200, r.json()
    # counts: entries per story, progressions per entry (409, as documents per story)
    assert owner.post(url("tale"), {"kind": "lore", "name": "Two"}, format="json").status_code == 201
    r = owner.post(url("tale"), {"kind": "lore", "name": "Three"}, format="json")
    assert error_code(r) == "conflict" and r.json()["error"]["details"] == {"max_entries": 2}
    owner.post(url("tale", "two", "progressions"), {"from_scene": 1, "note": "n", "description": "d"}, format="json")
    r = owner.post(url("tale", "two", "progressions"), {"from_scene": 2, "description": "d"}, format="json")
    assert error_code(r) == "conflict" and r.json()["error"]["details"] == {"max_progressions": 1}
    assert BibleEntry.objects.count() == 2 and BibleProgression.objects.count() == 1
    r = owner.post(url("tale", "two", "progressions"), {"from_scene": 2, "description": "d", "note": "n" * 501},
                   format="json")
    assert error_code(r) == "invalid"


def test_an_entry_with_its_progressions_has_a_total_size(tale, api, settings):
    """What one event and one list row carry is bounded: the entry and all its progressions."""
    settings.MYTHLINE_BIBLE_MAX_ENTRY_CHARS = 1000
    owner = api(tale["owner"])
    assert error_code(owner.post(url("tale"), {"kind": "lore", "name": "Big", "description": "x" * 1000},
                                 format="json")) == "payload_too_large"
    assert owner.post(url("tale"), {"kind": "lore", "name": "Tide", "description": "x" * 500}, format="json").status_code == 201
    r = owner.post(url("tale", "tide", "progressions"), {"from_scene": 2, "description": "y" * 400}, format="json")
    assert r.status_code == 201
    r = owner.post(url("tale", "tide", "progressions"), {"from_scene": 3, "fields": {"k": "z" * 200}}, format="json")
    assert error_code(r) == "payload_too_large" and r.json()["error"]["details"] == {"max_entry_chars": 1000}
    r = owner.patch(url("tale", "tide"), {"fields": {"look": "w" * 200}}, format="json")
    assert error_code(r) == "payload_too_large"
    stored = owner.get(url("tale", "tide")).json()
    assert stored["version"] == 2 and stored["fields"] == {} and len(stored["progressions"]) == 1


def test_names_and_aliases_of_a_story_have_a_total_size(tale, api, settings):
    """What `entries_mentioned` compiles into one pattern is bounded: 409 past the cap, nothing changed."""
    settings.MYTHLINE_BIBLE_MAX_TERM_CHARS = 30
    owner = api(tale["owner"])
    assert owner.post(url("tale"), {"kind": "lore", "name": "Tide", "aliases": ["Flood"]}, format="json").status_code == 201
    r = owner.post(url("tale"), {"kind": "lore", "name": "x" * 22}, format="json")  # 9 + 22 > 30
    assert error_code(r) == "conflict" and r.json()["error"]["details"] == {"max_term_chars": 30}
    assert owner.post(url("tale"), {"kind": "lore", "name": "x" * 21}, format="json").status_code == 201
    r = owner.patch(url("tale", "tide"), {"aliases": ["Flood", "Ebb"]}, format="json")
    assert error_code(r) == "conflict" and r.json()["error"]["details"] == {"max_term_chars": 30}
    r = owner.patch(url("tale", "tide"), {"name": "Tid", "aliases": ["Flood", "E"]}, format="json")  # same total
    assert r.status_code == 200, r.json()
    assert owner.patch(url("tale", "tide"), {"description": "long " * 100}, format="json").status_code == 200
    assert [e["name"] for e in owner.get(url("tale")).json()["results"]] == ["Tid", "x" * 21]


def test_names_that_casefold_longer_are_stored(tale, api):
    """"ß" casefolds to "ss": a 120-character name may have a longer key; 201 or 400, never 500."""
    owner = api(tale["owner"])
    r = owner.post(url("tale"), {"kind": "lore", "name": "ß" * 120}, format="json")
    assert r.status_code == 201, r.json()
    assert BibleEntry.objects.get(slug=r.json()["slug"]).name_key == "ss" * 120
    assert error_code(owner.post(url("tale"), {"kind": "lore", "name": "\u1e9e" * 120}, format="json")) == "conflict"
    assert error_code(owner.post(url("tale"), {"kind": "lore", "name": "ß" * 121}, format="json")) == "invalid"
    slug = owner.post(url("tale"), {"kind": "lore", "name": "ok"}, format="json").json()["slug"]
    r = owner.patch(url("tale", slug), {"name": "ﬃ" * 120}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "ﬃ" * 120


def test_the_mcp_list_refuses_an_offset_past_the_most_entries(tale, settings):
    from bible.mcp import _list_bible
    from mythline_site.errors import Invalid

    settings.MYTHLINE_BIBLE_MAX_ENTRIES = 50
    for offset in (10**30, 51, -1):
        with pytest.raises(Invalid) as refused:
            _list_bible(tale["owner"], "tale", None, None, None, 10, offset)
        assert refused.value.details == {"offset": "0 to 50"}
    assert _list_bible(tale["owner"], "tale", None, None, None, 10, 50) == {"results": [], "next_offset": None}


def test_export_has_the_bible(tale, api):
    owner = api(tale["owner"])
    create(owner)
    owner.post(url("tale", "mara-quinn", "progressions"), {"from_scene": 2, "fields": {"age": "20"}}, format="json")
    create(owner, story="hush", name="Elias")
    r = owner.get("/api/stories/tale/export")
    export = json.loads(b"".join(r.streaming_content))
    assert [e["slug"] for e in export["bible"]] == ["mara-quinn"]
    assert export["bible"][0]["progressions"][0]["fields"] == {"age": "20"}
    assert export["bible"][0] == owner.get(url("tale", "mara-quinn")).json()
