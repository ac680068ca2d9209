"""Suggestions over the socket (docs/protocol.md, 6.4): `suggest` and `suggestion.decide`, on a
`doc:` topic the socket is subscribed to.

The frames are parsed here and then do exactly what REST does (suggestions/api.py), through the same
services and checks: the writers suggest, only people who write the story decide, the same limits
and 409s, one `write` unit of the rate budget per frame (as a REST POST), the `suggestion.*` story
events sent once by the services on commit. Positions count UTF-16 code units of the text at
`revision`, as `doc.push` does; they are turned into the characters REST counts against that same
text and handed to `services.suggestion_create` as a REST edit with `base_revision`.
"""
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from messaging import frames
from messaging.topics import integer
from messaging.topics.document import current_document, only_fields, socket_char, subscribed_doc
from mythline_site.errors import Invalid, NotFound, PayloadTooLarge
from mythline_site.throttling import check_rate
from stories.changesets import ChangeSet, InvalidChangeSet, Utf16Index, utf16_len
from stories.documents import text_at
from stories.models import Document
from suggestions import services
from suggestions.models import Suggestion

User = get_user_model()


def rest_edits(doc: Document, revision: int, changes) -> list[dict]:
    """A `doc.push`-style change set (UTF-16 units of the text at `revision`) as REST edits
    (`{"from", "to", "insert"}` in characters of that text). A revision too far behind is left to
    the service, which refuses it as REST does (409 `conflict` with `max_lag`)."""
    if revision > doc.revision:
        raise Invalid(f"'revision' must be from 0 to {doc.revision}.", details={"revision": "out of range"})
    if doc.revision - revision > settings.MYTHLINE_DOC_MAX_LAG:
        return []
    text = text_at(doc, revision)
    try:
        cs = ChangeSet.from_json(changes, utf16_len(text))
    except InvalidChangeSet as exc:  # malformed, or not the length of the text at `revision`
        raise Invalid(f"Bad change set: {exc}", details={"changes": str(exc)}) from None
    index, edits = Utf16Index(text), []
    for start, end, _, _, insert in cs.iter_changes(individual=True):
        edits.append({"from": socket_char(index, start, "changes", "A change"),
                      "to": socket_char(index, end, "changes", "A change"), "insert": insert})
    if not edits:
        raise Invalid("The suggestion changes nothing.", details={"changes": "empty"})
    return edits


async def on_suggest(conn, frame, ref):
    """`{"type": "suggest", "topic", "revision", "changes", "note"?}` -> `suggestion`."""
    sub = subscribed_doc(conn, frame)
    sub.check_write()  # viewers: refused without the database (the service checks again under the lock)
    only_fields(frame, {"revision", "changes", "note"})
    revision = integer(frame, "revision", default=...)
    changes = frame.get("changes")
    if not isinstance(changes, list):
        raise Invalid("'changes' must be a change set (a JSON array).", details={"changes": "must be an array"})
    count, limit = sum(1 for part in changes if isinstance(part, list)), settings.MYTHLINE_DOC_MAX_EDITS
    if count > limit:
        raise PayloadTooLarge(f"A suggestion may change at most {limit} ranges; this one changes {count}.",
                              details={"changes": count, "max_changes": limit})
    note = services.clean_note(frame.get("note"))
    user = conn.user

    def suggest():
        check_rate("write", f"u{user.pk}")
        doc = current_document(sub)
        body = {"base_revision": revision, "edits": rest_edits(doc, revision, changes), "note": note}
        return services.suggestion_json(services.suggestion_create(doc=doc, author=user, body=body))

    made = await database_sync_to_async(suggest)()
    await conn.reply(frames.suggestion(sub.topic, made), ref)


async def on_decide(conn, frame, ref):
    """`{"type": "suggestion.decide", "topic", "decision", "id"?, "version"?, "author"?}`: with `id`
    one suggestion (-> `suggestion`), without every open one, of `author` if given (->
    `suggestions.decided`)."""
    sub = subscribed_doc(conn, frame)
    sub.check_write()
    only_fields(frame, {"decision", "id", "version", "author"})
    decision = frame.get("decision")
    if decision not in services.DECISIONS:
        raise Invalid("'decision' must be 'accept' or 'reject'.", details={"decision": "must be accept or reject"})
    # `"id": null` is refused, not read as "every open suggestion".
    pk, version = integer(frame, "id", default=...) if "id" in frame else None, integer(frame, "version")
    author_name = frame.get("author")
    if pk is not None and author_name is not None:
        raise Invalid("'author' picks among all open suggestions: send it without 'id'.",
                      details={"author": "only without id"})
    if pk is None and version is not None:
        raise Invalid("'version' is the version of one suggestion: send it with 'id'.",
                      details={"version": "only with id"})
    if author_name is not None and not isinstance(author_name, str):
        raise Invalid("'author' must be a username.", details={"author": "must be a username"})
    user = conn.user

    def decide():
        check_rate("write", f"u{user.pk}")
        doc = current_document(sub)
        if pk is not None:
            s = (Suggestion.objects.select_related("author", "decided_by", "document__story")
                 .filter(document=doc, pk=pk).first())
            if s is None:
                raise NotFound(f"No suggestion {pk} on '{doc.name}'.")
            s = services.suggestion_decide(suggestion=s, by=user, decision=decision, version=version)
            return frames.suggestion(sub.topic, services.suggestion_json(s))
        author = None
        if author_name is not None:
            author = User.objects.filter(username=author_name).first()
            if author is None:
                raise Invalid(f"No user '{author_name[:150]}'.", details={"author": "unknown user"})
        services.decidable(Suggestion(document=doc), user)
        result = services.suggestions_decide_all(doc=doc, by=user, decision=decision, author=author)
        return frames.suggestions_decided(sub.topic, **result)

    await conn.reply(await database_sync_to_async(decide)(), ref)


FRAMES = {"suggest": on_suggest, "suggestion.decide": on_decide}
