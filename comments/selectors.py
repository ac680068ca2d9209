"""Reads of comments: a document's threads and one thread, anchors moved to the current text
(docs/protocol.md, "Comments")."""
from comments import services
from comments.models import CommentThread
from mythline_site.errors import Invalid, NotFound
from stories.changesets import Utf16Index
from stories.models import Document


def _threads(doc: Document):
    return (CommentThread.objects.filter(document=doc).select_related("created_by", "resolved_by")
            .prefetch_related("comments__author"))


def get_thread(doc: Document, thread_id) -> CommentThread:
    """The thread `thread_id` of `doc` moved to the current text, or NotFound (another document's too)."""
    t = None
    if isinstance(thread_id, int) and not isinstance(thread_id, bool) or (
            isinstance(thread_id, str) and thread_id.isdigit() and len(thread_id) <= 18):
        t = _threads(doc).filter(pk=int(thread_id)).first()
    if t is None:
        raise NotFound(f"No comment thread {thread_id} on '{doc.name}'.")
    t.document = doc
    services.refresh(doc, [t])
    return t


def parse_resolved(value) -> bool | None:
    """`resolved` as a filter: true/false (booleans or their words), or None for all."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise Invalid("'resolved' must be true or false.", details={"resolved": "must be true or false"})


def threads_json(doc: Document, resolved: bool | None = None) -> dict:
    """The document's threads, oldest first (at most MYTHLINE_DOC_MAX_COMMENT_THREADS), anchors
    moved to the current text in one walk over the log; each with its opening comment and count."""
    rows = list(_threads(doc).order_by("pk")[:services.max_threads()])
    for t in rows:
        t.document = doc
    services.refresh(doc, rows)
    index = Utf16Index(doc.text)
    return {"results": [services.thread_json(t, comments=False, index=index) for t in rows
                        if resolved in (None, t.resolved)],
            "revision": doc.revision}


def thread_detail_json(doc: Document, thread_id) -> dict:
    return services.thread_json(get_thread(doc, thread_id))
