"""Writes to the audit log of rights. The services that change rights call `record` inside their
own transaction, once per change that happened (a no-op change writes nothing).

The actor is the `by=` the service was given: the REST views and admin actions pass the signed-in
user; the idle-channel sweeper and management commands pass none, and the row's `note` says how
the change came ('idle', 'cli', else 'system'). A management command marks its changes with
`@note("cli")` on its `handle` (or `with note("cli"):`).
"""
from contextlib import ContextDecorator
from contextvars import ContextVar

from django.db import transaction

from audit.models import EventType, RightsEvent

STORY_CREATED = EventType.STORY_CREATED
STORY_VISIBILITY_CHANGED = EventType.STORY_VISIBILITY_CHANGED
PARTICIPANT_ADDED = EventType.PARTICIPANT_ADDED
PARTICIPANT_ROLE_CHANGED = EventType.PARTICIPANT_ROLE_CHANGED
PARTICIPANT_REMOVED = EventType.PARTICIPANT_REMOVED
MEMBER_ADDED = EventType.MEMBER_ADDED
MEMBER_REMOVED = EventType.MEMBER_REMOVED
CHANNEL_ARCHIVED = EventType.CHANNEL_ARCHIVED
CHANNEL_UNARCHIVED = EventType.CHANNEL_UNARCHIVED
INVITE_CREATED = EventType.INVITE_CREATED
INVITE_REVOKED = EventType.INVITE_REVOKED
TOKEN_ISSUED = EventType.TOKEN_ISSUED
TOKEN_ROTATED = EventType.TOKEN_ROTATED
TOKEN_REVOKED = EventType.TOKEN_REVOKED
TOKENS_REVOKED_ALL = EventType.TOKENS_REVOKED_ALL
USER_DEACTIVATED = EventType.USER_DEACTIVATED
USER_REACTIVATED = EventType.USER_REACTIVATED
USER_STAFF_CHANGED = EventType.USER_STAFF_CHANGED
USER_SUPERUSER_CHANGED = EventType.USER_SUPERUSER_CHANGED
USER_GROUPS_CHANGED = EventType.USER_GROUPS_CHANGED
USER_PERMISSIONS_CHANGED = EventType.USER_PERMISSIONS_CHANGED
USER_DELETED = EventType.USER_DELETED

_note: ContextVar[str] = ContextVar("audit_note", default="")


class note(ContextDecorator):
    """Mark the actor-less changes made inside (a `with` block or a decorated function) with a
    note, e.g. `@note("cli")` on a management command's `handle`."""

    def __init__(self, text: str):
        self.text = text
        self._tokens = []

    def _recreate_cm(self):  # a fresh one per decorated call (threads, recursion)
        return note(self.text)

    def __enter__(self):
        self._tokens.append(_note.set(self.text))
        return self

    def __exit__(self, *exc):
        _note.reset(self._tokens.pop())
        return False


def _user_or_none(user):
    return user if user is not None and getattr(user, "is_authenticated", False) and user.pk else None


def record(event_type: str, *, by=None, story=None, story_id=None, subject=None, channel=None, before=None,
           after=None, extra: dict | None = None, note: str = "") -> RightsEvent:
    """One audit row for one change of rights. Must run inside the change's transaction (every
    service that changes rights is atomic): a change rolled back leaves no row."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Audit rows are written inside the transaction of the change they record.")
    actor = _user_or_none(by)
    if story is not None:
        story_id = story.pk
    elif channel is not None:
        story_id = channel.story_id
    text = note or ("" if actor is not None else (_note.get() or "system"))
    return RightsEvent.objects.create(event_type=event_type, actor=actor, subject=_user_or_none(subject),
                                      story_id=story_id, channel=channel, before=before, after=after,
                                      extra=extra or {}, note=text)


def token_fields(token) -> dict:
    """What a row says about a token: its id, prefix and label (never its hash)."""
    return {"token_id": token.pk, "prefix": token.prefix, "label": token.label}
