"""Comments over the socket (docs/protocol.md, 6.4): `comment` (open a thread), `comment.reply` and
`comment.resolve`, on a `doc:` topic the socket is subscribed to.

The frames are parsed here and then do exactly what REST does (comments/api.py), through the same
selectors, services and checks: the story's writers (agents too) comment, the same limits and 409s,
one `write` unit of the rate budget per frame (as a REST POST), the `comment.*` story events sent
once by the services on commit. A thread's `from`/`to` count UTF-16 code units of the text at
`revision`, as `doc.push` does; they are turned into the characters REST counts against that same
text and handed to `services.thread_create` with that `revision`.
"""
from channels.db import database_sync_to_async
from django.conf import settings

from comments import selectors, services
from messaging import frames
from messaging.topics import integer
from messaging.topics.document import current_document, only_fields, socket_char, subscribed_doc
from mythline_site.errors import Invalid
from mythline_site.throttling import check_rate
from stories.changesets import Utf16Index
from stories.documents import text_at
from stories.models import Document


def thread_id(frame: dict):
    value = frame.get("thread")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("'thread' must be a thread's id.", details={"thread": "must be an integer"})
    return value


def to_chars(doc: Document, revision: int, start: int, end: int) -> tuple[int, int]:
    """`start`/`end` (UTF-16 units of the text at `revision`) in characters of that text. A
    revision the service refuses (ahead, or too far behind) is left to it: it refuses it as REST does."""
    if revision > doc.revision or doc.revision - revision > settings.MYTHLINE_DOC_MAX_LAG:
        return start, end
    index = Utf16Index(text_at(doc, revision))
    return socket_char(index, start, "from"), socket_char(index, end, "to")


async def on_comment(conn, frame, ref):
    """`{"type": "comment", "topic", "from", "to", "revision"?, "body"}` -> `comment.thread`."""
    sub = subscribed_doc(conn, frame)
    sub.check_write()  # viewers: refused without the database (the service checks again under the lock)
    only_fields(frame, {"from", "to", "revision", "body"})
    start, end = integer(frame, "from", default=...), integer(frame, "to", default=...)
    revision = integer(frame, "revision")
    if "body" not in frame:
        raise Invalid("'body' is required.", details={"body": "required"})
    services.clean_body(frame["body"])  # refused before the database and the rate budget
    user = conn.user

    def comment():
        check_rate("write", f"u{user.pk}")
        doc = current_document(sub)
        at = doc.revision if revision is None else revision
        start_c, end_c = to_chars(doc, at, start, end)
        t = services.thread_create(doc=doc, author=user,
                                   body={"from": start_c, "to": end_c, "revision": at, "body": frame["body"]})
        return services.thread_json(t)

    made = await database_sync_to_async(comment)()
    await conn.reply(frames.comment_thread(sub.topic, made), ref)


async def on_reply(conn, frame, ref):
    """`{"type": "comment.reply", "topic", "thread", "body"}` -> `comment`."""
    sub = subscribed_doc(conn, frame)
    sub.check_write()
    only_fields(frame, {"thread", "body"})
    pk = thread_id(frame)
    body = {k: frame[k] for k in ("body",) if k in frame}
    user = conn.user

    def reply():
        check_rate("write", f"u{user.pk}")
        t = selectors.get_thread(current_document(sub), pk)
        return services.comment_json(services.comment_reply(thread=t, author=user, body=body))

    made = await database_sync_to_async(reply)()
    await conn.reply(frames.comment(sub.topic, made), ref)


async def on_resolve(conn, frame, ref):
    """`{"type": "comment.resolve", "topic", "thread", "resolved", "version"?}` -> `comment.thread`."""
    sub = subscribed_doc(conn, frame)
    sub.check_write()
    only_fields(frame, {"thread", "resolved", "version"})
    pk = thread_id(frame)
    if "resolved" not in frame:
        raise Invalid("'resolved' is required.", details={"resolved": "required"})
    resolved, version = frame["resolved"], frame.get("version")
    user = conn.user

    def resolve():
        check_rate("write", f"u{user.pk}")
        t = selectors.get_thread(current_document(sub), pk)
        return services.thread_json(services.thread_resolve(thread=t, by=user, resolved=resolved, version=version))

    made = await database_sync_to_async(resolve)()
    await conn.reply(frames.comment_thread(sub.topic, made), ref)


FRAMES = {"comment": on_comment, "comment.reply": on_reply, "comment.resolve": on_resolve}
