"""Writes for stories and participants."""
from django.db import IntegrityError, transaction

from messaging import events, rights
from messaging.models import Channel, Membership
from messaging.services import inbox_ensure
from mythline_site.errors import Conflict, Invalid, NotFound
from stories.models import Document, Participant, Story
from stories.serializers import participant_json

ROOM = "room"
GENERAL = "general"
MAIN = "main"


@transaction.atomic
def story_create(*, owner, slug: str, title: str, premise: str = "", visibility: str = "public",
                 requires_approval: bool = False) -> Story:
    """A new story with its owner, a `general` public channel and the `room` presence channel."""
    try:
        with transaction.atomic():
            story = Story.objects.create(slug=slug, title=title, premise=premise, visibility=visibility,
                                         requires_approval=requires_approval, owner=owner)
    except IntegrityError:
        raise Conflict(f"A story with slug '{slug}' already exists.", details={"slug": "taken"}) from None
    Participant.objects.create(story=story, user=owner, role=Participant.Role.OWNER)
    Channel.objects.create(story=story, name=GENERAL, kind=Channel.Kind.PUBLIC, created_by=owner,
                           topic="Everything about the story")
    room = Channel.objects.create(story=story, name=ROOM, kind=Channel.Kind.PRESENCE, created_by=owner,
                                  topic="Who is here")
    Membership.objects.create(channel=room, user=owner, role=Membership.Role.OWNER)
    Document.objects.create(story=story, name=MAIN, title=title, created_by=owner)
    return story


@transaction.atomic
def story_update(*, story: Story, title: str | None = None, premise: str | None = None,
                 visibility: str | None = None, requires_approval: bool | None = None) -> Story:
    changed = []
    for name, value in (("title", title), ("premise", premise), ("visibility", visibility),
                        ("requires_approval", requires_approval)):
        if value is not None and getattr(story, name) != value:
            setattr(story, name, value)
            changed.append(name)
    if changed:
        story.save(update_fields=[*changed, "updated_at"])
        events.publish_story_event(story, "story.updated", {f: getattr(story, f) for f in changed})
        if "visibility" in changed:
            rights.story_changed(story)  # who may read it changed: open topics are rechecked
    return story


@transaction.atomic
def participant_add(*, story: Story, user, role: str) -> tuple[Participant, bool]:
    """Add `user` with `role` (or change their role). Joins the room; an agent gets its inbox."""
    if role not in (Participant.Role.EDITOR, Participant.Role.VIEWER):
        raise Invalid("role must be 'editor' or 'viewer'.", details={"role": "must be 'editor' or 'viewer'"})
    participant = Participant.objects.select_related("user").filter(story=story, user=user).first()
    if participant is not None:
        if participant.role == Participant.Role.OWNER:
            raise Conflict("The story owner's role cannot be changed.", details={"username": user.username})
        if participant.role != role:
            participant.role = role
            participant.save(update_fields=["role"])
            events.publish_story_event(story, "participant.updated", participant_json(participant))
            rights.participant_changed(story, user.pk)
        return participant, False
    participant = Participant.objects.create(story=story, user=user, role=role)
    room = Channel.objects.filter(story=story, name=ROOM).first()
    if room is not None:
        Membership.objects.get_or_create(channel=room, user=user)
    if user.is_agent:
        inbox_ensure(story=story, agent=user)
    events.publish_story_event(story, "participant.joined", participant_json(participant))
    rights.participant_changed(story, user.pk)
    return participant, True


@transaction.atomic
def participant_remove(*, story: Story, user) -> None:
    """Take `user` out of the story: their role, and their memberships of its channels (an
    agent's inbox stays, as the record of its work, readable by the owner). The owner cannot be
    removed. Their open topics in the story are rechecked at once."""
    participant = Participant.objects.filter(story=story, user=user).first()
    if participant is None:
        raise NotFound(f"'{user.username}' does not take part in story '{story.slug}'.")
    if participant.role == Participant.Role.OWNER:
        raise Conflict("The story owner cannot be removed.", details={"username": user.username})
    data = participant_json(participant)
    participant.delete()
    Membership.objects.filter(channel__story=story, user=user).exclude(channel__inbox_agent=user).delete()
    events.publish_story_event(story, "participant.removed", data)
    rights.participant_changed(story, user.pk)


def story_join(*, story: Story, user) -> tuple[Participant, bool]:
    """Join a public story as editor; a participant already in keeps their role."""
    existing = Participant.objects.select_related("user").filter(story=story, user=user).first()
    if existing is not None:
        return existing, False
    return participant_add(story=story, user=user, role=Participant.Role.EDITOR)
