"""Suggestions: create, keep in step with the text, accept, reject (docs/protocol.md, "Suggestions").

Who may: anyone who may read the story reads its suggestions; its writers (owner, editors, agents
with the editor role) suggest; only people decide (the owner and human editors accept or reject),
never agents: agents propose, humans decide.
"""
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging import events
from mythline_site.errors import Conflict, Forbidden, Invalid
from mythline_site.parsers import has_nul, has_surrogate
from stories.changesets import ChangeSet, shift_ranges, utf16_to_index
from stories.documents import (apply_locked, document_edit, idempotent_change_id, lock_document, prepare_edit,
                               request_digest)
from stories.models import Document, DocumentChange, Participant
from suggestions.models import Suggestion

MAX_NOTE = 2000
DECISIONS = ("accept", "reject")


def max_open() -> int:
    return int(getattr(settings, "MYTHLINE_DOC_MAX_SUGGESTIONS", 200))


# --- rendering ----------------------------------------------------------------------------------

def _iso(dt):
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _chars(text: str, edits) -> list[dict]:
    """UTF-16 edits of `text` as agents count: characters (code points)."""
    return [{"from": utf16_to_index(text, a), "to": utf16_to_index(text, b), "insert": insert}
            for a, b, insert in edits]


def suggestion_json(s: Suggestion, *, text: str | None = None) -> dict:
    """A suggestion as REST, MCP and the `suggestion.*` events show it. `edits` count characters of
    the document's text at `revision` (given as `text` when known: the current text for an open
    suggestion); `edits_utf16` count UTF-16 code units, as the browser's editor does."""
    doc = s.document
    if text is None:
        text = doc.text if s.revision == doc.revision else None
    return {
        "id": s.pk, "story": doc.story.slug, "document": doc.name,
        "author": s.author.username, "author_kind": "agent" if s.author.is_agent else "human",
        "note": s.note, "status": s.status, "revision": s.revision,
        "edits": _chars(text, s.edits) if text is not None else None,
        "edits_utf16": [list(e) for e in s.edits],
        "replaced": s.replaced, "stale_revision": s.stale_revision,
        "decided_by": s.decided_by.username if s.decided_by_id else None,
        "decided_at": _iso(s.decided_at), "accepted_revision": s.accepted_revision,
        "created_at": _iso(s.created_at), "updated_at": _iso(s.updated_at), "version": s.version,
    }


def _publish(s: Suggestion, event: str) -> None:
    events.publish_story_event(s.document.story, event, suggestion_json(s))


# --- keeping suggestions in step with the text -------------------------------------------------

def _old_length(changes) -> int:
    """The length of the text a change set (JSON form) applies to: what it keeps plus what it replaces."""
    return sum(part if isinstance(part, int) else part[0] for part in changes)


def refresh(doc: Document, suggestions: list[Suggestion]) -> None:
    """Move the open suggestions among `suggestions` to the document's current revision (`doc` as
    just read): each through every change made since its own revision, in one walk over the log
    for all of them. One whose text a change touched (an insertion at its edge counts) becomes
    `stale` at that revision: kept, shown, never applied. Stored re-anchored (no new version, no
    event, as reads of the outline re-anchor); a change to stale is a new version and an event."""
    moving = [s for s in suggestions if s.status == Suggestion.Status.OPEN and s.revision < doc.revision]
    if not moving:
        return
    edits = {s.pk: [tuple(e) for e in s.edits] for s in moving}
    stale: dict[int, int] = {}
    rows = (DocumentChange.objects.filter(document_id=doc.pk, revision__gt=min(s.revision for s in moving),
                                          revision__lte=doc.revision).order_by("revision")
            .values_list("revision", "changes"))
    for revision, changes in rows:
        cs = ChangeSet.from_json(changes, _old_length(changes))
        for s in moving:
            if s.pk in stale or s.revision >= revision:
                continue
            shifted = shift_ranges(cs, [(a, b) for a, b, _ in edits[s.pk]])
            if shifted is None:
                stale[s.pk] = revision
            else:
                edits[s.pk] = [(a, b, insert) for (a, b), (_, _, insert) in zip(shifted, edits[s.pk])]
    for s in moving:
        if s.pk in stale:
            done = Suggestion.objects.filter(pk=s.pk, status=Suggestion.Status.OPEN, version=s.version).update(
                status=Suggestion.Status.STALE, stale_revision=stale[s.pk], version=s.version + 1,
                updated_at=timezone.now())
            if done:
                s.status, s.stale_revision, s.version = Suggestion.Status.STALE, stale[s.pk], s.version + 1
                transaction.on_commit(lambda s=s: _publish(s, "suggestion.updated"))
        else:
            moved = [list(e) for e in edits[s.pk]]
            Suggestion.objects.filter(pk=s.pk, status=Suggestion.Status.OPEN, version=s.version).update(
                edits=moved, revision=doc.revision)
            s.edits, s.revision = moved, doc.revision


# --- writes -------------------------------------------------------------------------------------

def _is_writer(doc: Document, user) -> bool:
    return Participant.objects.filter(story_id=doc.story_id, user_id=user.pk,
                                      role__in=[Participant.Role.OWNER, Participant.Role.EDITOR]).exists()


def clean_note(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_NOTE or has_nul(value) or has_surrogate(value):
        raise Invalid(f"note must be text of at most {MAX_NOTE} characters.", details={"note": "invalid"})
    return value.strip()


def suggestion_create(*, doc: Document, author, body, idempotency_key: str | None = None) -> Suggestion:
    """Suggest an edit: the body of a REST edit (`edits`, `find`/`replace` or `append`, with
    `base_revision`) plus an optional `note`. Checked and moved to the current revision as an edit
    is (409 `conflict` when a later change touched its text); nothing changes in the text. With
    `idempotency_key`, a repeat (same key, same body) answers the suggestion first made."""
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object.")
    idempotency_id, request_hash = None, ""
    if idempotency_key is not None:
        idempotency_id, request_hash = idempotent_change_id(author, doc, idempotency_key), request_digest(body)
        repeat = _repeat(doc, idempotency_id, request_hash)
        if repeat is not None:
            return repeat
    body = dict(body)
    note = clean_note(body.pop("note", None))
    if body.get("client_id"):
        raise Invalid("A suggestion has no client_id.", details={"client_id": "unknown field"})
    edits, fresh = prepare_edit(doc=doc, body=body)
    if not edits:
        raise Invalid("The suggestion changes nothing.", details={"edits": "empty"})
    text = fresh.text
    replaced = [text[utf16_to_index(text, a):utf16_to_index(text, b)] for a, b, _ in edits]
    with transaction.atomic():
        doc = lock_document(doc)
        if not _is_writer(doc, author):
            raise Forbidden("Only the story's owner and editors suggest changes.")
        if idempotency_id is not None:
            repeat = _repeat(doc, idempotency_id, request_hash)
            if repeat is not None:
                return repeat
        if Suggestion.objects.filter(document=doc, status=Suggestion.Status.OPEN).count() >= max_open():
            raise Conflict(f"The document has {max_open()} open suggestions, the most it may have: decide some first.",
                           details={"max_suggestions": max_open()})
        s = Suggestion.objects.create(document=doc, author=author, note=note, edits=[list(e) for e in edits],
                                      revision=fresh.revision, replaced=replaced, idempotency_id=idempotency_id,
                                      request_hash=request_hash)
        refresh(doc, [s])  # changes that landed since it was prepared
        s.document = doc
        transaction.on_commit(lambda: _publish(s, "suggestion.created"))
    return s


def _repeat(doc: Document, idempotency_id, request_hash: str) -> Suggestion | None:
    s = Suggestion.objects.filter(document_id=doc.pk, idempotency_id=idempotency_id).select_related("author").first()
    if s is not None and s.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was used for a different edit of this document.",
                       details={"Idempotency-Key": "used with another body"})
    if s is not None:
        s.document = doc
    return s


def edit_or_suggest(*, doc: Document, author, body, via: str = "rest", idempotency_key: str | None = None):
    """An edit of a document, or, from an agent in a story where agents suggest and people accept
    (`Story.agents_suggest`), the suggestion it becomes: `(change, None)` or `(None, suggestion)`."""
    if getattr(author, "is_agent", False) and doc.story.agents_suggest:
        return None, suggestion_create(doc=doc, author=author, body=body, idempotency_key=idempotency_key)
    return document_edit(doc=doc, author=author, body=body, via=via, idempotency_key=idempotency_key), None


def decidable(s: Suggestion, by) -> None:
    if getattr(by, "is_agent", False):
        raise Forbidden("Agents propose, people decide: only a person accepts or rejects a suggestion.")
    if not _is_writer(s.document, by):
        raise Forbidden("Only the story's owner and editors accept or reject suggestions.")


def suggestion_decide(*, suggestion: Suggestion, by, decision: str, version=None) -> Suggestion:
    """Accept (apply it as a new revision by `by`) or reject (keep it, decided) an open suggestion.
    A stale one may be rejected, not accepted (409 `conflict`)."""
    if decision not in DECISIONS:
        raise Invalid("decision must be 'accept' or 'reject'.", details={"decision": "must be accept or reject"})
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise Invalid("version must be an integer.", details={"version": "must be an integer"})
    decidable(suggestion, by)
    with transaction.atomic():
        doc = lock_document(suggestion.document)
        s = Suggestion.objects.select_for_update().select_related("author").get(pk=suggestion.pk)
        if version is not None and version != s.version:
            raise Conflict("The suggestion changed since you read it.", details={"version": s.version})
        if s.status not in (Suggestion.Status.OPEN, Suggestion.Status.STALE) or (
                decision == "accept" and s.status != Suggestion.Status.OPEN):
            raise Conflict(f"The suggestion is {s.status}: it can no longer be {decision}ed.",
                           details={"status": s.status})
        refresh(doc, [s])
        if decision == "accept" and s.status == Suggestion.Status.STALE:
            raise Conflict(f"Revision {s.stale_revision} changed the text this suggestion is about: it is stale "
                           "and can only be rejected.", details={"status": "stale", "revision": s.stale_revision})
        if decision == "accept":
            change = apply_locked(doc, [tuple(e) for e in s.edits], author=by, via="suggest",
                                  client_id=f"suggestion:{s.pk}")
            s.status, s.accepted_revision = Suggestion.Status.ACCEPTED, change.revision
        else:
            s.status = Suggestion.Status.REJECTED
        s.decided_by, s.decided_at, s.version = by, timezone.now(), s.version + 1
        s.save(update_fields=["status", "accepted_revision", "decided_by", "decided_at", "version", "updated_at"])
        s.document = doc
        transaction.on_commit(lambda: _publish(s, "suggestion.updated"))
    return s


def suggestions_decide_all(*, doc: Document, by, decision: str, author=None) -> dict:
    """Accept or reject every open suggestion (of one author, with `author`), oldest first, each as
    its own decision; a stale one is skipped on accept. Answers what was done to which."""
    if decision not in DECISIONS:
        raise Invalid("decision must be 'accept' or 'reject'.", details={"decision": "must be accept or reject"})
    qs = Suggestion.objects.filter(document=doc, status=Suggestion.Status.OPEN).select_related("document__story", "author")
    if author is not None:
        qs = qs.filter(author=author)
    done, skipped = [], []
    for s in list(qs.order_by("pk")[:max_open()]):
        try:
            done.append(suggestion_decide(suggestion=s, by=by, decision=decision).pk)
        except Conflict:
            skipped.append(s.pk)
    return {"decision": decision, "decided": done, "skipped": skipped}


# --- a fork merged back as suggestions -----------------------------------------------------------

def hunks(ops: list[dict]) -> list[tuple[int, int, str]]:
    """A diff's operations (versions.diff: equal / delete / insert, turning a into b) as edits of a:
    `(from, to, insert)` in characters, one per run of changes between equal text."""
    out, pos, start, insert, open_ = [], 0, 0, [], False
    for op in ops:
        if op["op"] == "equal":
            if open_:
                out.append((start, pos, "".join(insert)))
                open_, insert = False, []
            pos += len(op["text"])
            continue
        if not open_:
            open_, start = True, pos
        if op["op"] == "delete":
            pos += len(op["text"])
        else:
            insert.append(op["text"])
    if open_:
        out.append((start, pos, "".join(insert)))
    return out


def fork_merge(*, fork: Document, by, note: str = "") -> dict:
    """Merge a fork back into the document it was forked from, as suggestions people accept or
    reject: what changed in the fork since it was made (its text against its parent's at the fork's
    revision), one suggestion per changed passage, each made against that revision and moved
    through the parent's changes since, as any edit is. A passage the parent changed meanwhile is
    not suggested (it is listed in `conflicts`: compare and merge it by hand). A repeat of the same
    merge (the fork unchanged) answers the same suggestions."""
    from versions.diff import diff  # the word diff the compare view shows

    from stories.documents import text_at

    parent = fork.forked_from
    if parent is None:
        raise Invalid(f"'{fork.name}' is not a fork: there is nothing to merge it into.",
                      details={"document": "not a fork"})
    note = clean_note(note) or f"From the fork '{fork.name}'"
    base = fork.forked_at_revision or 0
    changed = hunks(diff(text_at(parent, base), fork.text))
    made, conflicts = [], []
    for a, b, insert in changed:
        body = {"base_revision": base, "edits": [{"from": a, "to": b, "insert": insert}], "note": note}
        try:
            made.append(suggestion_create(doc=parent, author=by, body=body,
                                          idempotency_key=f"merge:{fork.pk}:r{fork.revision}:{a}-{b}"))
        except Conflict as exc:
            conflicts.append({"from": a, "to": b, "insert": insert[:200], "reason": exc.message})
    return {"into": parent.name, "from": fork.name, "base_revision": base, "suggestions": made,
            "conflicts": conflicts}
