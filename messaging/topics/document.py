"""`doc:<story>/<doc>`: a document's changes (co-editing, docs/coediting.md) and its editors'
cursors. Client frames: `doc.push`, `doc.pull`, `cursor`.

Writing (`doc.push`, `cursor`) needs write access in the story. The topic remembers the caller's
rights from its last check (subscribe or a rights change) to refuse cheaply; `doc.push` is
checked again under the document's row lock, so a push racing a demotion is refused too.
"""
import time

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from messaging import frames
from messaging.fanout import group_send
from messaging.serializers import sender_json
from messaging.topics import Topic, integer
from mythline_site import metrics
from mythline_site.errors import Conflict, Forbidden, Invalid, MythlineError, NotFound
from mythline_site.throttling import check_rate
from stories.documents import changes_after, committed_revision, document_push, document_push_known_stale, note_committed
from stories.changesets import Utf16Index
from stories.models import Document
from stories.policies import StoryAccess, access_story

CURSOR_INTERVAL = 0.05  # at most one cursor frame per socket and document every 50 ms; the latest wins


class DocTopic(Topic):
    kind = "doc"

    def __init__(self, topic: str, doc: Document, access: StoryAccess):
        super().__init__(topic, access.story.slug, access.story.pk)
        self.doc, self.access = doc, access
        self.last_revision = 0
        self.pending_cursor: tuple[int, int] | None = None
        self.cursor_sent_at = 0.0
        self.cursor_timer = None

    @property
    def group(self) -> str:
        return self.doc.group_name

    def check_write(self) -> None:
        if not self.access.can_write:
            raise Forbidden("Viewers read the document but do not edit it.")

    def recheck(self, user) -> bool:
        try:
            self.access = access_story(user, self.slug)
        except MythlineError:
            return False
        return True

    def current(self):
        self.doc.refresh_from_db(fields=["text", "revision"])
        return self.doc.revision, self.doc.text

    async def on_event(self, conn, event: dict) -> None:
        kind = event["type"]
        if kind == "doc.change":
            if event["revision"] <= self.last_revision:
                return
            if event["revision"] > self.last_revision + 1:  # the layer lost some: fill from the log
                metrics.GAPS_BACKFILLED.inc()
                missing = await database_sync_to_async(changes_after)(self.doc, self.last_revision,
                                                                      event["revision"] - 1 - self.last_revision)
                for change in missing:
                    await conn.send_frame(frames.dumps(frames.doc_change(self.topic, **_change_fields(change))))
            self.last_revision = event["revision"]
            note_committed(self.doc, event["revision"])  # also what other processes committed
            await conn.send_frame(event["frame"])
        elif kind == "cursor.event":
            if event["conn"] != conn.conn_id:
                await conn.send_frame(event["frame"])
        elif kind == "cursor.flush":  # this socket's own timer (see on_cursor)
            self.cursor_timer = None
            await self.flush_cursor(conn)

    async def close(self, conn) -> None:
        if self.cursor_timer is not None:
            conn.cancel_later(self.cursor_timer)
            self.cursor_timer = None
        await super().close(conn)

    async def flush_cursor(self, conn) -> None:
        if self.pending_cursor is None:
            return
        anchor, head = self.pending_cursor
        self.pending_cursor, self.cursor_sent_at = None, time.monotonic()
        out = frames.cursor(self.topic, sender_json(conn.user), anchor, head, self.last_revision)
        await group_send(self.group, {"type": "cursor.event", "topic": self.topic, "conn": conn.conn_id,
                                      "frame": frames.dumps(out)})
        # The cursor is part of the user's presence in the story's room, when they are there.
        for room, meta in conn.presence.values():
            if room.story_id == self.doc.story_id:
                meta["c"] = {"doc": self.doc.name, "anchor": anchor, "head": head, "revision": self.last_revision,
                             "at": time.time()}
                await conn.hub.touch(room, conn.conn_id, meta)


def _change_fields(change: dict) -> dict:
    return {k: change[k] for k in ("revision", "changes", "client_id", "author")}


def _open(user, story: str, name: str, topic: str) -> DocTopic:
    access = access_story(user, story)
    doc = Document.objects.select_related("story").filter(story=access.story, name=name).first()
    if doc is None:
        raise NotFound(f"No document '{name}' in story '{story}'.")
    return DocTopic(topic, doc, access)


async def subscribe(conn, frame: dict, ref, topic: str, story: str, name: str) -> DocTopic:
    sub = await database_sync_to_async(_open)(conn.user, story, name, topic)
    await conn.fanout.join(sub.group, conn.inbox)
    conn.add_sub(sub)
    revision, text = await database_sync_to_async(sub.current)()
    sub.last_revision = revision
    await conn.reply(frames.subscribed(topic, revision=revision), ref)
    await conn.send_frame(frames.dumps(frames.doc_state(topic, revision, text,
                                                        max_insert_chars=settings.MYTHLINE_DOC_MAX_INSERT_CHARS,
                                                        max_chars=settings.MYTHLINE_DOC_MAX_CHARS,
                                                        max_changes=settings.MYTHLINE_DOC_MAX_PUSH_CHANGES)))
    return sub


# --- client frames ----------------------------------------------------------------------------------

def subscribed_doc(conn, frame) -> DocTopic:
    sub = conn.sub_for(frame.get("topic"))
    if not isinstance(sub, DocTopic):
        raise Invalid("Subscribe to the doc topic first.", details={"topic": "not subscribed"})
    return sub


def only_fields(frame: dict, allowed: set[str]) -> None:
    """Unknown fields are `invalid`, each named (a typo must not be silently ignored). For the
    frames of the apps built on the doc topic (suggestions/frames.py, comments/frames.py)."""
    unknown = sorted(set(frame) - allowed - {"type", "ref", "topic"})
    if unknown:
        raise Invalid("The frame has unknown fields.", details={k: "unknown field" for k in unknown})


def socket_char(index: Utf16Index, offset: int, field: str, what: str | None = None) -> int:
    """A socket position (UTF-16 code units, as `doc.push` counts) as the character index REST
    counts, in the text `index` was built from. `invalid` naming `field` when it is past the end or
    falls inside a surrogate pair (`what` words the second case, "'<field>'" by default)."""
    if offset > index.units:
        raise Invalid(f"'{field}' is past the end of the text ({index.units} UTF-16 units).",
                      details={field: f"at most {index.units}"})
    try:
        return index.to_index(offset)
    except ValueError:
        raise Invalid(f"{what or repr(field)} falls inside a character (a surrogate pair).",
                      details={field: "splits a surrogate pair"}) from None


def current_document(sub: DocTopic) -> Document:
    """The subscribed document as it is now (the topic's copy is as it was at subscribe). Call it
    on the database thread."""
    doc = Document.objects.select_related("story").filter(pk=sub.doc.pk).first()
    if doc is None:
        raise NotFound("The document no longer exists.")
    return doc


async def on_doc_push(conn, frame, ref):
    sub = subscribed_doc(conn, frame)
    sub.check_write()
    user = conn.user
    try:
        revision, known = frame.get("revision"), max(sub.last_revision, committed_revision(sub.doc))
        if isinstance(revision, int) and revision < known:
            # Stale for sure (a later revision is committed): refused off the database thread.
            def refuse():
                check_rate("post", f"u{user.pk}")
                document_push_known_stale(doc=sub.doc, revision=revision, client_id=frame.get("client_id", ""),
                                          known_revision=known)
            await sync_to_async(refuse, thread_sensitive=False)()
        else:
            def push():
                check_rate("post", f"u{user.pk}")
                return document_push(doc=sub.doc, author=user, revision=revision, changes=frame.get("changes"),
                                     client_id=frame.get("client_id", ""), known_revision=sub.last_revision)
            await database_sync_to_async(push)()
    except Conflict as error:
        await conn.send_error(error, ref, topic=sub.topic, revision=error.details["revision"])


async def on_doc_pull(conn, frame, ref):
    sub = subscribed_doc(conn, frame)
    after = integer(frame, "after", default=0)
    changes = await database_sync_to_async(changes_after)(sub.doc, after)
    await conn.reply(frames.doc_changes(sub.topic, changes), ref)


async def on_cursor(conn, frame, ref):
    sub = subscribed_doc(conn, frame)
    anchor = integer(frame, "anchor", default=...)
    head = integer(frame, "head", default=anchor)
    sub.check_write()
    # At most one cursor frame per topic per CURSOR_INTERVAL; the latest position wins. The delayed
    # one goes through this socket's own inbox (no task of its own), cancelled if the topic closes.
    sub.pending_cursor = (anchor, head)
    wait = CURSOR_INTERVAL - (time.monotonic() - sub.cursor_sent_at)
    if wait <= 0:
        await sub.flush_cursor(conn)
    elif sub.cursor_timer is None:
        sub.cursor_timer = conn.later(wait, {"type": "cursor.flush", "topic": sub.topic})


FRAMES = {"doc.push": on_doc_push, "doc.pull": on_doc_pull, "cursor": on_cursor}
