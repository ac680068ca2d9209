"""The one place that tells the real-time layer about stored changes.

Only services call `publish_on_commit`, inside their transaction: the event is sent after the
commit (never for a rolled-back write) and at most once. The channel layer is a transport, not a
store: if an event is lost, subscribers backfill from the database by seq.

Events carry the client frame already encoded (`frame`), so a broadcast is serialized once, not
once per subscriber.
"""
import asyncio
import logging
import os

from asgiref.sync import SyncToAsync, async_to_sync
from django.db import transaction

from messaging import frames
from messaging.fanout import group_send, one_per_loop
from messaging.frames import dumps  # noqa: F401 - re-exported: services encode with it

logger = logging.getLogger("mythline.events")


def story_group(story_id: int) -> str:
    return f"story.{story_id}"


def channel_group(channel_id: int) -> str:
    return f"chan.{channel_id}"


class _Outbox:
    """The events a process publishes, in order, sent by one task of the event loop: a request's
    thread hands them over and goes on (`call_soon_threadsafe`), instead of waiting for the loop to
    send each one (`async_to_sync`: a task, a future and two thread switches per event)."""

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        while True:
            group, events = await self.queue.get()
            for event in events:
                try:
                    await group_send(group, event)
                except Exception:  # noqa: BLE001 - the write is committed; a lost event is backfilled by seq
                    logger.exception("publishing %s to %s failed", event.get("type"), group)


_outboxes: dict[asyncio.AbstractEventLoop, _Outbox] = {}


def _enqueue(group: str, events: list[dict]) -> None:
    one_per_loop(_outboxes, _Outbox).queue.put_nowait((group, events))


async def _send_now(group: str, events: list[dict]) -> None:
    for event in events:
        await group_send(group, event)


def _send(group: str, events: list[dict]) -> None:
    """Publish from a request's thread: handed to the event loop's outbox when the thread serves
    that loop (a view under ASGI, `database_sync_to_async`); otherwise (a management command, a
    worker) sent at once on a loop of its own."""
    loop = main_event_loop()
    try:
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_enqueue, group, events)
        else:
            async_to_sync(_send_now)(group, events)
    except Exception:  # noqa: BLE001 - the write is committed; a lost event is backfilled by seq
        logger.exception("publishing %d events to %s failed", len(events), group)


def main_event_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop this thread works for, when it runs inside asgiref's `sync_to_async` (where
    asgiref keeps it for `async_to_sync`); None elsewhere."""
    threadlocal = SyncToAsync.threadlocal
    if getattr(threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    return getattr(threadlocal, "main_event_loop", None)


def publish_on_commit(group: str, event: dict) -> None:
    """Send `event` to `group` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _send(group, [event]), robust=True)


def publish_all_on_commit(group: str, events: list[dict]) -> None:
    """`publish_on_commit` for several events of one group, in order (a batch post's messages)."""
    if events:
        transaction.on_commit(lambda: _send(group, events), robust=True)


def message_created_event(message, message_json: str, topic: str, recipient_ids: list[int]) -> dict:
    """Channel-layer event for a stored message; `frame` is the live client frame, pre-encoded."""
    return {
        "type": "message.created",
        "topic": topic,
        "channel_id": message.channel_id,
        "story_id": message.story_id,
        "seq": message.seq,
        "id": str(message.id),
        "msg_type": message.msg_type,
        "sender_id": message.sender_id,
        "audience_kind": message.audience_kind,
        "recipient_ids": recipient_ids,
        "frame": frames.message(topic, message_json),
    }


def story_event(story, event: str, data: dict, *, only_user_ids: list[int] | None = None) -> dict:
    """A story-level event (channel.created, channel.archived, participant.joined, ...).

    `only_user_ids` limits delivery (say, a private channel's creation goes to its members only).
    """
    topic = frames.story_topic(story.slug)
    return {"type": "story.event", "topic": topic, "story_id": story.pk, "event": event,
            "only_user_ids": only_user_ids, "frame": dumps(frames.story_event(topic, event, data))}


def publish_story_event(story, event: str, data: dict, *, only_user_ids: list[int] | None = None) -> None:
    publish_on_commit(story_group(story.pk), story_event(story, event, data, only_user_ids=only_user_ids))
