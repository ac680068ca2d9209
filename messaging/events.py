"""The one place that tells the real-time layer about stored changes.

Only services call `publish_on_commit`, inside their transaction: the event is sent after the
commit (never for a rolled-back write) and at most once. The channel layer is a transport, not a
store: if an event is lost, subscribers backfill from the database by seq.

Events carry the client frame already encoded (`frame`), so a broadcast is serialized once, not
once per subscriber.
"""
import json
import logging

from asgiref.sync import async_to_sync
from django.db import transaction

from messaging.fanout import group_send

logger = logging.getLogger("mythline.events")


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


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
        "frame": '{"type":"message","topic":' + dumps(topic) + ',"message":' + message_json + "}",
    }


def story_event(story, event: str, data: dict, *, only_user_ids: list[int] | None = None) -> dict:
    """A story-level event (channel.created, channel.archived, participant.joined, ...).

    `only_user_ids` limits delivery (say, a private channel's creation goes to its members only).
    """
    topic = f"story:{story.slug}"
    frame = {"type": "event", "topic": topic, "event": event, "data": data}
    return {"type": "story.event", "topic": topic, "story_id": story.pk, "event": event,
            "only_user_ids": only_user_ids, "frame": dumps(frame)}


def publish_story_event(story, event: str, data: dict, *, only_user_ids: list[int] | None = None) -> None:
    publish_on_commit(story_group(story.pk), story_event(story, event, data, only_user_ids=only_user_ids))


def access_revoked_event(channel, user_id: int) -> dict:
    """Tells live subscriptions of `user_id` to `channel` that they may no longer read it."""
    return {"type": "access.revoked", "topic": f"channel:{channel.story.slug}/{channel.name}", "user_id": user_id}
