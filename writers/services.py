"""Writes of a story's writers' room (docs/crew.md): add, pause/resume, remove.

Adding makes (or reuses) one agent account per role for the story and makes it an editor, which
gives it its inbox; every change bumps the crew's version and tells the room (`crew.updated`), and
the crew worker follows within a second.
"""
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from agents.services import agent_create
from messaging import events
from mythline_site.errors import Conflict, Invalid, one_of
from stories.models import Participant, Story
from stories.services import participant_add
from writers.models import CrewAgent, StoryCrew, WorkerLease
from writers.roles import BY_NAME, DIALOGUE, NAMES, REQUIRED
from writers.selectors import crew_json

User = get_user_model()


def max_crews() -> int:
    return int(getattr(settings, "MYTHLINE_CREW_MAX_STORIES", 100))


def clean_roles(value) -> list[str]:
    """The roles asked for, in the crew's order: the required ones always, and dialogue whole or not at all."""
    if value is None:
        return list(NAMES)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("roles must be a list of role names.", details={"roles": one_of(NAMES)})
    unknown = sorted(set(value) - set(NAMES))
    if unknown:
        raise Invalid(f"Unknown role: {', '.join(unknown)}.", details={"roles": one_of(NAMES)})
    chosen = set(value) | set(REQUIRED)
    some_dialogue = chosen & set(DIALOGUE)
    if some_dialogue and some_dialogue != set(DIALOGUE):
        raise Invalid("Dialogue needs the dialogue writer and both voices, or none of them.",
                      details={"roles": f"add {', '.join(sorted(set(DIALOGUE) - chosen))} or drop the others"})
    return [name for name in NAMES if name in chosen]


def _publish(story: Story, crew: StoryCrew | None) -> None:
    events.publish_story_event(story, "crew.updated", crew_json(story, crew))


def _agent_for(story: Story, role: str) -> User:
    """The story's own agent for a role: the one the crew made before, or a new `<role>-<story id>`
    (with a suffix when that name is taken by anyone else)."""
    mine = CrewAgent.objects.select_related("user").filter(story=story, role=role).first()
    if mine is not None:
        return mine.user
    spec = BY_NAME[role]
    base = f"{role}-{story.pk}"
    for attempt in range(1, 50):
        username = base if attempt == 1 else f"{base}-{attempt}"
        if not User.objects.filter(username=username).exists():
            user = agent_create(username=username, display_name=spec.display_name, description=spec.description,
                                capabilities=list(spec.capabilities))
            CrewAgent.objects.create(user=user, story=story, role=role)
            return user
    raise Conflict(f"No free agent name for the {role} of '{story.slug}'.", details={"role": role})


@transaction.atomic
def crew_add(*, story: Story, by, roles=None, script: str = "", writes_to=None) -> tuple[StoryCrew, bool]:
    """Add the writers' room (the roles asked for; all by default; writing into `main`, or into its
    own fork with `writes_to` "fork"). A story with a crew gets its roles (and, when given, where it
    writes) changed instead (answered with created False)."""
    if writes_to is not None and writes_to not in StoryCrew.WritesTo.values:
        raise Invalid("writes_to must be 'main' or 'fork'.", details={"writes_to": one_of(StoryCrew.WritesTo.values)})
    Story.objects.select_for_update().filter(pk=story.pk).first()  # one crew change at a time per story
    crew = StoryCrew.objects.filter(story=story).first()
    created = crew is None
    # Roles left out: all of them for a new crew; the same ones for a crew the story has.
    chosen = clean_roles(roles) if roles is not None or crew is None else [r for r in NAMES if r in crew.members]
    if created and StoryCrew.objects.count() >= max_crews():
        raise Conflict(f"This server runs at most {max_crews()} crews (MYTHLINE_CREW_MAX_STORIES).",
                       details={"crews": "at the limit"})
    members = {} if crew is None else dict(crew.members)
    for role in chosen:
        if role not in members:
            members[role] = _agent_for(story, role).username
    for role in list(members):
        if role not in chosen:
            del members[role]
    for username in members.values():
        user = User.objects.get(username=username)
        participant = Participant.objects.filter(story=story, user=user).first()
        if participant is None:
            participant_add(story=story, user=user, role=Participant.Role.EDITOR, by=by)
        elif participant.role == Participant.Role.VIEWER:
            participant_add(story=story, user=user, role=Participant.Role.EDITOR, by=by)
    if crew is None:
        crew = StoryCrew.objects.create(story=story, members=members, added_by=by, script=script,
                                        writes_to=writes_to or StoryCrew.WritesTo.MAIN)
    else:
        before = (crew.members, crew.writes_to)
        crew.members = members
        crew.paused_agents = [r for r in crew.paused_agents if r in members]
        crew.writes_to = writes_to or crew.writes_to
        if (crew.members, crew.writes_to) == before:
            return crew, False  # nothing changed: no new version, no restart, no event
        crew.version += 1
        crew.save(update_fields=["members", "paused_agents", "writes_to", "version", "updated_at"])
    _publish(story, crew)
    return crew, created


@transaction.atomic
def crew_pause(*, story: Story, by, paused, agent=None) -> StoryCrew:
    """Pause or resume the whole crew, or (with `agent`: a role or its agent's username) one agent."""
    if not isinstance(paused, bool):
        raise Invalid("paused must be true or false.", details={"paused": "must be a boolean"})
    Story.objects.select_for_update().filter(pk=story.pk).first()
    crew = StoryCrew.objects.filter(story=story).first()
    if crew is None:
        raise Conflict(f"Story '{story.slug}' has no crew; add it first.", details={"crew": "none"})
    if agent is None:
        if crew.paused == paused:
            return crew
        crew.paused = paused
    else:
        role = None
        if isinstance(agent, str):
            role = agent if agent in crew.members else next((r for r, u in crew.members.items() if u == agent), None)
        if role is None:
            raise Invalid("agent must be one of the crew's roles or agents.",
                          details={"agent": one_of(sorted(crew.members))})
        now = set(crew.paused_agents)
        if (role in now) == paused:
            return crew
        now = now | {role} if paused else now - {role}
        crew.paused_agents = [r for r in NAMES if r in now]
    crew.version += 1
    crew.save(update_fields=["paused", "paused_agents", "version", "updated_at"])
    _publish(story, crew)
    return crew


@transaction.atomic
def crew_remove(*, story: Story, by) -> None:
    """The crew stops for good; its agents stay participants (what they wrote stays theirs)."""
    Story.objects.select_for_update().filter(pk=story.pk).first()
    deleted, _ = StoryCrew.objects.filter(story=story).delete()
    if deleted:
        _publish(story, None)


@transaction.atomic
def crew_adopt(*, story: Story, members: dict[str, str], script: str = "") -> StoryCrew:
    """Make existing agents (already editors of the story) its crew: `seed_demo` gives the demo story
    its named crew this way. Safe to run again."""
    for role, username in members.items():
        if role not in BY_NAME:
            raise Invalid(f"Unknown role: {role}.", details={"roles": one_of(NAMES)})
        user = User.objects.get(username=username, is_agent=True)
        CrewAgent.objects.get_or_create(user=user, defaults={"story": story, "role": role})
    crew, created = StoryCrew.objects.get_or_create(story=story, defaults={"members": members, "script": script})
    if created:
        _publish(story, crew)
    return crew


# --- the crew worker's lease ----------------------------------------------------------------------

LEASE_SECONDS = 15


def lease_acquire(*, holder: str, name: str = "crew-worker", seconds: int = LEASE_SECONDS) -> bool:
    """Take or renew the lease for `holder`: True while it holds it (nobody else did, or their lease
    expired), False while another worker does."""
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    with transaction.atomic():
        if WorkerLease.objects.filter(name=name).filter(Q(holder=holder) | Q(expires_at__lt=now)).update(
                holder=holder, expires_at=until):
            return True
        try:
            with transaction.atomic():
                WorkerLease.objects.create(name=name, holder=holder, expires_at=until)
            return True
        except IntegrityError:
            return False


def lease_release(*, holder: str, name: str = "crew-worker") -> None:
    WorkerLease.objects.filter(name=name, holder=holder).delete()
