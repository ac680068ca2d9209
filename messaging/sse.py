"""Server-Sent Events: `GET .../channels/{channel}/events?after=N` (or `Last-Event-ID: N`).

Replay from the database, then live, each message as `id: <seq>` / `event: message` /
`data: <message JSON>`, with a comment line every MYTHLINE_SSE_KEEPALIVE_SECONDS. The stream is
driven by the same channel feed as the socket's channel topic (messaging/topics/channel.py), which
fills any gap the channel layer leaves. Without `after` or `Last-Event-ID`, the stream starts live
from the channel's current last_seq. Streaming messages (streaming/live.py) come as `stream.*`
events without an `id:` line, so Last-Event-ID keeps counting messages only.

A stream counts against the user's `MYTHLINE_MAX_SSE_PER_USER` (429 past it), and one that
replays (`after`) costs a read. Rights changes reach it like a socket (messaging/rights.py): a
stream whose user may no longer read the channel, or whose token was revoked, ends.
"""
import asyncio
import logging
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import aget_user
from django.http import StreamingHttpResponse

from accounts.authentication import bearer_from_header, user_for_token
from messaging import frames, rights
from messaging.connections import Connection, get_connections
from messaging.fanout import Inbox, subscriber_id
from messaging.models import Channel
from messaging.selectors import parse_int
from messaging.topics.channel import check_replay_rate, open_channel_feed
from mythline_site import metrics
from mythline_site.errors import STORE_DOWN_ERRORS, MythlineError, Unauthenticated, Unavailable, error_response
from presence.services import Room, connection_meta, get_hub
from streaming import live as streams

logger = logging.getLogger("mythline.sse")


async def _user(request):
    header = request.headers.get("Authorization")
    if header is not None:
        raw = bearer_from_header(header)
        user = await database_sync_to_async(user_for_token)(raw) if raw else None
        if user is None:
            raise Unauthenticated("Unknown or revoked token.")
        return user
    user = await aget_user(request)
    if not user.is_authenticated:
        raise Unauthenticated()
    return user


def _message_text(feed, frame_text: str) -> str:
    """The message JSON inside a `message` frame, cut out rather than decoded and re-encoded."""
    prefix = feed.replay_prefix if frame_text.startswith(feed.replay_prefix) else feed.live_prefix
    return frame_text[len(prefix):-1]


def _error(error: MythlineError):
    metrics.ERRORS.labels(error.code, "sse").inc()
    return error_response(error.code, error.message, error.status, error.details, error.headers)


async def channel_events(request, story, channel):
    if request.method != "GET":
        return error_response("invalid", "Use GET.", 405)
    registry, inbox = get_connections(), Inbox()
    try:
        user = await _user(request)
        after = parse_int(request.GET.get("after", request.headers.get("Last-Event-ID")), "after")

        def open_feed():
            check_replay_rate(user, after)
            return open_channel_feed(user, story, channel, topic=frames.channel_topic(story, channel),
                                     types=[t for t in request.GET.get("type", "").split(",") if t])

        feed = await database_sync_to_async(open_feed)()
        record = Connection("sse", subscriber_id("sse"), user.pk, getattr(user, "api_token_id", None), inbox)
        await registry.reserve(record)
    except MythlineError as error:
        return _error(error)
    except STORE_DOWN_ERRORS as exc:  # the database or Redis is down: 503 with Retry-After
        logger.error("unavailable: %s: %s", type(exc).__name__, exc)
        return _error(Unavailable())

    async def stream():
        out: list[str] = []

        async def collect(frame_text, seq):
            # JSON text has no raw newlines, so the message is one `data:` line.
            out.append(f"id: {seq}\nevent: message\ndata: {_message_text(feed, frame_text)}\n\n")

        metrics.SSE_STREAMS_OPEN.inc()
        metrics.SUBSCRIPTIONS.inc()
        # An SSE reader of a presence channel is present like a socket; the server heartbeats for it.
        room = Room.of(feed.channel) if feed.channel.kind == Channel.Kind.PRESENCE else None
        hub = get_hub() if room else None
        meta = connection_meta(user) if room else None
        beat = settings.MYTHLINE_HEARTBEAT_SECONDS
        wait = min(settings.MYTHLINE_SSE_KEEPALIVE_SECONDS, beat) if room else settings.MYTHLINE_SSE_KEEPALIVE_SECONDS
        try:
            # Everything is joined here, when the response starts: a response the server never
            # sends leaves nothing behind. Rights changes are heard from before the second access
            # check, so one committed since the first is not missed.
            await registry.attach(record)
            await registry.join_story(record, story)
            last_seq = await feed.start(registry.fanout, inbox, after)
            if not await database_sync_to_async(feed.recheck)():
                return
            if room:
                await hub.touch(room, record.conn_id, meta)
            yield f"retry: 2000\n: subscribed {feed.topic} last_seq={last_seq}\n\n"
            if after is not None and after < last_seq:
                await feed.send_range(after, last_seq, collect, replay=True)
                for chunk in out:
                    yield chunk
                out.clear()
            # The open streams with their text so far, as `stream.started` events (streaming/live.py).
            started, snapshot = await database_sync_to_async(streams.snapshot)(feed)
            for frame in started:
                yield streams.sse_started(frame)
            refreshed = time.monotonic()
            while True:
                timeout = wait
                if room:
                    # Refresh the presence entry every interval, also when events keep arriving
                    # (a busy room): only refreshing on a quiet interval would let it expire.
                    due = refreshed + beat - time.monotonic()
                    if due <= 0:
                        await hub.touch(room, record.conn_id, meta)
                        refreshed, due = time.monotonic(), beat
                    timeout = min(wait, due)
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows the task's
                    # cancellation (the client went away) when an event arrives at the same moment,
                    # and the stream would then run on, and keep its reader present, forever.
                    async with asyncio.timeout(timeout):
                        event = await inbox.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    return  # fell too far behind: the client reconnects with Last-Event-ID
                kind = event.get("type")
                if kind == "rights.changed":
                    if rights.closes(event, user_id=user.pk, token_id=record.token_id):
                        return  # token revoked or user deactivated
                    if (rights.in_scope(event, story_id=feed.channel.story_id, channel_id=feed.channel.pk)
                            and not await database_sync_to_async(feed.recheck)()):
                        return  # may no longer read the channel: the stream ends
                    continue
                if kind == "stream.event":  # no `id:` line: Last-Event-ID counts messages only
                    if event.get("topic") == feed.topic and snapshot.admits(event) and streams.wants(feed, event):
                        yield streams.sse_event(event["event"], event["sse"])
                    continue
                if kind != "message.created" or event.get("topic") != feed.topic:
                    continue
                if not await feed.on_live(event, collect):
                    return  # too far behind: the client reconnects with Last-Event-ID
                for chunk in out:
                    yield chunk
                out.clear()
        except STORE_DOWN_ERRORS as exc:
            # The database or Redis went down while the stream needed it (a gap to fill, a replay, a
            # rights check): end the stream cleanly; the client reconnects after `retry` with
            # Last-Event-ID, as after any end of stream.
            logger.error("unavailable: ending SSE stream %s: %s: %s", record.conn_id, type(exc).__name__, exc)
        finally:
            if room:
                await hub.remove(room, record.conn_id)
            metrics.SSE_STREAMS_OPEN.dec()
            metrics.SUBSCRIPTIONS.dec()
            await registry.fanout.leave(feed.group, inbox)
            await registry.close(record)

    response = StreamingHttpResponse(stream(), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
