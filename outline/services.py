"""Writes of the outline (docs/protocol.md, "The outline").

Every write locks the story's row, checks under the lock that the caller still may write (owner
or editor: a write racing a demotion is refused), keeps positions dense (1..N), and publishes an
`outline.scene.*` story event after the commit. Values are checked here, so REST, MCP and the
admin refuse the same things with the same words.
"""
from django.conf import settings
from django.db import transaction
from django.db.models import F

from messaging import events
from mythline_site.errors import Conflict, Forbidden, Invalid, one_of
from outline import selectors
from outline.models import OutlineScene
from outline.selectors import map_range, scene_json
from stories.changesets import index_to_utf16
from stories.documents import WRITER_ROLES, text_at
from stories.models import Document, Participant, Story

TITLE_MAX = 200
SUMMARY_MAX = 10_000
BEAT_MAX = 1_000
NAME_MAX = 200
CHARACTERS_MAX = 100
FIELDS = ("title", "summary", "beats", "status", "pov", "characters", "range")
STATUSES = list(OutlineScene.Status.values)


# --- checks -------------------------------------------------------------------------------------

def _int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"'{name}' must be an integer.", details={name: "must be an integer"})
    return value


def _text(value, name: str, limit: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid(f"'{name}' must be a string.", details={name: "must be a string"})
    if "\x00" in value:
        raise Invalid(f"'{name}' may not contain the NUL character (\\u0000).", details={name: "contains NUL"})
    if required and not value.strip():
        raise Invalid(f"'{name}' may not be blank.", details={name: "may not be blank"})
    if len(value) > limit:
        raise Invalid(f"'{name}' holds at most {limit} characters.", details={name: f"at most {limit} characters"})
    return value


def _strings(value, name: str, *, count: int, each: int) -> list[str]:
    if not isinstance(value, list):
        raise Invalid(f"'{name}' must be a list of strings.", details={name: "must be a list of strings"})
    if len(value) > count:
        raise Invalid(f"'{name}' holds at most {count} items; this one has {len(value)}.",
                      details={name: f"at most {count} items"})
    return [_text(item, f"{name}[{i}]", each, required=True) for i, item in enumerate(value)]


def _range(story: Story, value) -> tuple[Document, int, int, int] | None:
    """A range given as {"document", "from", "to", "revision"?} (characters of the document's text
    at `revision`, default the current one), in UTF-16 units mapped to the current revision."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("'range' must be an object {document, from, to, revision} or null.",
                      details={"range": "must be an object or null"})
    unknown = sorted(set(value) - {"document", "from", "to", "revision"})
    if unknown:
        raise Invalid("'range' has unknown fields.", details={f"range.{k}": "unknown field" for k in unknown})
    name = value.get("document")
    if not isinstance(name, str):
        raise Invalid("'range.document' must be a document's name.", details={"range.document": "must be a string"})
    doc = Document.objects.filter(story=story, name=name).first()
    if doc is None:
        raise Invalid(f"No document '{name}' in story '{story.slug}'.", details={"range.document": "no such document"})
    start = _int(value.get("from"), "range.from")
    end = _int(value.get("to", start), "range.to")
    revision = _int(value.get("revision", doc.revision), "range.revision")
    if not 0 <= revision <= doc.revision:
        raise Invalid(f"'range.revision' must be from 0 to {doc.revision}.", details={"range.revision": "out of range"})
    lag = settings.MYTHLINE_DOC_MAX_LAG
    if doc.revision - revision > lag:
        raise Conflict(f"'range.revision' {revision} is more than {lag} revisions behind the current revision "
                       f"{doc.revision}: read the document again.",
                       details={"revision": doc.revision, "max_lag": lag})
    text = doc.text if revision == doc.revision else text_at(doc, revision)
    if not 0 <= start <= end <= len(text):
        raise Invalid(f"The range must have 0 <= from <= to <= {len(text)} (the text's length at revision "
                      f"{revision}).", details={"range": "out of the text"})
    start16, end16 = index_to_utf16(text, start), index_to_utf16(text, end)
    if revision < doc.revision:
        changesets = [cs for _, cs in selectors._changesets(doc.pk, revision, doc.revision)]
        start16, end16, gone = map_range(changesets, start16, end16)
        if gone:
            raise Conflict(f"The text of this range was deleted after revision {revision}; read the document "
                           "again.", details={"revision": doc.revision})
    return doc, start16, end16, doc.revision


def _clean(story: Story, data, *, creating: bool) -> dict:
    """The scene fields of `data`, checked; `range` as (doc, from, to, revision) or None."""
    if not isinstance(data, dict):
        raise Invalid("The body must be a JSON object.")
    out = {}
    if creating and "title" not in data:
        raise Invalid("A scene needs a 'title'.", details={"title": "required"})
    if "title" in data:
        out["title"] = _text(data["title"], "title", TITLE_MAX, required=True).strip()
    if "summary" in data:
        out["summary"] = _text(data["summary"], "summary", SUMMARY_MAX)
    if "beats" in data:
        out["beats"] = _strings(data["beats"], "beats", count=settings.MYTHLINE_OUTLINE_MAX_BEATS, each=BEAT_MAX)
    if "status" in data:
        if data["status"] not in STATUSES:
            raise Invalid(f"'status' {one_of(STATUSES)}.", details={"status": one_of(STATUSES)})
        out["status"] = data["status"]
    if "pov" in data:
        out["pov"] = _text("" if data["pov"] is None else data["pov"], "pov", NAME_MAX)
    if "characters" in data:
        out["characters"] = _strings(data["characters"], "characters", count=CHARACTERS_MAX, each=NAME_MAX)
    if "range" in data:
        out["range"] = _range(story, data["range"])
    return out


def _differs(scene: OutlineScene, name: str, value) -> bool:
    if name != "range":
        return getattr(scene, name) != value
    if value is None:
        return scene.document_id is not None
    doc, start, end, revision = value
    stored = (scene.document_id, scene.range_from, scene.range_to, scene.range_revision, scene.range_gone)
    return stored != (doc.pk, start, end, revision, False)


def _apply(scene: OutlineScene, fields: dict) -> None:
    for name, value in fields.items():
        if name == "range":
            doc, start, end, revision = value or (None, None, None, None)
            scene.document, scene.range_from, scene.range_to, scene.range_revision = doc, start, end, revision
            scene.range_gone = False
        else:
            setattr(scene, name, value)


# --- locking and positions ----------------------------------------------------------------------

def _lock(story: Story, by) -> int:
    """Lock the story's row (serializes every outline write of the story); check the caller may
    still write; return the number of scenes."""
    Story.objects.select_for_update().filter(pk=story.pk).values_list("pk", flat=True).first()
    if not Participant.objects.filter(story_id=story.pk, user_id=by.pk, role__in=WRITER_ROLES).exists():
        raise Forbidden("Only editors and the owner may change this story's outline.")
    return OutlineScene.objects.filter(story=story).count()


def _shift(story: Story, low: int, high: int | None, by: int) -> None:
    """Move the scenes at positions low..high (high None: to the end) by `by` places. Two updates
    through negative positions, so no row ever takes a place another still holds (the unique
    (story, position) constraint is checked row by row)."""
    qs = OutlineScene.objects.filter(story=story, position__gte=low)
    if high is not None:
        qs = qs.filter(position__lte=high)
    qs.update(position=-(F("position") + by))
    OutlineScene.objects.filter(story=story, position__lt=0).update(position=-F("position"))


def _position(value, count: int) -> int:
    position = _int(value, "position")
    if not 1 <= position <= max(count, 1):
        raise Invalid(f"'position' must be from 1 to {max(count, 1)}.", details={"position": f"from 1 to {max(count, 1)}"})
    return position


def _check_version(scene: OutlineScene, version) -> None:
    if version is None:
        return
    if _int(version, "version") != scene.version:
        raise Conflict(f"Scene {scene.pk} is at version {scene.version}, not {version}: someone changed it; read it "
                       "again and redo your change.", details={"version": scene.version})


# --- writes -------------------------------------------------------------------------------------

def scene_create(*, story: Story, by, data: dict) -> OutlineScene:
    """A new scene, appended or inserted at `data["position"]` (1..N+1)."""
    if not isinstance(data, dict):
        raise Invalid("The body must be a JSON object.")
    unknown = sorted(set(data) - set(FIELDS) - {"position"})
    if unknown:
        raise Invalid("The body has unknown fields.", details={k: "unknown field" for k in unknown})
    fields = _clean(story, data, creating=True)
    limit = settings.MYTHLINE_OUTLINE_MAX_SCENES
    with transaction.atomic():
        count = _lock(story, by)
        if count >= limit:
            raise Conflict(f"Story '{story.slug}' already has {limit} scenes in its outline, the most it may hold.",
                           details={"max_scenes": limit})
        position = count + 1 if data.get("position") is None else _position(data["position"], count + 1)
        if position <= count:
            _shift(story, position, None, 1)
        scene = OutlineScene(story=story, position=position, created_by=by, updated_by=by)
        _apply(scene, fields)
        scene.save()
        body = selectors.scene_detail_json(scene)
        events.publish_story_event(story, "outline.scene.created", {"scene": body})
    return scene


def scene_update(*, scene: OutlineScene, by, data: dict) -> OutlineScene:
    """Change some fields of a scene; with `version`, only if nobody changed it since (409)."""
    if not isinstance(data, dict):
        raise Invalid("The body must be a JSON object.")
    unknown = sorted(set(data) - set(FIELDS) - {"version"})
    if unknown:
        details = {k: "unknown field" for k in unknown}
        if "position" in unknown:
            details["position"] = "move a scene with POST .../move"
        raise Invalid("The body has unknown fields.", details=details)
    story = scene.story
    fields = _clean(story, data, creating=False)
    with transaction.atomic():
        _lock(story, by)
        scene = _fresh(scene)
        _check_version(scene, data.get("version"))
        fields = {name: value for name, value in fields.items() if _differs(scene, name, value)}
        if not fields:
            return scene  # a change that changes nothing: same version, no event
        _apply(scene, fields)
        scene.version += 1
        scene.updated_by = by
        scene.save()
        body = selectors.scene_detail_json(scene)
        events.publish_story_event(story, "outline.scene.updated", {"scene": body, "fields": sorted(fields)})
    return scene


def scene_move(*, scene: OutlineScene, by, position, version=None) -> OutlineScene:
    """Move a scene to `position` (1..N); the scenes between shift by one place."""
    story = scene.story
    with transaction.atomic():
        count = _lock(story, by)
        scene = _fresh(scene)
        _check_version(scene, version)
        new = _position(position, count)
        old = scene.position
        if new != old:
            OutlineScene.objects.filter(pk=scene.pk).update(position=0)
            if new < old:
                _shift(story, new, old - 1, 1)
            else:
                _shift(story, old + 1, new, -1)
            scene.position = new
            scene.version += 1
            scene.updated_by = by
            scene.save(update_fields=["position", "version", "updated_by", "updated_at"])
            events.publish_story_event(story, "outline.scene.moved", {
                "id": scene.pk, "from_position": old, "position": new, "version": scene.version,
                "updated_by": by.username})
    return scene


def scene_delete(*, scene: OutlineScene, by, version=None) -> None:
    story = scene.story
    with transaction.atomic():
        _lock(story, by)
        scene = _fresh(scene)
        _check_version(scene, version)
        position, pk = scene.position, scene.pk
        scene.delete()
        _shift(story, position + 1, None, -1)
        events.publish_story_event(story, "outline.scene.deleted", {"id": pk, "position": position,
                                                                     "deleted_by": by.username})


def _fresh(scene: OutlineScene) -> OutlineScene:
    """The scene as stored now (under the story's lock), or NotFound when it was deleted meanwhile."""
    fresh = OutlineScene.objects.select_related("story", "document").filter(pk=scene.pk).first()
    if fresh is None:
        from mythline_site.errors import NotFound

        raise NotFound(f"Scene {scene.pk} was deleted.")
    return fresh


__all__ = ["scene_create", "scene_update", "scene_move", "scene_delete", "scene_json"]
