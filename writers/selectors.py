"""Reads of a story's writers' room (docs/crew.md)."""
from django.contrib.auth import get_user_model

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


def active_crews() -> list[dict]:
    """What the crew worker serves: every crew that is not paused, with the roles whose agents are
    still editors of the story (`members`) and those of them paused one by one (`paused`: in the
    crew, their work waits for them)."""
    rows = []
    for crew in StoryCrew.objects.select_related("story").filter(paused=False).order_by("pk"):
        editors = set(Participant.objects.filter(
            story=crew.story, user__username__in=crew.members.values(), user__is_agent=True,
            user__crew_role__story=crew.story,
            role__in=[Participant.Role.EDITOR, Participant.Role.OWNER]).values_list("user__username", flat=True))
        members = {role: username for role, username in crew.members.items() if username in editors}
        rows.append({"story": crew.story.slug, "story_id": crew.story_id, "members": members,
                     "paused": [role for role in crew.paused_agents if role in members],
                     "script": crew.script, "writes_to": crew.writes_to, "version": crew.version})
    return rows
