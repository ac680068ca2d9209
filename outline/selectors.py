"""Reads of the outline: scenes in order, each with its document range mapped to the document's
current revision (docs/protocol.md, "The outline").

A range is stored in UTF-16 code units of its document at `range_revision`. On read it is mapped
through every change logged since (the co-editing change sets, stories/changesets.py), so it
follows the text as people edit: text inserted before it moves it, text typed inside it grows it,
text inserted exactly at either edge stays outside it. When the text it covered is deleted (or
replaced as a whole) the range is `gone`: collapsed to the place where the text was. An empty
range (a point: where a scene is to be written) moves with the text and is never gone. The
answer counts characters (code points) of the current text, as document edits do.
"""
from stories.changesets import ChangeSet, Utf16Index, map_positions
from stories.documents import iso
from stories.models import DocumentChange, Story

from outline.models import OutlineScene


def _json_length(changes: list) -> int:
    """The length (UTF-16 units) of the document a change set in JSON form applies to."""
    return sum(part if isinstance(part, int) else part[0] for part in changes)


def map_ranges(cs: ChangeSet, ranges: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
    """Each (start, end, gone) of `ranges` (UTF-16 units) mapped through one change set, all in
    one walk over its sections (stories.changesets.map_positions). Insertions at the edges stay
    outside a range; a point sticks before them; a range whose every character was deleted (or
    replaced at once) collapses to where its text was and is gone."""
    positions = []
    for start, end, _ in ranges:
        positions += [(start, -1)] if start == end else [(start, 1), (end, -1)]
    mapped = iter(map_positions(cs, positions))
    out = []
    for start, end, gone in ranges:
        if start == end:
            point = next(mapped)
            out.append((point, point, gone))
            continue
        new_start, new_end = next(mapped), next(mapped)
        if new_start >= new_end:  # every character it covered was deleted (or replaced at once)
            out.append((min(new_start, new_end),) * 2 + (True,))
        else:
            out.append((new_start, new_end, gone))
    return out


def map_range(changesets, start: int, end: int, gone: bool = False) -> tuple[int, int, bool]:
    """(start, end) in UTF-16 units mapped through `changesets` (in order), and whether the text
    it covered is gone (see `map_ranges`)."""
    for cs in changesets:
        [(start, end, gone)] = map_ranges(cs, [(start, end, gone)])
    return start, end, gone


def _changesets(document_id: int, after: int, upto: int):
    rows = (DocumentChange.objects.filter(document_id=document_id, revision__gt=after, revision__lte=upto)
            .order_by("revision").values_list("revision", "changes").iterator(chunk_size=500))
    length = None
    for revision, changes in rows:
        if length is None:
            length = _json_length(changes)
        cs = ChangeSet.from_json(changes, length)
        length = cs.new_length
        yield revision, cs


# A read that maps a range through this many changes or more stores it re-anchored at the current
# revision, so the next read maps only what changed since: the cost of reading an outline stays
# bounded by the changes since the last read, not since the range was set. Small, so no read maps
# through more than 9 change sets (each up to MYTHLINE_DOC_MAX_PUSH_CHANGES changes) again and
# again; not 1, so a read during steady typing does not rewrite every scene's row each time.
REANCHOR_AFTER = 10


def _reanchor(scene: OutlineScene, start: int, end: int, gone: bool, revision: int) -> None:
    """Store the mapped range at `revision` (the same text, so no new version and no event); a
    write that changed the range meanwhile wins (the update matches the revision read)."""
    OutlineScene.objects.filter(pk=scene.pk, document_id=scene.document_id, range_revision=scene.range_revision).update(
        range_from=start, range_to=end, range_revision=revision, range_gone=gone)
    scene.range_from, scene.range_to, scene.range_revision, scene.range_gone = start, end, revision, gone


def mapped_ranges(scenes: list[OutlineScene]) -> dict[int, dict]:
    """{scene id: range json} for the scenes with a range, each mapped to its document's current
    revision. One pass over each document's change log, shared by all its scenes, and one walk
    over each change set for all of them (its size, not scenes x its size)."""
    by_doc: dict[int, list[OutlineScene]] = {}
    for scene in scenes:
        if scene.document_id is not None and scene.range_revision is not None:
            by_doc.setdefault(scene.document_id, []).append(scene)
    out = {}
    for doc_scenes in by_doc.values():
        doc = doc_scenes[0].document
        positions = {s.pk: (s.range_from, s.range_to, s.range_gone) for s in doc_scenes}
        oldest = min(s.range_revision for s in doc_scenes)
        if oldest < doc.revision:
            for revision, cs in _changesets(doc.pk, oldest, doc.revision):
                behind = [s.pk for s in doc_scenes if s.range_revision < revision]
                for pk, mapped in zip(behind, map_ranges(cs, [positions[pk] for pk in behind]), strict=True):
                    positions[pk] = mapped
        index = Utf16Index(doc.text)
        for s in doc_scenes:
            start, end, gone = positions[s.pk]
            if doc.revision - s.range_revision >= REANCHOR_AFTER:
                _reanchor(s, start, end, gone, doc.revision)
            out[s.pk] = {"document": doc.name, "from": index.to_index(start), "to": index.to_index(end),
                         "revision": doc.revision, "gone": gone}
    return out


def scene_json(scene: OutlineScene, range_json: dict | None = None, *, story_slug: str | None = None) -> dict:
    return {"id": scene.pk, "story": story_slug or scene.story.slug, "position": scene.position,
            "title": scene.title, "summary": scene.summary, "beats": scene.beats, "status": scene.status,
            "pov": scene.pov, "characters": scene.characters, "range": range_json,
            "created_by": scene.created_by.username, "updated_by": scene.updated_by.username,
            "created_at": iso(scene.created_at), "updated_at": iso(scene.updated_at), "version": scene.version}


def _scenes(qs):
    return list(qs.select_related("story", "created_by", "updated_by", "document").order_by("position"))


def outline_json(story: Story) -> list[dict]:
    """The story's outline, in order, ranges mapped to the current text."""
    scenes = _scenes(OutlineScene.objects.filter(story=story))
    ranges = mapped_ranges(scenes)
    return [scene_json(s, ranges.get(s.pk), story_slug=story.slug) for s in scenes]


def scene_detail_json(scene: OutlineScene) -> dict:
    scene = _scenes(OutlineScene.objects.filter(pk=scene.pk))[0]
    return scene_json(scene, mapped_ranges([scene]).get(scene.pk))


def get_scene(story: Story, scene_id) -> OutlineScene:
    """The scene `scene_id` of `story`, or NotFound (an id of another story's scene included)."""
    from mythline_site.errors import NotFound

    scene = None
    if isinstance(scene_id, int) and not isinstance(scene_id, bool) or (isinstance(scene_id, str)
                                                                        and scene_id.isdigit()
                                                                        and len(scene_id) <= 18):
        scene = OutlineScene.objects.filter(story=story, pk=int(scene_id)).first()
    if scene is None:
        raise NotFound(f"No scene {scene_id} in the outline of story '{story.slug}'.")
    return scene
