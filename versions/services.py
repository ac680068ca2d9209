"""Writes for document versions (docs/versions.md). REST, MCP and the admin call these; every value
is checked here. Naming, renaming and deleting a version lock the document's row (so the cap and
the names cannot race) and send a `document.version.*` story event after the commit. A restore is
one ordinary change made through `stories.documents.document_edit`, as any REST edit: the log is
never rewritten, and every open editor receives it as a `doc.change`."""
import os

from django.conf import settings
from django.db import IntegrityError, transaction

from messaging import events
from mythline_site.errors import Conflict, Invalid, NotFound, PayloadTooLarge
from mythline_site.parsers import has_nul, has_surrogate
from stories.documents import change_json, document_edit, text_at
from stories.models import Document
from versions.diff import common_prefix, common_suffix
from versions.models import DocumentVersion
from versions.selectors import check_revision, get_version, version_json

MAX_NAME_CHARS = 100
MAX_NOTE_CHARS = 2000
DEFAULT_MAX_VERSIONS = 200


def max_versions() -> int:
    return int(getattr(settings, "MYTHLINE_DOC_MAX_VERSIONS", os.environ.get("MYTHLINE_DOC_MAX_VERSIONS",
                                                                            DEFAULT_MAX_VERSIONS)))


# --- checks ----------------------------------------------------------------------------------------

def _text(value, what: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise Invalid(f"'{what}' must be text.", details={what: "must be a string"})
    if has_nul(value) or has_surrogate(value):
        raise Invalid(f"'{what}' may not hold NUL or unpaired surrogates.", details={what: "not text"})
    if len(value) > max_chars:
        raise Invalid(f"'{what}' holds at most {max_chars} characters.", details={what: f"at most {max_chars} characters"})
    return value


def clean_name(value) -> str:
    """1-100 characters, not blank; runs of spaces become one."""
    name = " ".join(_text(value, "name", 10 * MAX_NAME_CHARS).split())
    if not name:
        raise Invalid("'name' may not be empty.", details={"name": "may not be blank"})
    if len(name) > MAX_NAME_CHARS:
        raise Invalid(f"'name' holds at most {MAX_NAME_CHARS} characters.",
                      details={"name": f"at most {MAX_NAME_CHARS} characters"})
    return name


def clean_note(value) -> str:
    return _text("" if value is None else value, "note", MAX_NOTE_CHARS)


def _name_taken(doc: Document, name: str, exclude_pk=None) -> Conflict | None:
    qs = DocumentVersion.objects.filter(document=doc, name_key=name.casefold())
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    other = qs.values_list("pk", "revision").first()
    if other is None:
        return None
    return Conflict(f"Document '{doc.name}' already has a version named '{name}' (r{other[1]}).",
                    details={"name": "taken", "id": other[0]})


def _lock(doc: Document) -> int:
    """Locks the document's row; its current revision (404 if it is gone)."""
    revision = Document.objects.select_for_update().filter(pk=doc.pk).values_list("revision", flat=True).first()
    if revision is None:
        raise NotFound("The document no longer exists.")
    return revision


def _publish(doc: Document, event: str, data: dict) -> None:
    events.publish_story_event(doc.story, event, data)


# --- versions --------------------------------------------------------------------------------------

def version_create(*, doc: Document, by, name, revision=None, note="") -> DocumentVersion:
    """Names `revision` (default: the current one) of `doc`. 409 `conflict` for a name the document
    already has (any case) or past MYTHLINE_DOC_MAX_VERSIONS versions."""
    name = clean_name(name)
    note = clean_note(note)
    if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int)):
        raise Invalid("'revision' must be a revision number (an integer).", details={"revision": "must be an integer"})
    try:
        with transaction.atomic():
            doc.revision = _lock(doc)
            revision = doc.revision if revision is None else check_revision(doc, revision, "revision")
            limit = max_versions()
            if DocumentVersion.objects.filter(document=doc).count() >= limit:
                raise Conflict(f"Document '{doc.name}' already has {limit} named versions, the most a document may "
                               "have: delete one first.", details={"max_versions": limit})
            if taken := _name_taken(doc, name):
                raise taken
            version = DocumentVersion.objects.create(document=doc, revision=revision, name=name,
                                                     name_key=name.casefold(), note=note, created_by=by)
            version.document = doc
            _publish(doc, "document.version.created", version_json(version))
    except IntegrityError:
        raise Conflict(f"Document '{doc.name}' already has a version named '{name}'.", details={"name": "taken"}) from None
    return version


def version_update(*, version: DocumentVersion, by, **changes) -> DocumentVersion:
    """Renames a version and/or changes its note; the revision it names never changes."""
    unknown = sorted(set(changes) - {"name", "note"})
    if unknown:
        raise Invalid("Only 'name' and 'note' change; the revision a version names does not.",
                      details={k: "unknown field" for k in unknown})
    doc = version.document
    name = clean_name(changes["name"]) if "name" in changes else None
    note = clean_note(changes["note"]) if "note" in changes else None
    try:
        with transaction.atomic():
            _lock(doc)
            stored = DocumentVersion.objects.select_related("created_by").filter(pk=version.pk, document=doc).first()
            if stored is None:
                raise NotFound(f"No version {version.pk} of document '{doc.name}'.")
            stored.document = doc
            changed = []
            if name is not None and name != stored.name:
                if taken := _name_taken(doc, name, exclude_pk=stored.pk):
                    raise taken
                stored.name, stored.name_key = name, name.casefold()
                changed += ["name", "name_key"]
            if note is not None and note != stored.note:
                stored.note = note
                changed.append("note")
            if changed:
                stored.save(update_fields=changed)
                _publish(doc, "document.version.updated", version_json(stored))
    except IntegrityError:
        raise Conflict(f"Document '{doc.name}' already has a version named '{name}'.", details={"name": "taken"}) from None
    return stored


def version_delete(*, version: DocumentVersion, by=None) -> None:
    """Forgets the name; the revision it named stays in the log."""
    doc = version.document
    with transaction.atomic():
        _lock(doc)
        deleted, _ = DocumentVersion.objects.filter(pk=version.pk, document=doc).delete()
        if not deleted:
            raise NotFound(f"No version {version.pk} of document '{doc.name}'.")
        _publish(doc, "document.version.deleted", {"id": version.pk, "document": doc.name, "name": version.name})


# --- restore ---------------------------------------------------------------------------------------

def restore(*, doc: Document, by, revision=None, version=None, via: str = "rest") -> dict:
    """Makes the text of `revision` (or of the version with id `version`) the current text again, as
    ONE new change appended to the log (the smallest single replacement that turns the current
    text into the old one), through `document_edit` like any REST edit: open editors receive it as
    a `doc.change`. Older revisions are untouched. When the text already is that text, nothing is
    written (`"changed": false`)."""
    if (revision is None) == (version is None):
        raise Invalid("Send exactly one of 'revision' and 'version'.", details={"revision": "or version required"})
    named = None
    if version is not None:
        named = get_version(doc, version)
        revision = named.revision
    current = Document.objects.filter(pk=doc.pk).values_list("revision", flat=True).first()
    if current is None:
        raise NotFound("The document no longer exists.")
    doc.revision = current
    revision = check_revision(doc, revision, "revision")
    old = text_at(doc, revision)  # a past revision never changes: rebuilt before the lock
    with transaction.atomic():
        # The row lock is held until the change is appended: nothing lands in between, so the
        # text after the restore is exactly the old text.
        locked = Document.objects.select_for_update().select_related("story").filter(pk=doc.pk).first()
        if locked is None:
            raise NotFound("The document no longer exists.")
        text = locked.text
        answer = {"document": locked.name, "restored_revision": revision,
                  "version": version_json(named) if named is not None else None}
        if text == old:
            return {**answer, "revision": locked.revision, "changed": False, "change": None}
        start = common_prefix(text, old)
        end = common_suffix(text, old, min(len(text), len(old)) - start)
        insert = old[start:len(old) - end]
        limit = settings.MYTHLINE_DOC_MAX_INSERT_CHARS
        if len(insert) > limit:
            raise PayloadTooLarge(f"Restoring r{revision} would put back {len(insert)} characters in one change; "
                                  f"a change inserts at most {limit}.",
                                  details={"inserted": len(insert), "max_insert_chars": limit})
        body = {"base_revision": locked.revision, "edits": [{"from": start, "to": len(text) - end, "insert": insert}]}
        change = document_edit(doc=locked, author=by, body=body, via=via)
    return {**answer, "revision": change.revision, "changed": True, "change": change_json(change, by)}
