"""Reads for document versions: named revisions, and comparisons of two revisions of a document
or of a fork with its parent (docs/versions.md)."""
from messaging.selectors import parse_int
from mythline_site.errors import Invalid, NotFound
from stories.documents import iso, text_at
from stories.models import Document, Story
from versions import diff as difflib_words
from versions.models import DocumentVersion


def version_json(version: DocumentVersion, *, document_name: str | None = None) -> dict:
    return {"id": version.pk, "document": document_name or version.document.name, "revision": version.revision,
            "name": version.name, "note": version.note, "created_by": version.created_by.username,
            "created_at": iso(version.created_at)}


def versions_of(doc: Document):
    """The document's named revisions, newest revision first."""
    return DocumentVersion.objects.filter(document=doc).select_related("created_by").order_by("-revision", "-id")


def get_version(doc: Document, version_id) -> DocumentVersion:
    if isinstance(version_id, bool) or not isinstance(version_id, int):
        raise Invalid("'version' must be a version's id (an integer).", details={"version": "must be an integer"})
    version = versions_of(doc).filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"No version {version_id} of document '{doc.name}'.")
    version.document = doc
    return version


def story_versions_json(story: Story) -> list[dict]:
    """Every named revision of every document of the story (the story's export)."""
    rows = (DocumentVersion.objects.filter(document__story=story).select_related("document", "created_by")
            .order_by("document__name", "revision", "id"))
    return [version_json(v) for v in rows]


# --- compare ----------------------------------------------------------------------------------------

def check_revision(doc: Document, revision, what: str) -> int:
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise Invalid(f"'{what}' must be a revision number (an integer).", details={what: "must be an integer"})
    if not 0 <= revision <= doc.revision:
        raise Invalid(f"'{what}' must be a revision from 0 to {doc.revision}.", details={what: "out of range"})
    return revision


def _side(doc: Document, revision: int, text: str) -> dict:
    return {"document": doc.name, "revision": revision, "current_revision": doc.revision, "length": len(text)}


def _compared(doc_a: Document, rev_a: int, text_a: str, doc_b: Document, rev_b: int, text_b: str) -> dict:
    ops = difflib_words.diff(text_a, text_b)
    return {"from": _side(doc_a, rev_a, text_a), "to": _side(doc_b, rev_b, text_b), "diff": ops,
            "stats": difflib_words.stats(ops)}


def compare_revisions(doc: Document, from_revision, to_revision=None) -> dict:
    """The diff from the text at `from_revision` to the text at `to_revision` (default: current)."""
    from_revision = check_revision(doc, from_revision, "from")
    to_revision = doc.revision if to_revision is None else check_revision(doc, to_revision, "to")
    a, b = text_at(doc, from_revision), text_at(doc, to_revision)
    return _compared(doc, from_revision, a, doc, to_revision, b)


def compare_with_parent(doc: Document) -> dict:
    """The diff from the current text of the document `doc` was forked from to `doc`'s current text."""
    if doc.forked_from_id is None:
        raise Invalid(f"Document '{doc.name}' is not a fork: it has no parent to compare with.",
                      details={"parent": "not a fork"})
    parent = Document.objects.filter(pk=doc.forked_from_id).first()
    parent.story = doc.story
    a, b = text_at(parent, parent.revision), text_at(doc, doc.revision)
    return _compared(parent, parent.revision, a, doc, doc.revision, b)


def compare_query(doc: Document, params) -> dict:
    """`?from=R1&to=R2` (`to` default the current revision), or `?parent=1` for a fork (REST)."""
    unknown = sorted(set(params) - {"from", "to", "parent"})
    if unknown:
        raise Invalid("Unknown query parameters.", details={k: "unknown parameter" for k in unknown})
    parent = params.get("parent")
    if parent is not None:
        if parent not in ("1", "true"):
            raise Invalid("'parent' is 1 (compare the fork with its parent).", details={"parent": "must be 1"})
        if "from" in params or "to" in params:
            raise Invalid("Send either 'parent=1' or 'from' (and 'to'), not both.", details={"parent": "with from/to"})
        return compare_with_parent(doc)
    if params.get("from") in (None, ""):
        raise Invalid("'from' is required: the revision to compare from (or parent=1 for a fork).",
                      details={"from": "required"})
    return compare_revisions(doc, parse_int(params.get("from"), "from"),
                             parse_int(params.get("to"), "to"))
