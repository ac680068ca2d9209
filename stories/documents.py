"""Co-editing: documents and their linear change log (SPEC 9).

The server is the single authority. A browser pushes a CodeMirror change set made against the
current revision (`document_push`); a stale one is refused with `conflict` and the current
revision, never rebased here: the client receives the missing changes over its subscription,
rebases on them and pushes again (frontend/src/collab.js, docs/coediting.md). An agent's REST
edit names the revision it was made against (`document_edit`); it is mapped through every
change made since, unless one of them touched its range, which is a `conflict` with nothing
applied.

Every write locks the document row, checks, applies, appends a DocumentChange, and publishes a
`doc.change` frame after commit.
"""
import threading

from django.conf import settings
from django.db import IntegrityError, transaction

from messaging import events
from messaging import frames
from mythline_site.errors import Conflict, Forbidden, Invalid, NotFound, PayloadTooLarge
from stories.changesets import ChangeSet, InvalidChangeSet, edits_from_chars, normalize_line_breaks, utf16_len
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

def text_at(doc: Document, revision: int) -> str:
    """The text at `revision`, rebuilt from the nearest snapshot at or before it."""
    if revision == doc.revision:
        return doc.text
    if not 0 <= revision <= doc.revision:
        raise Invalid(f"revision must be from 0 to {doc.revision}.", details={"revision": "out of range"})
    snap = DocumentSnapshot.objects.filter(document=doc, revision__lte=revision).order_by("-revision").first()
    text, base = (snap.text, snap.revision) if snap else ("", 0)
    for row in DocumentChange.objects.filter(document=doc, revision__gt=base, revision__lte=revision).order_by("revision"):
        text = ChangeSet.from_json(row.changes, utf16_len(text)).apply(text)
    return text


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
    if fork_of is not None:
        at_revision = fork_of.revision if at_revision is None else at_revision
        text = text_at(fork_of, at_revision)
        title = title or f"{fork_of.title or fork_of.name} (fork at r{at_revision})"
    if len(text) > settings.MYTHLINE_DOC_MAX_CHARS:
        raise PayloadTooLarge(f"A document holds at most {settings.MYTHLINE_DOC_MAX_CHARS} characters.")
    try:
        with transaction.atomic():
            doc = Document.objects.create(story=story, name=name, title=title, text=text, created_by=creator,
                                          forked_from=fork_of, forked_at_revision=at_revision if fork_of else None)
            DocumentSnapshot.objects.create(document=doc, revision=0, text=text)
            events.publish_story_event(story, "document.created", {
                "name": doc.name, "title": doc.title, "created_by": creator.username,
                "forked_from": fork_of.name if fork_of else None, "forked_at_revision": doc.forked_at_revision})
    except IntegrityError:
        raise Conflict(f"Story '{story.slug}' already has a document '{name}'.", details={"name": name}) from None
    return doc


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


def _append(doc: Document, cs: ChangeSet, *, author, client_id: str, via: str) -> DocumentChange:
    """Apply `cs` (made against doc.revision) to the locked `doc`; the caller holds the transaction."""
    _check_insert_size(cs)
    new_text = cs.apply(doc.text)
    if len(new_text) > settings.MYTHLINE_DOC_MAX_CHARS:
        raise PayloadTooLarge(f"A document holds at most {settings.MYTHLINE_DOC_MAX_CHARS} characters.")
    doc.text = new_text
    doc.revision += 1
    doc.save(update_fields=["text", "revision", "updated_at"])
    change = DocumentChange.objects.create(document=doc, revision=doc.revision, author=author,
                                           changes=cs.to_json(), client_id=client_id or "", via=via)
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


def _rest_changeset(doc: Document, body: dict) -> tuple[ChangeSet, int]:
    """The REST body as a change set against its base revision (positions in characters)."""
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
    base = body.get("base_revision", doc.revision if kinds[0] == "append" else None)
    if isinstance(base, bool) or not isinstance(base, int):
        raise Invalid("'base_revision' is required: the revision your edit was made against.",
                      details={"base_revision": "must be an integer"})
    if not 0 <= base <= doc.revision:
        raise Invalid(f"'base_revision' must be from 0 to {doc.revision}.", details={"base_revision": "out of range"})
    text = text_at(doc, base)
    if kinds[0] == "append":
        if not isinstance(body["append"], str) or not body["append"]:
            raise Invalid("'append' must be a non-empty string.", details={"append": "must be a non-empty string"})
        n = len(text)
        edits = [{"from": n, "to": n, "insert": body["append"]}]
    elif kinds[0] == "find":
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


def document_edit(*, doc: Document, author, body: dict, via: str = "rest") -> DocumentChange:
    """An agent's edit over REST (or MCP, `via="mcp"`): made against `base_revision`, mapped
    through later changes."""
    with transaction.atomic():
        doc = _locked(doc)
        cs, base = _rest_changeset(doc, body)
        if base < doc.revision:
            ranges = [(from_a, to_a) for from_a, to_a, *_ in cs.iter_changes(individual=True)]
            for row in DocumentChange.objects.filter(document=doc, revision__gt=base).order_by("revision"):
                later = ChangeSet.from_json(row.changes, cs.length)
                if any(later.touches_range(a, b) for a, b in ranges):
                    raise Conflict(f"Revision {row.revision} changed the text you edited; read revision "
                                   f"{doc.revision} and edit again.", details={"revision": doc.revision,
                                                                             "conflicting_revision": row.revision})
                ranges = [(later.map_pos(a, 1), later.map_pos(b, -1) if b > a else later.map_pos(b, 1))
                          for a, b in ranges]
                cs = cs.map(later)
        client_id = body.get("client_id") or ""
        if not isinstance(client_id, str) or len(client_id) > 64:
            raise Invalid("'client_id' must be a string of at most 64 characters.", details={"client_id": "invalid"})
        return _append(doc, cs, author=author, client_id=client_id, via=via)
