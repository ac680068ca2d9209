"""The socket frames of streaming (registered in messaging/consumers.py; docs/protocol.md, "Streaming
messages"): `stream.open`, `stream.append`, `stream.complete`, `stream.cancel`.

Each does exactly what its REST endpoint does, through the same services (the same checks, the
same `post` budget, the same refusals); the socket need not be subscribed to the channel (as for
`publish`). The live frames (`stream.started`, `stream.chunk`, `stream.ended`) reach subscribers of
the channel's topic, the opener's own socket included.
"""
from channels.db import database_sync_to_async

from messaging import frames
from messaging.topics import integer
from messaging.topics.channel import channel_topic_of
from mythline_site.errors import Invalid
from streaming import services

OPEN_FIELDS = {"topic", *services.OPEN_FIELDS}


def only(frame: dict, allowed: set) -> None:
    unknown = sorted(set(frame) - allowed - {"type", "ref"})
    if unknown:
        raise Invalid("The frame has unknown fields.", details={name: "unknown field" for name in unknown})


def stream_id(frame: dict) -> str:
    value = frame.get("id")
    if not isinstance(value, str):
        raise Invalid("'id' must be the stream's id (a UUID string).", details={"id": "must be a UUID string"})
    return value


async def on_open(conn, frame, ref):
    """`{"type": "stream.open", "topic", "msg_type", "payload"?, "field"?, "id"?, "reply_to"?,
    "correlation_id"?, "audience"?}` -> `stream.opened`."""
    story, name = channel_topic_of(frame, "Open a stream in")
    only(frame, OPEN_FIELDS)
    data = {k: v for k, v in frame.items() if k not in ("type", "topic", "ref")}
    stream, created = await database_sync_to_async(services.stream_open)(sender=conn.user, story=story, channel=name,
                                                                        data=data)
    await conn.reply(frames.stream_opened(frame["topic"], str(stream.id), created), ref)


async def on_append(conn, frame, ref):
    """`{"type": "stream.append", "id", "text", "offset"?}` -> `stream.appended` with the new length."""
    only(frame, {"id", "text", "offset"})
    sid, offset = stream_id(frame), integer(frame, "offset")
    stream = await database_sync_to_async(services.stream_append)(user=conn.user, stream_id=sid,
                                                                  text=frame.get("text"), offset=offset)
    await conn.reply(frames.stream_appended(services.topic_of(stream), str(stream.id), len(stream.text)), ref)


async def on_complete(conn, frame, ref):
    """`{"type": "stream.complete", "id", "payload"?}` -> `published`, as a `publish` is answered."""
    only(frame, {"id", "payload"})
    sid = stream_id(frame)
    result = await database_sync_to_async(services.stream_complete)(user=conn.user, stream_id=sid,
                                                                    payload=frame.get("payload"))
    topic = frames.channel_topic(result.data["story"], result.data["channel"])
    await conn.reply(frames.published(topic, result.data["id"], result.data["seq"], result.created), ref)


async def on_cancel(conn, frame, ref):
    """`{"type": "stream.cancel", "id"}` -> `stream.cancelled`."""
    only(frame, {"id"})
    stream = await database_sync_to_async(services.stream_cancel)(user=conn.user, stream_id=stream_id(frame))
    await conn.reply(frames.stream_cancelled(services.topic_of(stream), str(stream.id)), ref)


FRAMES = {"stream.open": on_open, "stream.append": on_append, "stream.complete": on_complete,
          "stream.cancel": on_cancel}
