"""Writes of streaming: open, append, complete, cancel (docs/protocol.md, "Streaming messages").

A stream is a message being written in chunks. Opening one checks what a post checks (the
channel's write access, the `post` rate budget, the body as `clean_message_input` validates a post,
with the streamed field standing in for its text); each append adds text under the stream's row
lock and is published at once; completing posts the final message through `message_post` with the
stream's id, so every message policy runs and a repeated complete answers with the same message.
The log only ever holds that one final message.

Live frames go out through `events.publish_on_commit` on the channel's group, as `stream.event`
layer events carrying the socket frame and the SSE data pre-encoded (messaging/topics/channel.py
and messaging/sse.py forward them, filtered by audience as message frames are).

Budgets: opening costs one unit of the sender's `post` budget (as a post does) and so does each
append (clients batch a model's tokens into chunks, say every 100-200 ms); completing costs
nothing more (the open paid for the post). A sender holds at most MYTHLINE_STREAM_MAX_OPEN open
streams. A stream without an append for MYTHLINE_STREAM_IDLE_SECONDS is cancelled: lazily, when
its channel's streams are read (REST list, a subscribe, an SSE connect), when it is written to,
when its sender opens another, and by `cancel_idle_streams` in each server's housekeeping sweep.
A change that takes the right to post in a channel from a stream's opener cancels their open
streams there (`cancel_unwritable_streams`, called from messaging/rights.py).
"""
import json
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging import events, frames, relations
from messaging.models import Message
from messaging.policies import ChannelAccess, access_channel
from messaging.schemas import SCHEMAS, _text
from messaging.serializers import iso, sender_json
from messaging.services import ID_TAKEN, PostResult, clean_message_input, message_post, posted_json
from mythline_site.errors import Conflict, Forbidden, Invalid, MythlineError, NotFound, PayloadTooLarge, RateLimited
from mythline_site.throttling import check_rate
from streaming.models import Stream

OPEN_FIELDS = frozenset({"msg_type", "payload", "field", "id", "reply_to", "correlation_id", "audience"})
# Stands in for the streamed text while the rest of the body is validated as a post's would be.
PLACEHOLDER = "…"
NO_SUCH_STREAM = "No such stream."


# --- shapes -------------------------------------------------------------------------------------

def stream_json(stream: Stream) -> dict:
    """A stream as REST, MCP and the `stream.started` frame show it (`text`: what was written so far)."""
    return {"id": str(stream.id), "story": stream.story.slug, "channel": stream.channel.name,
            "sender": sender_json(stream.sender), "msg_type": stream.msg_type, "payload": stream.payload,
            "field": stream.field, "text": stream.text, "status": stream.status,
            "reply_to": str(stream.reply_to) if stream.reply_to else None,
            "correlation_id": stream.correlation_id, "audience": stream.audience,
            "started_at": iso(stream.opened_at), "updated_at": iso(stream.updated_at)}


def topic_of(stream: Stream) -> str:
    return frames.channel_topic(stream.story.slug, stream.channel.name)


def live_event(stream: Stream, frame: dict, *, offset: int = 0, end: int = 0) -> dict:
    """The channel-layer event of one stream frame: the socket frame and the SSE `data` encoded
    once here (the SSE data is the frame without `type` and `topic`), and what a subscriber needs to
    filter it as a message (audience, msg_type) and to drop what its snapshot already had
    (`offset`, `end`: the chunk's range)."""
    sse = {k: v for k, v in frame.items() if k not in ("type", "topic")}
    return {"type": "stream.event", "topic": frame["topic"], "event": frame["type"], "id": str(stream.id),
            "msg_type": stream.msg_type, "sender_id": stream.sender_id, "audience_kind": stream.audience_kind,
            "recipient_ids": stream.recipient_ids, "offset": offset, "end": end,
            "frame": frames.dumps(frame), "sse": frames.dumps(sse)}


def _publish(stream: Stream, frame: dict, **range_) -> dict:
    event = live_event(stream, frame, **range_)
    events.publish_on_commit(stream.channel.group_name, event)
    return event


def started_frame(stream: Stream) -> dict:
    return frames.stream_started(topic_of(stream), stream_json(stream))


# --- reads and access ------------------------------------------------------------------------------

def idle_cutoff(now=None):
    return (now or timezone.now()) - timedelta(seconds=settings.MYTHLINE_STREAM_IDLE_SECONDS)


def stream_visible(stream: Stream, user, access: ChannelAccess) -> bool:
    """The audience rule of messages (messaging.policies.audience_includes), for a stream whose
    channel `access` says the user reads."""
    kind = stream.audience_kind
    if kind == Message.Audience.ALL or stream.sender_id == user.pk or access.is_story_owner:
        return True
    if kind == Message.Audience.AGENTS:
        return user.is_agent
    if kind == Message.Audience.HUMANS:
        return not user.is_agent
    return user.pk in stream.recipient_ids


def open_streams(channel, *, now=None) -> list[Stream]:
    """The channel's open streams, oldest first; idle ones are cancelled on the way (lazily)."""
    cutoff = idle_cutoff(now)
    found, live = list(Stream.objects.select_related("story", "channel", "sender")
                       .filter(channel_id=channel.pk, status=Stream.Status.OPEN)), []
    for stream in found:
        if stream.updated_at <= cutoff:
            _cancel_idle(stream, cutoff)
        else:
            live.append(stream)
    return live


def readable_open_streams(access: ChannelAccess, user) -> list[Stream]:
    return [s for s in open_streams(access.channel) if stream_visible(s, user, access)]


def _load(stream_id) -> Stream:
    try:
        pk = uuid.UUID(str(stream_id))
    except ValueError:
        raise NotFound(NO_SUCH_STREAM) from None
    stream = Stream.objects.select_related("story", "channel", "sender").filter(pk=pk).first()
    if stream is None:
        raise NotFound(NO_SUCH_STREAM)
    return stream


def stream_for(user, stream_id, *, cancel: bool = False) -> tuple[Stream, ChannelAccess | None]:
    """The stream and the caller's access to its channel, for a write.

    To write, its opener must still be allowed to post in the channel (rights change: a demoted or
    removed opener is refused as a post would be; an archived channel is `archived`); to cancel,
    the opener needs no access at all (it is their stream: the SDK's cancel-on-exit must work
    after a demotion, or the stream would show and hold an open slot until it idles out), and
    gets None for the access. Anyone else who may read it (its channel and its audience) is refused
    with 403, except a channel manager (the channel's owner, the story owner) cancelling it; for
    the rest it does not exist (404)."""
    stream = _load(stream_id)
    slug, name = stream.story.slug, stream.channel.name
    if stream.sender_id == user.pk:
        return stream, None if cancel else access_channel(user, slug, name, for_write=True)
    try:
        access = access_channel(user, slug, name)
    except MythlineError:
        raise NotFound(NO_SUCH_STREAM) from None
    if not stream_visible(stream, user, access):
        raise NotFound(NO_SUCH_STREAM)
    if cancel and access.can_manage:
        return stream, access
    what = "or a manager of its channel " if cancel else ""
    raise Forbidden(f"Only the stream's opener {what}may do that.", details={"id": "not your stream"})


# --- writes -------------------------------------------------------------------------------------------

def _streamable_field(msg_type: str, field) -> str | None:
    """An error for `field`, or None: a built-in type streams one of its free-text fields, any other
    type any field."""
    if not isinstance(field, str) or not field or len(field) > 64:
        return "must be the name of a payload field (1-64 characters)"
    schema = SCHEMAS.get(msg_type)
    if schema is None:
        return None
    texts = [f.name for f in schema if f.check is _text]
    if field not in texts:
        return f"must be a text field of msg_type '{msg_type}': " + ", ".join(texts) if texts else \
            f"msg_type '{msg_type}' has no text field to stream"
    return None


def _encoded_size(stream_payload: dict, field: str, text: str) -> int:
    """The bytes of the final payload, as the post's size policy counts them."""
    payload = {**stream_payload, field: text}
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())


def stream_open(*, sender, story: str, channel: str, data) -> tuple[Stream, bool]:
    """Open a stream as `sender` (REST, socket and MCP all come here). Returns (stream, created):
    an open repeated with the same `id` (a retry) answers with the stream it opened. The channel
    is checked before the budget is charged: a refused open costs nothing."""
    access = access_channel(sender, story, channel, for_write=True)
    check_rate("post", f"u{sender.pk}")
    return stream_start(sender=sender, access=access, data=data)


@transaction.atomic
def stream_start(*, sender, access: ChannelAccess, data) -> tuple[Stream, bool]:
    if not isinstance(data, dict):
        raise Invalid("The stream must be a JSON object.")
    errors = {name: "unknown field" for name in sorted(set(data) - OPEN_FIELDS)}
    msg_type, field = data.get("msg_type"), data.get("field", "text")
    payload = data.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        errors["payload"] = "must be a JSON object (the payload without the streamed field)"
    if isinstance(msg_type, str) and msg_type in relations.RELATION_TYPES:
        errors["msg_type"] = "an edit, deletion or reaction is not streamed"
    elif isinstance(msg_type, str):
        problem = _streamable_field(msg_type, field)
        if problem:
            errors["field"] = problem
        elif isinstance(payload, dict) and field in payload:
            errors[f"payload.{field}"] = "is the streamed text: leave it out of the payload"
    if errors:
        raise Invalid("The stream is invalid.", details=errors)
    channel = access.channel
    body = {k: v for k, v in data.items() if k not in ("field", "payload")}
    body["payload"] = {**payload, field: PLACEHOLDER}
    # Every check of a post (msg_type, payload schema, id, reply_to, correlation_id, audience),
    # with a placeholder for the text the stream will write.
    clean = clean_message_input(body, sender=sender, story=channel.story, channel=channel)
    limit = settings.MYTHLINE_MAX_PAYLOAD_BYTES
    size = _encoded_size(payload, field, "")
    if size > limit:
        raise PayloadTooLarge(f"The payload is {size} bytes encoded; the limit is {limit}.",
                              details={"field": "payload", "limit": limit, "size": size})
    if clean.id is not None:
        existing = Stream.objects.select_related("story", "channel", "sender").filter(pk=clean.id).first()
        if existing is not None:
            if existing.sender_id != sender.pk:
                raise Conflict(ID_TAKEN, details={"id": "already taken"})
            reply_to = clean.reply_to.pk if clean.reply_to else None
            if (existing.channel_id != channel.pk or existing.msg_type != clean.msg_type
                    or existing.field != field or existing.payload != payload or existing.reply_to != reply_to
                    or existing.correlation_id != clean.correlation_id or existing.audience != clean.audience):
                raise Conflict(f"Stream id {clean.id} was already used for a different stream.",
                               details={"id": str(clean.id)})
            return existing, False
        if Message.objects.filter(pk=clean.id).exists():
            raise Conflict(ID_TAKEN, details={"id": "already taken"})
    now = timezone.now()
    _cancel_idle_of_sender(sender, now)
    cap = settings.MYTHLINE_STREAM_MAX_OPEN
    if Stream.objects.filter(sender=sender, status=Stream.Status.OPEN).count() >= cap:
        raise RateLimited(f"You have {cap} open streams; complete or cancel one first.", retry_after=1,
                          details={"limit": cap})
    stream = Stream.objects.create(
        id=clean.id or uuid.uuid4(), story=channel.story, channel=channel, sender=sender, msg_type=clean.msg_type,
        payload=payload, field=field, text="", reply_to=clean.reply_to.pk if clean.reply_to else None,
        correlation_id=clean.correlation_id, audience=clean.audience, audience_kind=clean.audience_kind,
        recipient_ids=clean.recipient_ids, opened_at=now, updated_at=now)
    stream.channel, stream.story, stream.sender = channel, channel.story, sender
    _publish(stream, started_frame(stream))
    return stream, True


def _gone(stream: Stream) -> MythlineError:
    return Conflict(f"The stream is {stream.status}.", details={"status": stream.status, "length": len(stream.text)})


def _locked(stream: Stream) -> Stream:
    """The stream's row, locked to the end of the transaction (SQLite: the write lock is taken at
    BEGIN IMMEDIATE), fresh."""
    fresh = Stream.objects.select_for_update().get(pk=stream.pk)
    fresh.story, fresh.channel, fresh.sender = stream.story, stream.channel, stream.sender
    return fresh


def _cancel_if_idle(stream: Stream) -> None:
    """Before a write: cancel the stream if it is idle, in its own transaction, so the cancel (and
    its `stream.ended`) stays when the write then answers 409 (the write's transaction rolls back)."""
    cutoff = idle_cutoff()
    if stream.is_open and stream.updated_at <= cutoff:
        _cancel_idle(stream, cutoff)


def stream_append(*, user, stream_id, text, offset=None) -> Stream:
    """Append `text` as the opener. With `offset` (the length the caller believes the text has,
    in characters: Unicode code points) a retry is safe: the current length appends, a chunk the
    text already ends with at that offset is ignored, anything else is 409 `conflict` with the
    current `length`."""
    if not isinstance(text, str) or not text:
        raise Invalid("'text' must be a non-empty string.", details={"text": "must be a non-empty string"})
    if "\x00" in text:
        raise Invalid("'text' must not contain the NUL character.", details={"text": "contains NUL"})
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise Invalid("'offset' must be a non-negative integer.", details={"offset": "must be a non-negative integer"})
    stream, _ = stream_for(user, stream_id)
    check_rate("post", f"u{user.pk}")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise Invalid("'text' must be Unicode text (no unpaired surrogates).", details={"text": "not Unicode"}) from None
    _cancel_if_idle(stream)
    with transaction.atomic():
        stream = _locked(stream)
        if not stream.is_open:
            raise _gone(stream)
        length = len(stream.text)
        if offset is not None and offset != length:
            if offset + len(text) <= length and stream.text[offset:offset + len(text)] == text:
                return stream  # a retry of a chunk already appended
            raise Conflict(f"The stream's text is {length} characters long, not {offset}.",
                           details={"offset": offset, "length": length})
        limit = settings.MYTHLINE_MAX_PAYLOAD_BYTES
        size = _encoded_size(stream.payload, stream.field, stream.text + text)
        if size > limit:
            raise PayloadTooLarge(f"The message would be {size} bytes encoded; the limit is {limit}.",
                                  details={"field": "text", "limit": limit, "size": size, "length": length})
        stream.text += text
        stream.updated_at = timezone.now()
        stream.save(update_fields=["text", "updated_at"])
        _publish(stream, frames.stream_chunk(topic_of(stream), str(stream.id), length, text),
                 offset=length, end=len(stream.text))
    return stream


def stream_complete(*, user, stream_id, payload=None) -> PostResult:
    """Post the final message (the stream's id, its text in its field) as the opener, through
    `message_post`: every policy of a post runs. `payload` replaces the payload's other fields
    (with the streamed field in it, that text is the final one). Completing again answers with the
    same message (`created` False)."""
    if payload is not None and not isinstance(payload, dict):
        raise Invalid("'payload' must be a JSON object.", details={"payload": "must be an object"})
    stream, access = stream_for(user, stream_id)
    _cancel_if_idle(stream)
    with transaction.atomic():
        stream = _locked(stream)
        if stream.status == Stream.Status.COMPLETED:
            message = Message.objects.select_related("sender").filter(pk=stream.pk).first()
            if message is not None:
                return PostResult(message, False, posted_json(message, channel=access.channel, sender=message.sender))
        if not stream.is_open:
            raise _gone(stream)
        final = {**(stream.payload if payload is None else payload)}
        final.setdefault(stream.field, stream.text)
        data = {"msg_type": stream.msg_type, "payload": final, "id": str(stream.id),
                "correlation_id": stream.correlation_id, "audience": stream.audience}
        if stream.reply_to:
            data["reply_to"] = str(stream.reply_to)
        # stream.ended goes out before the message frame (on_commit keeps the order); its `seq` is
        # filled in once the message is stored, before the commit. The row is marked completed
        # first: message_post refuses an id that is an open stream's (a post of the opener's own
        # must not take it), so this post is the only one that passes; a refusal rolls it back.
        ended = _end(stream, Stream.Status.COMPLETED)
        result = message_post(sender=user, access=access, data=data)
        stream.message_id = result.message.pk
        stream.save(update_fields=["message"])
        frame = frames.stream_ended(topic_of(stream), str(stream.id), Stream.Status.COMPLETED, result.message.seq)
        ended.update(live_event(stream, frame))
    return result


def stream_cancel(*, user, stream_id) -> Stream:
    """Cancel as the opener, the channel's owner or the story owner; cancelling again is a no-op."""
    stream, _ = stream_for(user, stream_id, cancel=True)
    _cancel_if_idle(stream)
    with transaction.atomic():
        stream = _locked(stream)
        if stream.status == Stream.Status.CANCELLED:
            return stream
        if not stream.is_open:
            raise _gone(stream)
        _end(stream, Stream.Status.CANCELLED)
    return stream


def _end(stream: Stream, status: str, *, seq: int | None = None) -> dict:
    stream.status, stream.updated_at = status, timezone.now()
    stream.save(update_fields=["status", "updated_at"])
    return _publish(stream, frames.stream_ended(topic_of(stream), str(stream.id), status, seq))


def _cancel_idle(stream: Stream, cutoff) -> bool:
    """Cancel one idle stream, if it still is (a guarded UPDATE: of two readers, one publishes)."""
    return _cancel_open(stream, updated_at__lte=cutoff)


def _cancel_open(stream: Stream, **guard) -> bool:
    """Cancel one stream if it is still open (and matches `guard`): a guarded UPDATE, so of two
    callers one publishes `stream.ended`."""
    with transaction.atomic():
        changed = Stream.objects.filter(pk=stream.pk, status=Stream.Status.OPEN, **guard).update(
            status=Stream.Status.CANCELLED, updated_at=timezone.now())
        if changed:
            stream.status = Stream.Status.CANCELLED
            _publish(stream, frames.stream_ended(topic_of(stream), str(stream.id), Stream.Status.CANCELLED))
    return bool(changed)


def _cancel_idle_of_sender(sender, now) -> None:
    cutoff = idle_cutoff(now)
    for stream in Stream.objects.select_related("story", "channel", "sender").filter(
            sender=sender, status=Stream.Status.OPEN, updated_at__lte=cutoff):
        _cancel_idle(stream, cutoff)


def cancel_idle_streams(*, now=None) -> int:
    """Cancel every stream idle for MYTHLINE_STREAM_IDLE_SECONDS (the housekeeping sweep calls it)."""
    cutoff = idle_cutoff(now)
    return sum(_cancel_idle(stream, cutoff) for stream in Stream.objects.select_related(
        "story", "channel", "sender").filter(status=Stream.Status.OPEN, updated_at__lte=cutoff))


def cancel_unwritable_streams(*, story_id: int, channel_id: int | None = None, user_id: int | None = None) -> int:
    """Cancel the open streams (of the story, or one channel; of one sender, or all) whose opener
    may no longer post in their channel: demoted to viewer, removed from the story or the private
    channel, the channel archived. messaging/rights.py calls it inside the transaction of the
    change, after the change: such a stream could never complete, and would otherwise stay visible
    with its text and hold one of the sender's open slots until it idles out."""
    streams = Stream.objects.select_related("story", "channel", "sender").filter(
        story_id=story_id, status=Stream.Status.OPEN)
    if channel_id is not None:
        streams = streams.filter(channel_id=channel_id)
    if user_id is not None:
        streams = streams.filter(sender_id=user_id)
    cancelled = 0
    for stream in streams:
        try:
            access_channel(stream.sender, stream.story.slug, stream.channel.name, for_write=True)
        except MythlineError:
            cancelled += _cancel_open(stream)
    return cancelled
