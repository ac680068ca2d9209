"""Reads of a story's writers' room (docs/crew.md)."""
from django.contrib.auth import get_user_model
from django.db.models import F

from stories.models import Participant, Story
from writers.models import StoryCrew
from writers.roles import ROLES

User = get_user_model()


def crew_json(story: Story, crew: StoryCrew | None) -> dict:
    """The crew as the API, the room and the `crew.updated` event show it (without the caller's rights)."""
    members = crew.members if crew is not None else {}
    names = dict(User.objects.filter(username__in=members.values()).values_list("username", "display_name"))
    paused = set(crew.paused_agents) if crew is not None else set()
    return {
        "story": story.slug,
        "enabled": crew is not None,
        "paused": bool(crew and crew.paused),
        "script": crew.script if crew is not None else "",
        "writes_to": crew.writes_to if crew is not None else StoryCrew.WritesTo.MAIN,
        "roles": [r.name for r in ROLES if r.name in members],
        "agents": [{"username": members[r.name], "display_name": names.get(members[r.name]) or r.display_name,
                    "role": r.name, "paused": r.name in paused} for r in ROLES if r.name in members],
        "available_roles": [{"role": r.name, "username": members.get(r.name, ""), "display_name": r.display_name,
                             "description": r.description, "required": r.required} for r in ROLES],
        "version": crew.version if crew is not None else 0,
    }


def crew_of(story: Story) -> StoryCrew | None:
    return StoryCrew.objects.filter(story=story).first()


def crews_to_serve() -> tuple[list[dict], set[str]]:
    """What the crew worker serves, read in two queries whatever the number of crews: every crew that
    is not paused (as `active_crews` gives it), and the slugs of every story that has a crew, paused
    ones too (a crew that stops is told "paused" if its story still has one, "gone" otherwise)."""
    crews = list(StoryCrew.objects.select_related("story").order_by("pk"))
    active = [crew for crew in crews if not crew.paused]
    # The roles' agents that are still editors of their crew's story, for every crew at once.
    editors: dict[int, set[str]] = {}
    for story_id, username in Participant.objects.filter(
            story_id__in=[crew.story_id for crew in active],
            user__username__in={username for crew in active for username in crew.members.values()},
            user__is_agent=True, user__crew_role__story=F("story"),
            role__in=[Participant.Role.EDITOR, Participant.Role.OWNER]).values_list("story_id", "user__username"):
        editors.setdefault(story_id, set()).add(username)
    rows = []
    for crew in active:
        members = {role: username for role, username in crew.members.items()
                   if username in editors.get(crew.story_id, ())}
        rows.append({"story": crew.story.slug, "story_id": crew.story_id, "members": members,
                     "paused": [role for role in crew.paused_agents if role in members],
                     "script": crew.script, "writes_to": crew.writes_to, "version": crew.version})
    return rows, {crew.story.slug for crew in crews}


def active_crews() -> list[dict]:
    """What the crew worker serves: every crew that is not paused, with the roles whose agents are
    still editors of the story (`members`) and those of them paused one by one (`paused`: in the
    crew, their work waits for them)."""
    return crews_to_serve()[0]
