"""Co-editing: documents and their linear change log (SPEC 9).

The server is the single authority. A browser pushes a CodeMirror change set made against the
current revision (`document_push`); a stale one is refused with `conflict` and the current
revision, never rebased here: the client receives the missing changes over its subscription,
rebases on them and pushes again (frontend/src/collab.js, docs/coediting.md). An agent's REST
edit names the revision it was made against (`document_edit`); it is mapped through every
change made since, unless one of them touched its range, which is a `conflict` with nothing
applied.

Every write locks the document row, checks, applies, appends a DocumentChange, and publishes a
`doc.change` frame after commit. What one request may cost is bounded (docs/coediting.md,
"Limits"): edits per REST edit and ranges per push, how far behind a REST edit's base may be (its
mapping is done before the row lock; under it only what landed meanwhile), documents and forks
per story; an old revision is rebuilt from a snapshot replaying fewer than SNAPSHOT_EVERY changes.
"""
import hashlib
import json
import threading
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction

from messaging import events
from messaging import frames
from mythline_site.errors import Conflict, Forbidden, Invalid, NotFound, PayloadTooLarge
from stories.changesets import (ChangeSet, InvalidChangeSet, edits_from_chars, normalize_line_breaks, replay,
                                 shift_ranges, utf16_len)
from stories.models import Document, DocumentChange, DocumentSnapshot, Participant, Story

WRITER_ROLES = (Participant.Role.OWNER, Participant.Role.EDITOR)



def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


def document_json(doc: Document, *, text: str | None = None, revision: int | None = None) -> dict:
    return {"story": doc.story.slug, "name": doc.name, "title": doc.title,
            "text": doc.text if text is None else text, "revision": doc.revision if revision is None else revision,
            "current_revision": doc.revision, "created_by": doc.created_by.username,
            "created_at": iso(doc.created_at), "updated_at": iso(doc.updated_at),
            "forked_from": doc.forked_from.name if doc.forked_from_id else None,
            "forked_at_revision": doc.forked_at_revision}


def change_json(change: DocumentChange, author=None) -> dict:
    author = author or change.author
    return {"revision": change.revision, "changes": change.changes, "client_id": change.client_id,
            "author": author.username, "via": change.via, "created_at": iso(change.created_at)}


def doc_topic(doc: Document) -> str:
    return frames.doc_topic(doc.story.slug, doc.name)


# --- what this process has seen committed ---------------------------------------------------------
# Revisions only grow, so a revision this process saw committed (its own writes, and the doc.change
# events it received) is a lower bound of the current one: a push made against an older revision
# is refused from memory, without a connection or a query. Most refused pushes are of this kind:
# when a change is broadcast, every editor with pending edits pushes on top of it, one wins, and
# the others are queued behind the winner. Keyed with created_at as well as the id, so that an id
# reused after a database reset is a new key.
_committed: dict[tuple, int] = {}
_committed_lock = threading.Lock()
_COMMITTED_MAX = 10_000  # documents remembered; past that the memory starts again (only a shortcut is lost)


def committed_revision(doc: Document) -> int:
    """The highest revision of `doc` this process knows to be committed (0 if none)."""
    return _committed.get((doc.pk, doc.created_at), 0)


def note_committed(doc: Document, revision: int) -> None:
    key = (doc.pk, doc.created_at)
    with _committed_lock:
        if revision > _committed.get(key, 0):
            if len(_committed) >= _COMMITTED_MAX:
                _committed.clear()
            _committed[key] = revision


# --- reads --------------------------------------------------------------------------------------

def rebuild(doc: Document, revision: int) -> tuple[str, int]:
    """The text at `revision` and how many logged changes were replayed to rebuild it: at most
    MYTHLINE_DOC_SNAPSHOT_EVERY - 1, from the nearest snapshot at or before it (a snapshot is
    stored at revision 0, when the document is first changed, and every SNAPSHOT_EVERY revisions).
    The changes are composed and applied to the snapshot once (`changesets.replay`), so the cost
    is about one read of the snapshot plus the changes' own size."""
    if revision == doc.revision and "text" not in doc.get_deferred_fields():
        return doc.text, 0  # (read with its text deferred, the current revision is rebuilt like any other)
    if isinstance(revision, bool) or not isinstance(revision, int) or not 0 <= revision <= doc.revision:
        raise Invalid(f"revision must be from 0 to {doc.revision}.", details={"revision": "out of range"})
    snap = (DocumentSnapshot.objects.filter(document=doc, revision__lte=revision).order_by("-revision")
            .values_list("revision", "text").first())
    base, text = snap or (0, "")  # a story's `main` starts empty, without a snapshot
    rows = (DocumentChange.objects.filter(document=doc, revision__gt=base, revision__lte=revision)
            .order_by("revision").values_list("changes", flat=True))
    return replay(text, rows)


def text_at(doc: Document, revision: int) -> str:
    """The text at `revision`, rebuilt from the nearest snapshot at or before it."""
    return rebuild(doc, revision)[0]


def changes_after(doc: Document, after: int, limit: int = 1000) -> list[dict]:
    rows = (DocumentChange.objects.filter(document=doc, revision__gt=after).select_related("author")
            .order_by("revision")[:limit])
    return [change_json(c) for c in rows]


# --- writes -------------------------------------------------------------------------------------

def document_create(*, story: Story, creator, name: str, title: str = "", text: str = "",
                    fork_of: Document | None = None, at_revision: int | None = None) -> Document:
    text = normalize_line_breaks(text)  # CodeMirror documents use "\n" only
    if "\x00" in text:
        raise Invalid("Text may not contain the NUL character (\\u0000).", details={"text": "contains NUL"})
    _check_story_caps(story, fork=fork_of is not None)  # refused before any work (checked again below)
    if fork_of is not None:
        at_revision = fork_of.revision if at_revision is None else at_revision
        text = text_at(fork_of, at_revision)
        title = title or f"{fork_of.title or fork_of.name} (fork at r{at_revision})"
    if len(text) > settings.MYTHLINE_DOC_MAX_CHARS:
        raise PayloadTooLarge(f"A document holds at most {settings.MYTHLINE_DOC_MAX_CHARS} characters.")
    try:
        with transaction.atomic():
            # The story's row serializes creations, so two requests cannot both take the last place.
            Story.objects.select_for_update().filter(pk=story.pk).values_list("pk", flat=True).first()
            _check_story_caps(story, fork=fork_of is not None)
            doc = Document.objects.create(story=story, name=name, title=title, text=text, created_by=creator,
                                          forked_from=fork_of, forked_at_revision=at_revision if fork_of else None)
            # No snapshot yet: revision 0 is `text` until the first change, which stores it (_append).
            events.publish_story_event(story, "document.created", {
                "name": doc.name, "title": doc.title, "created_by": creator.username,
                "forked_from": fork_of.name if fork_of else None, "forked_at_revision": doc.forked_at_revision})
    except IntegrityError:
        raise Conflict(f"Story '{story.slug}' already has a document '{name}'.", details={"name": name}) from None
    return doc


def _check_story_caps(story: Story, *, fork: bool) -> None:
    """At most MYTHLINE_STORY_MAX_DOCUMENTS documents (forks included) and MYTHLINE_STORY_MAX_FORKS
    forks per story: 409 `conflict`."""
    docs = Document.objects.filter(story=story)
    limit = settings.MYTHLINE_STORY_MAX_DOCUMENTS
    if docs.count() >= limit:
        raise Conflict(f"Story '{story.slug}' already holds {limit} documents, the most a story may hold.",
                       details={"max_documents": limit})
    limit = settings.MYTHLINE_STORY_MAX_FORKS
    if fork and docs.filter(forked_from__isnull=False).count() >= limit:
        raise Conflict(f"Story '{story.slug}' already holds {limit} forks, the most a story may hold.",
                       details={"max_forks": limit})


def _locked(doc: Document) -> Document:
    locked = Document.objects.select_for_update().select_related("story").get(pk=doc.pk)
    return locked


def _check_insert_size(cs: ChangeSet) -> None:
    if any("\x00" in text for *_, text in cs.iter_changes()):
        # No database stores NUL in text (PostgreSQL refuses it): refuse it up front.
        raise Invalid("Text may not contain the NUL character (\\u0000).", details={"changes": "contains NUL"})
    inserted = sum(len(text) for *_, text in cs.iter_changes())
    if inserted > settings.MYTHLINE_DOC_MAX_INSERT_CHARS:
        raise PayloadTooLarge(f"A change may insert at most {settings.MYTHLINE_DOC_MAX_INSERT_CHARS} characters.",
                              details={"inserted": inserted})


def _append(doc: Document, cs: ChangeSet, *, author, client_id: str, via: str,
            idempotency_id: uuid.UUID | None = None, request_hash: str = "") -> DocumentChange:
    """Apply `cs` (made against doc.revision) to the locked `doc`; the caller holds the transaction."""
    _check_insert_size(cs)
    new_text = cs.apply(doc.text)
    if len(new_text) > settings.MYTHLINE_DOC_MAX_CHARS:
        raise PayloadTooLarge(f"A document holds at most {settings.MYTHLINE_DOC_MAX_CHARS} characters.")
    if doc.revision == 0 and doc.text and not DocumentSnapshot.objects.filter(document=doc, revision=0).exists():
        # Revision 0 is kept once the document first changes (a fork nobody edits holds its text once).
        DocumentSnapshot.objects.create(document=doc, revision=0, text=doc.text)
    doc.text = new_text
    doc.revision += 1
    doc.save(update_fields=["text", "revision", "updated_at"])
    change = DocumentChange.objects.create(document=doc, revision=doc.revision, author=author,
                                           changes=cs.to_json(), client_id=client_id or "", via=via,
                                           idempotency_id=idempotency_id, request_hash=request_hash)
    if doc.revision % settings.MYTHLINE_DOC_SNAPSHOT_EVERY == 0:
        DocumentSnapshot.objects.create(document=doc, revision=doc.revision, text=doc.text)
    frame = frames.doc_change(doc_topic(doc), revision=doc.revision, changes=change.changes,
                              client_id=change.client_id, author=author.username)
    revision = doc.revision
    transaction.on_commit(lambda: note_committed(doc, revision))  # before the publish: pushes queued behind see it
    events.publish_on_commit(doc.group_name, {"type": "doc.change", "topic": doc_topic(doc), "revision": doc.revision,
                                              "frame": events.dumps(frame)})
    return change


def _check_push_args(revision, client_id) -> None:
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise Invalid("'revision' must be an integer.", details={"revision": "must be an integer"})
    if not isinstance(client_id, str) or len(client_id) > 64:
        raise Invalid("'client_id' must be a string of at most 64 characters.", details={"client_id": "invalid"})


def _push_conflict(current: int) -> Conflict:
    return Conflict(f"The document is at revision {current}; rebase on the changes up to it and push again.",
                    details={"revision": current})


def document_push_known_stale(*, doc: Document, revision, client_id, known_revision: int = 0) -> None:
    """Refuses, without the database, a push made against a revision older than one known to be
    committed (`known_revision`, say one the pusher's subscription was already sent, or
    `committed_revision(doc)`): revisions only grow, so such a push can only be a conflict.
    Anything else returns, for `document_push` to decide."""
    _check_push_args(revision, client_id)
    known = max(known_revision, committed_revision(doc))
    if revision < known:
        raise _push_conflict(known)


def document_push(*, doc: Document, author, revision, changes, client_id: str = "",
                  known_revision: int = 0) -> DocumentChange:
    """A browser's change set, made against `revision`, which must be the current one."""
    document_push_known_stale(doc=doc, revision=revision, client_id=client_id, known_revision=known_revision)
    if isinstance(changes, list):
        count, limit = sum(1 for part in changes if isinstance(part, list)), settings.MYTHLINE_DOC_MAX_PUSH_CHANGES
        if count > limit:
            raise PayloadTooLarge(f"A push may change at most {limit} ranges; this one changes {count}: "
                                  "push them in several change sets.", details={"changes": count, "max_changes": limit})
    # A stale push the memory above did not catch (a change made by another process, say) is
    # refused after a plain read, without a write transaction (on SQLite, BEGIN IMMEDIATE would
    # queue it behind every writer). What decides is the same check again under the row lock.
    current = Document.objects.filter(pk=doc.pk).values_list("revision", flat=True).first()
    if current is None:
        raise NotFound("The document no longer exists.")
    if revision != current:
        raise _push_conflict(current)
    with transaction.atomic():
        doc = _locked(doc)
        if not Participant.objects.filter(story_id=doc.story_id, user_id=author.pk, role__in=WRITER_ROLES).exists():
            # Checked under the lock: a push racing the author's demotion or removal is refused.
            raise Forbidden("Viewers read the document but do not edit it.")
        if revision != doc.revision:
            raise _push_conflict(doc.revision)
        if author.is_agent and doc.story.agents_suggest:
            raise Forbidden("In this story agents suggest and people accept: send the change as a suggestion "
                            "(POST .../suggestions, or the REST edit, which becomes one).")
        try:
            cs = ChangeSet.from_json(changes, utf16_len(doc.text))
            return _append(doc, cs, author=author, client_id=client_id, via="ws")
        except InvalidChangeSet as exc:  # malformed, wrong lengths, or splitting a surrogate pair
            raise Invalid(f"Bad change set: {exc}", details={"changes": str(exc)}) from None


def _occurrences(text: str, find: str) -> int:
    """Matches of `find`, overlapping ones included ("aa" is in "aaa" twice: ambiguous)."""
    count, at = 0, text.find(find)
    while at != -1:
        count, at = count + 1, text.find(find, at + 1)
    return count


def _rest_kind(body) -> str:
    """Checks the REST body's shape (no database): which of edits, find or append it is."""
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object.")
    kinds = [k for k in ("edits", "find", "append") if k in body]
    if len(kinds) != 1:
        raise Invalid("Send exactly one of 'edits', 'find'/'replace' or 'append'.", details={"body": "one of edits, find, append"})
    allowed = {"edits": {"edits", "base_revision", "client_id"}, "find": {"find", "replace", "base_revision", "client_id"},
               "append": {"append", "client_id", "base_revision"}}[kinds[0]]
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid("The body has unknown fields.", details={k: "unknown field" for k in unknown})
    client_id = body.get("client_id") or ""
    if not isinstance(client_id, str) or len(client_id) > 64:
        raise Invalid("'client_id' must be a string of at most 64 characters.", details={"client_id": "invalid"})
    edits, limit = body.get("edits"), settings.MYTHLINE_DOC_MAX_EDITS
    if isinstance(edits, list) and len(edits) > limit:
        raise PayloadTooLarge(f"An edit request may carry at most {limit} edits; this one has {len(edits)}: "
                              "send them in several requests.", details={"edits": len(edits), "max_edits": limit})
    return kinds[0]


def _lag_conflict(base: int, current: int) -> Conflict:
    limit = settings.MYTHLINE_DOC_MAX_LAG
    return Conflict(f"'base_revision' {base} is {current - base} revisions behind the current revision {current} "
                    f"(at most {limit}): read the document again and redo the edit on it.",
                    details={"revision": current, "current_revision": current, "base_revision": base,
                             "max_lag": limit})


def _rest_changeset(doc: Document, body: dict, kind: str) -> tuple[ChangeSet, int]:
    """The REST body as a change set against its base revision (positions in characters)."""
    base = body.get("base_revision", doc.revision if kind == "append" else None)
    if isinstance(base, bool) or not isinstance(base, int):
        raise Invalid("'base_revision' is required: the revision your edit was made against.",
                      details={"base_revision": "must be an integer"})
    if not 0 <= base <= doc.revision:
        raise Invalid(f"'base_revision' must be from 0 to {doc.revision}.", details={"base_revision": "out of range"})
    if doc.revision - base > settings.MYTHLINE_DOC_MAX_LAG:
        raise _lag_conflict(base, doc.revision)
    text = text_at(doc, base)
    if kind == "append":
        if not isinstance(body["append"], str) or not body["append"]:
            raise Invalid("'append' must be a non-empty string.", details={"append": "must be a non-empty string"})
        n = len(text)
        edits = [{"from": n, "to": n, "insert": body["append"]}]
    elif kind == "find":
        find, replace = body.get("find"), body.get("replace", "")
        if not isinstance(find, str) or not find:
            raise Invalid("'find' must be a non-empty string.", details={"find": "must be a non-empty string"})
        if not isinstance(replace, str):
            raise Invalid("'replace' must be a string.", details={"replace": "must be a string"})
        count = _occurrences(text, find)
        if count != 1:
            raise Conflict(f"'find' matches {count} times at revision {base}; it must match exactly once.",
                           details={"revision": doc.revision, "matches": count})
        at = text.index(find)
        edits = [{"from": at, "to": at + len(find), "insert": replace}]
    else:
        edits = body["edits"]
    try:
        return ChangeSet.of(edits_from_chars(text, edits), utf16_len(text)), base
    except InvalidChangeSet as exc:
        raise Invalid(f"Bad edits: {exc}", details={"edits": str(exc)}) from None


# A document edit's `Idempotency-Key` lives in its own namespace, scoped to the sender and the
# document: the same key may be used by other senders, on other documents, and for messages.
DOC_OPS_IDEMPOTENCY_NAMESPACE = uuid.UUID("3b9d2c4e-7a51-4f0e-8c6d-1e2f3a4b5c6d")


def idempotent_change_id(author, doc: Document, key: str) -> uuid.UUID:
    return uuid.uuid5(DOC_OPS_IDEMPOTENCY_NAMESPACE, f"{author.pk}:{doc.pk}:{key}")


def request_digest(body) -> str:
    """The SHA-256 an `Idempotency-Key` is held to (the same body for the same key)."""
    return _request_hash(body)


def _request_hash(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                          .encode("utf-8", "surrogatepass")).hexdigest()


def _repeat(doc: Document, idempotency_id: uuid.UUID, request_hash: str) -> DocumentChange | None:
    """The change an earlier request with this key made (same body), or None; another body is 409."""
    change = (DocumentChange.objects.filter(document_id=doc.pk, idempotency_id=idempotency_id)
              .select_related("author").first())
    if change is not None and change.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was used for a different edit of this document.",
                       details={"Idempotency-Key": "used with another body"})
    return change


def _map_through(doc_id: int, edits: list, length: int, after: int, upto: int, current: int) -> tuple[list, int]:
    """`edits` ((from, to, text), UTF-16 units of the text of `length` units at revision `after`)
    moved through the logged changes `after`+1 .. `upto`, and the length of the text at `upto`. A
    change touching one of them is a `conflict` (nothing applied). Untouched edits only move, so
    `ChangeSet.of(edits, length)` at the end is what `cs.map(later)` for each later change would
    give, at a fraction of the cost (one pass over the edits per change, not a rebuilt change set)."""
    rows = (DocumentChange.objects.filter(document_id=doc_id, revision__gt=after, revision__lte=upto)
            .order_by("revision").values_list("revision", "changes"))
    for revision, changes in rows:
        later = ChangeSet.from_json(changes, length)
        shifted = shift_ranges(later, [(a, b) for a, b, _ in edits])
        if shifted is None:
            raise Conflict(f"Revision {revision} changed the text you edited; read revision {current} and edit again.",
                           details={"revision": current, "conflicting_revision": revision})
        edits = [(a, b, text) for (a, b), (_, _, text) in zip(shifted, edits)]
        length = later.new_length
    return edits, length


def document_edit(*, doc: Document, author, body: dict, via: str = "rest",
                  idempotency_key: str | None = None) -> DocumentChange:
    """An agent's edit over REST (or MCP, `via="mcp"`): made against `base_revision`, mapped
    through later changes.

    Bounded: at most MYTHLINE_DOC_MAX_EDITS edits (413), a base at most MYTHLINE_DOC_MAX_LAG
    revisions behind (409 `conflict` with `current_revision`). The base text is rebuilt and the
    edit mapped through the changes since BEFORE the row lock is taken (on SQLite the lock is the
    site-wide write lock); under it, only the revisions committed meanwhile are mapped.
    With `idempotency_key`, a repeat (same key, same body) answers the change first made; the same
    key with another body is a `conflict`.
    """
    idempotency_id, request_hash = None, ""
    if idempotency_key is not None:
        idempotency_id, request_hash = idempotent_change_id(author, doc, idempotency_key), _request_hash(body)
        repeat = _repeat(doc, idempotency_id, request_hash)
        if repeat is not None:
            return repeat
    kind = _rest_kind(body)
    client_id = body.get("client_id") or ""
    prepared = None
    if kind != "append" or "base_revision" in body:  # a plain append is made at the end, under the lock
        fresh = Document.objects.filter(pk=doc.pk).only("pk", "text", "revision").first()
        if fresh is None:
            raise NotFound("The document no longer exists.")
        cs, base = _rest_changeset(fresh, body, kind)
        edits = [(a, b, text) for a, b, _, _, text in cs.iter_changes(individual=True)]
        edits, length = _map_through(fresh.pk, edits, cs.length, base, fresh.revision, fresh.revision)
        prepared = cs, edits, length, fresh.revision, base
    with transaction.atomic():
        doc = _locked(doc)
        if idempotency_id is not None:  # a concurrent repeat may have landed meanwhile
            repeat = _repeat(doc, idempotency_id, request_hash)
            if repeat is not None:
                return repeat
        if prepared is None:
            cs, _ = _rest_changeset(doc, body, kind)
        else:
            cs, edits, length, mapped_to, base = prepared
            if doc.revision - mapped_to > settings.MYTHLINE_DOC_MAX_LAG:  # a flood landed meanwhile
                raise _lag_conflict(base, doc.revision)
            if doc.revision > mapped_to:  # only what landed since the mapping above
                edits, length = _map_through(doc.pk, edits, length, mapped_to, doc.revision, doc.revision)
            if doc.revision > base:
                cs = ChangeSet.of(edits, length)
        return _append(doc, cs, author=author, client_id=client_id, via=via,
                       idempotency_id=idempotency_id, request_hash=request_hash)


# --- for changes that are not applied at once (suggestions/) ----------------------------------------

def prepare_edit(*, doc: Document, body: dict) -> tuple[list[tuple[int, int, str]], Document]:
    """A REST edit body (`edits`, `find`/`replace` or `append`, with `base_revision`), checked as
    `document_edit` checks it and moved to the document's current revision, but not applied: the
    edits `(from, to, insert)` in UTF-16 units of the current text, and the document as read (its
    `revision` and `text`). 409 `conflict` when a later change touched the edited text."""
    kind = _rest_kind(body)
    fresh = Document.objects.filter(pk=doc.pk).select_related("story").first()
    if fresh is None:
        raise NotFound("The document no longer exists.")
    cs, base = _rest_changeset(fresh, body, kind)
    _check_insert_size(cs)
    edits = [(a, b, text) for a, b, _, _, text in cs.iter_changes(individual=True)]
    edits, _ = _map_through(fresh.pk, edits, cs.length, base, fresh.revision, fresh.revision)
    return edits, fresh


def lock_document(doc: Document) -> Document:
    """The document, row-locked for the transaction the caller holds (the write lock every change
    takes)."""
    return _locked(doc)


def apply_locked(doc: Document, edits: list[tuple[int, int, str]], *, author, via: str,
                 client_id: str = "") -> DocumentChange:
    """Apply `edits` (UTF-16 units of the locked document's current text) as one new revision, as
    any edit is applied: logged, snapshotted, broadcast to the open editors."""
    try:
        cs = ChangeSet.of(edits, utf16_len(doc.text))
    except InvalidChangeSet as exc:
        raise Invalid(f"Bad edits: {exc}", details={"edits": str(exc)}) from None
    return _append(doc, cs, author=author, client_id=client_id, via=via)
