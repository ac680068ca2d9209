"""Comments on a passage: open a thread on a range of a document, reply, resolve, and keep the
anchor in step with the text (docs/protocol.md, "Comments").

Who may: anyone who may read the story reads its comments; its writers (owner, editors, agents with
the editor role: agents comment too) open threads, reply, and resolve or reopen them.
"""
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from comments.models import QUOTE_MAX, Comment, CommentThread
from messaging import events
from mythline_site.errors import Conflict, Forbidden, Invalid
from mythline_site.parsers import has_nul, has_surrogate
from stories.changesets import ChangeSet, Utf16Index, index_to_utf16, map_positions
from stories.documents import lock_document, text_at
from stories.models import Document, DocumentChange, Participant

BODY_MAX = 5000


def max_threads() -> int:
    return int(getattr(settings, "MYTHLINE_DOC_MAX_COMMENT_THREADS", 500))


def max_comments() -> int:
    return int(getattr(settings, "MYTHLINE_COMMENT_MAX_PER_THREAD", 200))


# --- rendering ----------------------------------------------------------------------------------

def _iso(dt):
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _kind(user) -> str:
    return "agent" if getattr(user, "is_agent", False) else "human"


def comment_json(c: Comment) -> dict:
    return {"id": c.pk, "thread": c.thread_id, "author": c.author.username, "author_kind": _kind(c.author),
            "body": c.body, "created_at": _iso(c.created_at), "edited_at": _iso(c.edited_at)}


def thread_json(t: CommentThread, *, comments: bool = True, index: Utf16Index | None = None) -> dict:
    """A thread as REST, MCP and the `comment.*` events show it. `anchor` counts characters (code
    points) of the document's text at `revision` (null when that is not the current text, which a
    refreshed thread always is); `anchor_utf16` counts UTF-16 code units, as the browser's editor
    does. With `comments`, every comment in order; otherwise the opening one (`first_comment`)."""
    doc = t.document
    if index is None and t.revision == doc.revision:
        index = Utf16Index(doc.text)
    rows = list(t.comments.all())  # prefetched by the callers
    out = {
        "id": t.pk, "story": doc.story.slug, "document": doc.name,
        "anchor": ({"from": index.to_index(t.anchor_from), "to": index.to_index(t.anchor_to)}
                   if index is not None and t.revision == doc.revision else None),
        "anchor_utf16": {"from": t.anchor_from, "to": t.anchor_to},
        "revision": t.revision, "orphaned": t.orphaned, "quote": t.quote,
        "created_by": t.created_by.username, "created_by_kind": _kind(t.created_by),
        "resolved": t.resolved, "resolved_by": t.resolved_by.username if t.resolved_by_id else None,
        "resolved_at": _iso(t.resolved_at), "created_at": _iso(t.created_at), "updated_at": _iso(t.updated_at),
        "version": t.version, "comment_count": len(rows),
    }
    if comments:
        out["comments"] = [comment_json(c) for c in rows]
    else:
        out["first_comment"] = comment_json(rows[0]) if rows else None
    return out


def _publish(t: CommentThread, event: str, data: dict | None = None) -> None:
    events.publish_story_event(t.document.story, event, data if data is not None else thread_json(t))


def _reload(t: CommentThread, doc: Document) -> CommentThread:
    t = (CommentThread.objects.select_related("created_by", "resolved_by")
         .prefetch_related("comments__author").get(pk=t.pk))
    t.document = doc
    return t


# --- keeping anchors in step with the text ------------------------------------------------------

def _old_length(changes) -> int:
    """The length of the text a change set (JSON form) applies to: what it keeps plus what it replaces."""
    return sum(part if isinstance(part, int) else part[0] for part in changes)


def map_anchors(cs: ChangeSet, anchors: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
    """Each (from, to, orphaned) of `anchors` (UTF-16 units) mapped through one change set in one
    walk over it. A range's start sticks after insertions at it and its end before them, so text
    typed at either edge stays outside and text typed inside grows it; a range whose every character
    was deleted (or replaced at once) collapses to where its text was and is orphaned. An empty
    anchor (a point) or an orphaned one moves with the text."""
    positions = []
    for start, end, orphaned in anchors:
        positions += [(start, -1)] if start == end else [(start, 1), (end, -1)]
    mapped = iter(map_positions(cs, positions))
    out = []
    for start, end, orphaned in anchors:
        if start == end:
            point = next(mapped)
            out.append((point, point, orphaned))
            continue
        new_start, new_end = next(mapped), next(mapped)
        if new_start >= new_end:
            out.append((min(new_start, new_end), min(new_start, new_end), True))
        else:
            out.append((new_start, new_end, orphaned))
    return out


def _changesets(doc_id: int, after: int, upto: int):
    rows = (DocumentChange.objects.filter(document_id=doc_id, revision__gt=after, revision__lte=upto)
            .order_by("revision").values_list("revision", "changes").iterator(chunk_size=500))
    for revision, changes in rows:
        yield revision, ChangeSet.from_json(changes, _old_length(changes))


def refresh(doc: Document, threads: list[CommentThread]) -> None:
    """Move `threads` (of `doc`, as just read) to the document's current revision: each through
    every change made since its own revision, in one walk over the log for all of them and one walk
    over each change for all of them. Stored re-anchored (the same text: no new version, no event);
    a thread that becomes orphaned is a new version and a `comment.thread.updated` event."""
    moving = [t for t in threads if t.revision < doc.revision]
    if not moving:
        return
    anchors = {t.pk: (t.anchor_from, t.anchor_to, t.orphaned) for t in moving}
    for revision, cs in _changesets(doc.pk, min(t.revision for t in moving), doc.revision):
        behind = [t.pk for t in moving if t.revision < revision]
        for pk, mapped in zip(behind, map_anchors(cs, [anchors[pk] for pk in behind]), strict=True):
            anchors[pk] = mapped
    for t in moving:
        start, end, orphaned = anchors[t.pk]
        newly = orphaned and not t.orphaned
        fields = {"anchor_from": start, "anchor_to": end, "revision": doc.revision, "orphaned": orphaned}
        if newly:
            fields.update(version=t.version + 1, updated_at=timezone.now())
        done = CommentThread.objects.filter(pk=t.pk, revision=t.revision, version=t.version).update(**fields)
        if done:
            for name, value in fields.items():
                setattr(t, name, value)
            t.document = doc
            if newly:
                transaction.on_commit(lambda t=t: _publish(t, "comment.thread.updated"))


# --- checks -------------------------------------------------------------------------------------

def _is_writer(doc: Document, user) -> bool:
    return Participant.objects.filter(story_id=doc.story_id, user_id=user.pk,
                                      role__in=[Participant.Role.OWNER, Participant.Role.EDITOR]).exists()


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object.")
    return body


def _unknown(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid("The body has unknown fields.", details={k: "unknown field" for k in unknown})


def _int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"'{name}' must be an integer.", details={name: "must be an integer"})
    if value < 0:
        raise Invalid(f"'{name}' may not be negative.", details={name: "must be at least 0"})
    return value


def clean_body(value) -> str:
    if not isinstance(value, str):
        raise Invalid("'body' must be a string.", details={"body": "must be a string"})
    if has_nul(value) or has_surrogate(value):
        raise Invalid("'body' may not contain the NUL character or lone surrogates.", details={"body": "invalid"})
    value = value.strip()
    if not 1 <= len(value) <= BODY_MAX:
        raise Invalid(f"'body' must be 1 to {BODY_MAX} characters (not blank).",
                      details={"body": f"1 to {BODY_MAX} characters"})
    return value


def _writer(doc: Document, user, what: str) -> None:
    if not _is_writer(doc, user):
        raise Forbidden(f"Only the story's owner and editors {what}.")


# --- writes -------------------------------------------------------------------------------------

def thread_create(*, doc: Document, author, body) -> CommentThread:
    """Open a thread on the text from `from` to `to` (characters of the text at `revision`, default
    the current one) with its first comment `body`. The anchor is moved to the current revision;
    409 `conflict` when its text was deleted since, or past the cap of threads per document."""
    body = _object(body)
    _unknown(body, {"from", "to", "revision", "body"})
    for name in ("from", "to", "body"):
        if name not in body:
            raise Invalid(f"'{name}' is required.", details={name: "required"})
    start, end = _int(body["from"], "from"), _int(body["to"], "to")
    revision = _int(body["revision"], "revision") if body.get("revision") is not None else doc.revision
    text_body = clean_body(body["body"])
    if start > end:
        raise Invalid("'from' must not be after 'to'.", details={"from": "after 'to'"})
    if revision > doc.revision:
        raise Invalid(f"'revision' must be from 0 to {doc.revision}.", details={"revision": "out of range"})
    lag = settings.MYTHLINE_DOC_MAX_LAG
    if doc.revision - revision > lag:
        raise Conflict(f"'revision' {revision} is more than {lag} revisions behind the current revision "
                       f"{doc.revision}: read the document again.",
                       details={"revision": doc.revision, "max_lag": lag})
    text = doc.text if revision == doc.revision else text_at(doc, revision)
    if end > len(text):
        raise Invalid(f"'to' is past the end of the text ({len(text)} characters at revision {revision}).",
                      details={"to": f"at most {len(text)}"})
    quote = text[start:end][:QUOTE_MAX]
    start16, end16 = index_to_utf16(text, start), index_to_utf16(text, end)
    with transaction.atomic():
        doc = lock_document(doc)
        _writer(doc, author, "comment")
        if CommentThread.objects.filter(document=doc).count() >= max_threads():
            raise Conflict(f"The document has {max_threads()} comment threads, the most it may have.",
                           details={"max_threads": max_threads()})
        orphaned = False
        for _, cs in _changesets(doc.pk, revision, doc.revision):  # changes made since `revision`
            [(start16, end16, orphaned)] = map_anchors(cs, [(start16, end16, orphaned)])
        if orphaned:
            raise Conflict(f"The text you comment on was deleted after revision {revision}; read the document "
                           "again.", details={"revision": doc.revision})
        t = CommentThread.objects.create(document=doc, anchor_from=start16, anchor_to=end16, revision=doc.revision,
                                         quote=quote, created_by=author)
        Comment.objects.create(thread=t, author=author, body=text_body)
        t = _reload(t, doc)
        transaction.on_commit(lambda: _publish(t, "comment.thread.created"))
    return t


def comment_reply(*, thread: CommentThread, author, body) -> Comment:
    """Add a comment to a thread (resolved ones too). 409 `conflict` past the cap per thread."""
    body = _object(body)
    _unknown(body, {"body"})
    if "body" not in body:
        raise Invalid("'body' is required.", details={"body": "required"})
    text_body = clean_body(body["body"])
    with transaction.atomic():
        t = CommentThread.objects.select_for_update().select_related("document__story").get(pk=thread.pk)
        _writer(t.document, author, "comment")
        if Comment.objects.filter(thread=t).count() >= max_comments():
            raise Conflict(f"The thread has {max_comments()} comments, the most it may have: open another.",
                           details={"max_comments": max_comments()})
        c = Comment.objects.create(thread=t, author=author, body=text_body)
        CommentThread.objects.filter(pk=t.pk).update(updated_at=timezone.now())
        data = {**comment_json(c), "story": t.document.story.slug, "document": t.document.name}
        transaction.on_commit(lambda: _publish(t, "comment.created", data))
    return c


def thread_resolve(*, thread: CommentThread, by, resolved, version=None) -> CommentThread:
    """Resolve (`resolved` true) or reopen a thread. A change is a new version and a
    `comment.thread.updated` event; asking for what it already is changes nothing."""
    if not isinstance(resolved, bool):
        raise Invalid("'resolved' must be true or false.", details={"resolved": "must be a boolean"})
    if version is not None:
        _int(version, "version")
    with transaction.atomic():
        doc = lock_document(thread.document)
        _writer(doc, by, "resolve comments")
        t = CommentThread.objects.select_for_update().get(pk=thread.pk)
        if version is not None and version != t.version:
            raise Conflict("The thread changed since you read it.", details={"version": t.version})
        refresh(doc, [t])
        if t.resolved != resolved:
            CommentThread.objects.filter(pk=t.pk).update(
                resolved=resolved, resolved_by=by if resolved else None,
                resolved_at=timezone.now() if resolved else None, version=t.version + 1, updated_at=timezone.now())
            t = _reload(t, doc)
            transaction.on_commit(lambda: _publish(t, "comment.thread.updated"))
        else:
            t = _reload(t, doc)
    return t
