"""Writes for stories, participants and invite links."""
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import hash_token
from audit import services as audit
from messaging import events, rights
from messaging.models import Channel, Membership
from messaging.services import inbox_ensure
from mythline_site.errors import Conflict, Forbidden, Invalid, NotFound, one_of
from stories.models import Document, Invite, Participant, Story
from stories.selectors import INVITE_NOT_VALID, invites_with_token, live_invites
from stories.serializers import participant_json

ROOM = "room"
GENERAL = "general"
MAIN = "main"

INVITE_DEFAULT_HOURS = 7 * 24
INVITE_MAX_HOURS = 30 * 24
INVITE_MAX_LIVE = 50
ROLE_RANK = {Participant.Role.VIEWER: 1, Participant.Role.EDITOR: 2, Participant.Role.OWNER: 3}


@transaction.atomic
def story_create(*, owner, slug: str, title: str, premise: str = "", visibility: str = "public",
                 requires_approval: bool = False, agents_suggest: bool = False, by=None) -> Story:
    """A new story with its owner, a `general` public channel and the `room` presence channel."""
    try:
        with transaction.atomic():
            story = Story.objects.create(slug=slug, title=title, premise=premise, visibility=visibility,
                                         requires_approval=requires_approval, agents_suggest=agents_suggest,
                                         owner=owner)
    except IntegrityError:
        raise Conflict(f"A story with slug '{slug}' already exists.", details={"slug": "taken"}) from None
    Participant.objects.create(story=story, user=owner, role=Participant.Role.OWNER)
    Channel.objects.create(story=story, name=GENERAL, kind=Channel.Kind.PUBLIC, created_by=owner,
                           topic="Everything about the story")
    room = Channel.objects.create(story=story, name=ROOM, kind=Channel.Kind.PRESENCE, created_by=owner,
                                  topic="Who is here")
    Membership.objects.create(channel=room, user=owner, role=Membership.Role.OWNER)
    Document.objects.create(story=story, name=MAIN, title=title, created_by=owner)
    audit.record(audit.STORY_CREATED, by=by, story=story, subject=owner, after={"visibility": visibility})
    return story


@transaction.atomic
def story_update(*, story: Story, title: str | None = None, premise: str | None = None,
                 visibility: str | None = None, requires_approval: bool | None = None,
                 agents_suggest: bool | None = None, by=None) -> Story:
    changed, was_visibility = [], story.visibility
    for name, value in (("title", title), ("premise", premise), ("visibility", visibility),
                        ("requires_approval", requires_approval), ("agents_suggest", agents_suggest)):
        if value is not None and getattr(story, name) != value:
            setattr(story, name, value)
            changed.append(name)
    if changed:
        story.save(update_fields=[*changed, "updated_at"])
        events.publish_story_event(story, "story.updated", {f: getattr(story, f) for f in changed})
        if "visibility" in changed:
            rights.story_changed(story)  # who may read it changed: open topics are rechecked
            audit.record(audit.STORY_VISIBILITY_CHANGED, by=by, story=story, before={"visibility": was_visibility},
                         after={"visibility": story.visibility})
    return story


# The roles an owner gives (the owner's own role comes with the story).
ASSIGNABLE_ROLES = (Participant.Role.EDITOR, Participant.Role.VIEWER)


@transaction.atomic
def participant_add(*, story: Story, user, role: str, by=None, invite=None,
                    keep_role: bool = False) -> tuple[Participant, bool]:
    """Add `user` with `role` (or change their role). Joins the room; an agent gets its inbox.
    `by` is who did it (the audit log's actor); `invite` the link it came through, if any.
    With `keep_role` (joining), a participant already in keeps their role."""
    if role not in ASSIGNABLE_ROLES:
        raise Invalid("role must be 'editor' or 'viewer'.", details={"role": one_of(ASSIGNABLE_ROLES)})
    if getattr(user, "is_agent", False):
        from writers.models import CrewAgent  # a story's own crew agent serves that story only

        if CrewAgent.objects.filter(user_id=user.pk).exclude(story_id=story.pk).exists():
            raise Forbidden(f"'{user.username}' is the crew of another story; add a writers' room to this one "
                            "instead.")
    participant, created = _participant_get_or_create(story, user, role)
    if not created:
        if keep_role:
            return participant, False
        if participant.role == Participant.Role.OWNER:
            raise Conflict("The story owner's role cannot be changed.", details={"username": user.username})
        if participant.role != role:
            audit.record(audit.PARTICIPANT_ROLE_CHANGED, by=by, story=story, subject=user,
                         before={"role": participant.role}, after={"role": role}, extra=_via(invite))
            participant.role = role
            participant.save(update_fields=["role"])
            events.publish_story_event(story, "participant.updated", participant_json(participant))
            rights.participant_changed(story, user.pk)
        return participant, False
    room = Channel.objects.filter(story=story, name=ROOM).first()
    if room is not None:
        Membership.objects.get_or_create(channel=room, user=user)
    if user.is_agent:
        inbox_ensure(story=story, agent=user)
    events.publish_story_event(story, "participant.joined", participant_json(participant))
    rights.participant_changed(story, user.pk)
    audit.record(audit.PARTICIPANT_ADDED, by=by, story=story, subject=user, after={"role": role}, extra=_via(invite))
    return participant, True


def _participant_get_or_create(story: Story, user, role: str) -> tuple[Participant, bool]:
    """The participant row of `user`, created with `role` when there is none. Two requests at once
    (two joins, a join and an invite, two adds) both find none and insert: the insert that loses
    hits the unique constraint inside its own savepoint, and the row the other one committed is
    the answer, as if it had been there first (no 500)."""
    participant = Participant.objects.select_related("user").filter(story=story, user=user).first()
    if participant is not None:
        return participant, False
    try:
        with transaction.atomic():
            return Participant.objects.create(story=story, user=user, role=role), True
    except IntegrityError:
        return Participant.objects.select_related("user").get(story=story, user=user), False


def _via(invite) -> dict:
    return {"invite_id": invite.pk, "invite_prefix": invite.prefix} if invite is not None else {}


@transaction.atomic
def participant_remove(*, story: Story, user, by=None) -> None:
    """Take `user` out of the story: their role, and their memberships of its channels (an
    agent's inbox stays, as the record of its work, readable by the owner). The owner cannot be
    removed. Their open topics in the story are rechecked at once."""
    participant = Participant.objects.filter(story=story, user=user).first()
    if participant is None:
        raise NotFound(f"'{user.username}' does not take part in story '{story.slug}'.")
    if participant.role == Participant.Role.OWNER:
        raise Conflict("The story owner cannot be removed.", details={"username": user.username})
    data = participant_json(participant)
    # Two removals at once both find the row; only the one whose DELETE took it goes on (the
    # other answers as if it had come second), so the change is published and recorded once.
    deleted, _ = Participant.objects.filter(pk=participant.pk).delete()
    if not deleted:
        raise NotFound(f"'{user.username}' does not take part in story '{story.slug}'.")
    Membership.objects.filter(channel__story=story, user=user).exclude(channel__inbox_agent=user).delete()
    events.publish_story_event(story, "participant.removed", data)
    rights.participant_changed(story, user.pk)
    audit.record(audit.PARTICIPANT_REMOVED, by=by, story=story, subject=user, before={"role": data["role"]})


def story_join(*, story: Story, user) -> tuple[Participant, bool]:
    """Join a public story as editor; a participant already in keeps their role."""
    existing = Participant.objects.select_related("user").filter(story=story, user=user).first()
    if existing is not None:
        return existing, False
    return participant_add(story=story, user=user, role=Participant.Role.EDITOR, by=user, keep_role=True)


# --- Invite links -------------------------------------------------------------------------------

@transaction.atomic
def invite_create(*, story: Story, by, role: str,
                  expires_in_hours: int = INVITE_DEFAULT_HOURS) -> tuple[Invite, str]:
    """A new invite link to `story` with `role`; returns it with its raw token (shown once: only
    its SHA-256 is stored). At most INVITE_MAX_LIVE live links per story."""
    if role not in ASSIGNABLE_ROLES:
        raise Invalid("role must be 'editor' or 'viewer'.", details={"role": one_of(ASSIGNABLE_ROLES)})
    if (isinstance(expires_in_hours, bool) or not isinstance(expires_in_hours, int)
            or not 1 <= expires_in_hours <= INVITE_MAX_HOURS):
        raise Invalid(f"expires_in_hours must be a whole number of hours from 1 to {INVITE_MAX_HOURS}.",
                      details={"expires_in_hours": f"a whole number from 1 to {INVITE_MAX_HOURS}"})
    # The story's row serializes link creation, so two requests cannot both take the last place.
    Story.objects.select_for_update().filter(pk=story.pk).values_list("pk", flat=True).first()
    now = timezone.now()
    if live_invites(story, now).count() >= INVITE_MAX_LIVE:
        raise Conflict(f"A story has at most {INVITE_MAX_LIVE} live invite links; revoke one first.",
                       details={"live": INVITE_MAX_LIVE})
    raw = secrets.token_urlsafe(24)
    invite = Invite.objects.create(story=story, role=role, key_hash=hash_token(raw), prefix=raw[:8],
                                   created_by=by, expires_at=now + timedelta(hours=expires_in_hours))
    audit.record(audit.INVITE_CREATED, by=by, story=story, after={"role": role},
                 extra={"invite_id": invite.pk, "invite_prefix": invite.prefix,
                        "expires_at": invite.expires_at.isoformat().replace("+00:00", "Z")})
    return invite, raw


@transaction.atomic
def invite_revoke(*, invite: Invite, by) -> Invite:
    """Revoke an invite link (again is a no-op: the first revocation time stays). `by` is who
    revoked it (the owner, or staff in the admin, which logs it); the link keeps no record of it."""
    locked = Invite.objects.select_for_update(of=("self",)).select_related("created_by").get(pk=invite.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit.record(audit.INVITE_REVOKED, by=by, story_id=locked.story_id,
                     extra={"invite_id": locked.pk, "invite_prefix": locked.prefix})
    invite.revoked_at = locked.revoked_at
    return locked


@transaction.atomic
def invite_accept(*, raw_token: str, user) -> tuple[Participant, bool]:
    """Join the invite's story with its role, through `participant_add` (its events and the rights
    recheck). A role is never lowered: the owner stays owner, an editor accepting a viewer link
    stays editor (the participant as is, created False). An unknown, expired or revoked link all
    get the same NotFound. Agents are added by the owner, not through links."""
    if getattr(user, "is_agent", False):
        raise Forbidden("Agents cannot accept invite links; the story's owner adds them by username.")
    invite = invites_with_token(raw_token).select_for_update(of=("self",)).select_related("story").first()
    if invite is None:
        raise NotFound(INVITE_NOT_VALID)
    existing = (Participant.objects.select_related("user", "story")
                .filter(story=invite.story, user=user).first())
    if existing is not None and ROLE_RANK[existing.role] >= ROLE_RANK[invite.role]:
        participant, created = existing, False
    else:
        participant, created = participant_add(story=invite.story, user=user, role=invite.role, by=user,
                                               invite=invite)
    invite.uses += 1
    invite.last_used_at = timezone.now()
    invite.save(update_fields=["uses", "last_used_at"])
    return participant, created
