"""What an outline read costs: every scene's range is mapped through each change since it was
anchored in ONE walk per change set for all the document's scenes (not one per scene), and a read
that lags REANCHOR_AFTER or more revisions stores the ranges re-anchored, so the next read maps
nothing (docs/protocol.md, "The outline")."""
import pytest

from outline import selectors
from outline.models import OutlineScene
from stories import changesets
from stories.models import DocumentChange

from .test_api import URL, edit, tale, text_of  # noqa: F401  (tale is a fixture)

pytestmark = pytest.mark.django_db

SCENES = 500


def reference(doc_id, start, end, after, upto):
    """The mapping as it was done scene by scene with map_pos (the behaviour to keep)."""
    gone = False
    rows = DocumentChange.objects.filter(document_id=doc_id, revision__gt=after, revision__lte=upto)
    length = None
    for changes in rows.order_by("revision").values_list("changes", flat=True):
        length = selectors._json_length(changes) if length is None else length
        cs = changesets.ChangeSet.from_json(changes, length)
        length = cs.new_length
        if start == end:
            start = end = cs.map_pos(start, -1)
            continue
        new_start, new_end = cs.map_pos(start, 1), cs.map_pos(end, -1)
        if new_start >= new_end:
            start = end = min(new_start, new_end)
            gone = True
        else:
            start, end = new_start, new_end
    return start, end, gone


@pytest.fixture
def walks(monkeypatch):
    """Counts the walks over change sets an outline read makes (real functions, only counted)."""
    count = {"map_positions": 0, "map_pos": 0}
    real_many, real_one = changesets.map_positions, changesets.ChangeSet.map_pos

    def many(cs, positions):
        count["map_positions"] += 1
        return real_many(cs, positions)

    def one(self, *args, **kwargs):
        count["map_pos"] += 1
        return real_one(self, *args, **kwargs)

    monkeypatch.setattr(selectors, "map_positions", many)
    monkeypatch.setattr(changesets.ChangeSet, "map_pos", one)
    return count


def test_500_scenes_through_many_changes_cost_one_walk_per_change_set(api, tale, walks):  # noqa: F811
    alice = api(tale["alice"])
    text = "".join(f"[{n:03d} scene text here.]" for n in range(SCENES))
    rev = edit(alice, [{"from": 0, "insert": text}], 0)
    doc = tale["story"].documents.get(name="main")
    width = len(text) // SCENES
    scenes = []
    for n in range(SCENES):
        at = n * width
        start, end = (at + 5, at + 5) if n % 7 == 0 else (at + 1, at + width - 1)  # some points
        scenes.append(OutlineScene(story=tale["story"], position=n + 1, title=f"S{n}", document=doc,
                                   range_from=start, range_to=end, range_revision=rev,
                                   created_by=tale["alice"], updated_by=tale["alice"]))
    OutlineScene.objects.bulk_create(scenes)
    anchored = rev
    # One scene whose whole text is deleted: gone.
    rev = edit(alice, [{"from": 250 * width + 1, "to": 251 * width - 1}], rev)
    changes = 12  # > REANCHOR_AFTER: each a push of many changes all over the text
    for k in range(changes):
        current = len(text_of(alice))
        step = current // 40
        edits = [{"from": p, "to": p + (2 if k % 3 == 0 else 0), "insert": "ab"[k % 2] * (k % 4)}
                 for p in range(k, current - 3, step)]
        edits = [e for e in edits if e["insert"] or e["to"] > e["from"]]
        rev = edit(alice, edits, rev)
    changes += 1

    walks.update(map_positions=0, map_pos=0)
    r = alice.get(URL)
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == SCENES
    assert walks == {"map_positions": changes, "map_pos": 0}  # was SCENES x changes x 2 map_pos

    final = text_of(alice)
    by_id = {s.pk: s for s in scenes}
    assert any(s["range"]["gone"] for s in results)
    for got in results:
        scene = by_id[got["id"]]
        start, end, gone = reference(doc.pk, scene.range_from, scene.range_to, anchored, rev)
        assert (got["range"]["from"], got["range"]["to"], got["range"]["gone"]) == (start, end, gone)
        assert got["range"]["revision"] == rev and len(final) >= end
    # Re-anchored (13 >= REANCHOR_AFTER behind): the next read walks no change set at all.
    assert set(OutlineScene.objects.values_list("range_revision", flat=True)) == {rev}
    walks.update(map_positions=0)
    again = alice.get(URL).json()["results"]
    assert [s["range"] for s in again] == [s["range"] for s in results]
    assert walks["map_positions"] == 0 and {s["version"] for s in again} == {1}


def test_a_read_lagging_less_than_reanchor_after_maps_and_stores_nothing(api, tale, walks):  # noqa: F811
    alice = api(tale["alice"])
    rev = edit(alice, [{"from": 0, "insert": "The storm broke."}], 0)
    r = alice.post(URL, {"title": "Storm", "range": {"document": "main", "from": 4, "to": 9}}, format="json")
    scene_id = r.json()["id"]
    for _ in range(selectors.REANCHOR_AFTER - 1):
        rev = edit(alice, [{"from": 0, "insert": ">"}], rev)
    walks.update(map_positions=0)
    rng = alice.get(f"{URL}/{scene_id}").json()["range"]
    assert text_of(alice)[rng["from"]:rng["to"]] == "storm"
    assert walks["map_positions"] == selectors.REANCHOR_AFTER - 1
    assert OutlineScene.objects.get(pk=scene_id).range_revision == 1
    rev = edit(alice, [{"from": 0, "insert": ">"}], rev)
    rng = alice.get(f"{URL}/{scene_id}").json()["range"]
    assert text_of(alice)[rng["from"]:rng["to"]] == "storm"
    assert OutlineScene.objects.get(pk=scene_id).range_revision == rev
