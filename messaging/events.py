"""The one place that tells the real-time layer about stored changes.

Only services call `publish_on_commit`, inside their transaction: the event is sent after the
commit (never for a rolled-back write) and at most once. The channel layer is a transport, not a
store: if an event is lost, subscribers backfill from the database by seq.

Events carry the client frame already encoded (`frame`), so a broadcast is serialized once, not
once per subscriber.
"""
import logging

from asgiref.sync import async_to_sync
from django.db import transaction

from messaging import frames
from messaging.fanout import group_send
from messaging.frames import dumps  # noqa: F401 - re-exported: services encode with it

logger = logging.getLogger("mythline.events")


def story_group(story_id: int) -> str:
    return f"story.{story_id}"


def channel_group(channel_id: int) -> str:
    return f"chan.{channel_id}"


def _send(group: str, event: dict) -> None:
    try:
        async_to_sync(group_send)(group, event)
    except Exception:  # noqa: BLE001 - the write is committed; a lost event is backfilled by seq
        logger.exception("publishing %s to %s failed", event.get("type"), group)


def publish_on_commit(group: str, event: dict) -> None:
    """Send `event` to `group` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _send(group, event), robust=True)


async def _send_each(group: str, events: list[dict]) -> None:
    for event in events:  # one failing does not keep the others back (each is backfilled by seq)
        try:
            await group_send(group, event)
        except Exception:  # noqa: BLE001 - as in _send
            logger.exception("publishing %s to %s failed", event.get("type"), group)


def _send_all(group: str, events: list[dict]) -> None:
    try:
        async_to_sync(_send_each)(group, events)
    except Exception:  # noqa: BLE001 - as in _send
        logger.exception("publishing %d events to %s failed", len(events), group)


def publish_all_on_commit(group: str, events: list[dict]) -> None:
    """`publish_on_commit` for several events of one group, in order, with one hand-over from the
    request's thread to the event loop (a batch post's messages)."""
    if events:
        transaction.on_commit(lambda: _send_all(group, events), robust=True)


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
