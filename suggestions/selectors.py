"""Reads of suggestions: a document's suggestions, open ones moved to the current revision
(docs/protocol.md, "Suggestions"). REST and MCP list them with the same function."""
from mythline_site.errors import Invalid
from stories.models import Document
from suggestions import services
from suggestions.models import Suggestion

STATUSES = Suggestion.Status.values
MAX_LISTED = 1000


def suggestions_json(doc: Document, status: str | None = None) -> dict:
    """The document's suggestions, oldest first (at most MAX_LISTED), open ones moved to the current
    revision, only those with `status` if given (`invalid` naming `status` for an unknown one)."""
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of: {', '.join(STATUSES)}.", details={"status": "invalid"})
    rows = list(Suggestion.objects.filter(document=doc).select_related("author", "decided_by")
                .order_by("pk")[:MAX_LISTED])
    services.refresh(doc, rows)
    for s in rows:
        s.document = doc
    return {"results": [services.suggestion_json(s) for s in rows if status in (None, s.status)],
            "revision": doc.revision}
