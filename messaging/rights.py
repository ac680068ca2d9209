"""Rights follow every change on open connections (docs/realtime.md, "Revocation").

Access is checked when a topic opens and again whenever it may have changed, never per delivered
message. A service that changes what someone may do calls one of the `*_changed` functions below
inside its transaction; after the commit one `rights.changed` event goes out on the channel layer
to a group that every affected connection, in every server process, has joined:

- `rights.user.<id>`: every socket and SSE stream of that user (joined when it opens). Sent when
  the user is added to a story, re-roled or removed; added to or removed from a channel; when one
  of their tokens is revoked; when they are deactivated.
- `rights.story.<slug>`: every connection that holds a topic of the story (joined before the
  topic's access check, so a change committed during the check is not missed). Sent when the
  story's visibility changes and when one of its channels is archived or unarchived.

A connection that gets the event re-runs the `access_*` check of its topics in the event's scope
(`story_id`, `channel_id`): a topic it may no longer read ends (`unsubscribed` with reason
`access_revoked` on a socket; the SSE stream ends); one it may still read keeps going with the
new rights (a lost write right answers later writes with `forbidden`). `token_ids` and
`deactivated` close the connections they name with 4401. A lost event (a layer restart) still
closes revoked tokens' and deactivated users' connections: each process sweeps its connections
every heartbeat interval (messaging/connections.py).
"""
from messaging.events import publish_on_commit


def user_rights_group(user_id: int) -> str:
    return f"rights.user.{user_id}"


def story_rights_group(slug: str) -> str:
    return f"rights.story.{slug}"


def rights_event(*, user_id: int | None = None, story_id: int | None = None, channel_id: int | None = None,
                 token_ids: list[int] | None = None, deactivated: bool = False) -> dict:
    """The layer event (never sent to clients): who is affected and in what scope."""
    return {"type": "rights.changed", "user_id": user_id, "story_id": story_id, "channel_id": channel_id,
            "token_ids": token_ids, "deactivated": deactivated}


def participant_changed(story, user_id: int) -> None:
    """`user_id` was added to `story`, re-roled or removed: recheck their topics in the story."""
    publish_on_commit(user_rights_group(user_id), rights_event(user_id=user_id, story_id=story.pk))
    _end_unwritable_streams(story_id=story.pk, user_id=user_id)


def membership_changed(channel, user_id: int) -> None:
    """`user_id` joined or left a private or presence channel: recheck their topic of it."""
    publish_on_commit(user_rights_group(user_id), rights_event(user_id=user_id, story_id=channel.story_id,
                                                        channel_id=channel.pk))
    _end_unwritable_streams(story_id=channel.story_id, channel_id=channel.pk, user_id=user_id)


def story_changed(story) -> None:
    """The story's visibility changed: everyone's topics in it are rechecked."""
    publish_on_commit(story_rights_group(story.slug), rights_event(story_id=story.pk))


def channel_changed(channel) -> None:
    """The channel was archived or unarchived: its topics are rechecked (archived: read-only)."""
    publish_on_commit(story_rights_group(channel.story.slug), rights_event(story_id=channel.story_id, channel_id=channel.pk))
    _end_unwritable_streams(story_id=channel.story_id, channel_id=channel.pk)


def _end_unwritable_streams(**scope) -> None:
    """A stream whose opener lost the right to post in its channel is cancelled with the change
    (streaming/, docs/protocol.md "Streaming messages"): it could never complete."""
    from streaming.services import cancel_unwritable_streams  # streaming imports messaging
    cancel_unwritable_streams(**scope)


def tokens_revoked(user_id: int, token_ids: list[int]) -> None:
    """Connections authenticated with these tokens close with 4401 (others of the user stay)."""
    if token_ids:
        publish_on_commit(user_rights_group(user_id), rights_event(user_id=user_id, token_ids=sorted(token_ids)))


def user_deactivated(user_id: int) -> None:
    """Every connection of the user closes with 4401."""
    publish_on_commit(user_rights_group(user_id), rights_event(user_id=user_id, deactivated=True))


def closes(event: dict, *, user_id: int, token_id: int | None) -> bool:
    """Does this rights event close a connection of `user_id` authenticated with `token_id`?"""
    if event.get("user_id") not in (None, user_id):
        return False
    return bool(event.get("deactivated")) or (token_id is not None and token_id in (event.get("token_ids") or ()))


def in_scope(event: dict, *, story_id: int, channel_id: int | None) -> bool:
    """Is a topic of this story (and channel, for channel topics) in the event's scope?"""
    if event.get("story_id") is not None and event["story_id"] != story_id:
        return False
    return event.get("channel_id") is None or event["channel_id"] == channel_id
