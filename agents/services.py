"""Writes for agents: creation and the status they report."""
import re

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from agents.models import AgentProfile
from messaging import events
from mythline_site.errors import Conflict, Invalid
from presence.services import publish_agent_status
from stories.models import Participant, Story
from stories.services import participant_add

User = get_user_model()
# An agent's inbox is `inbox.<username>`, so the username must fit a channel name.
AGENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")


def agent_json(user) -> dict:
    profile = user.agent_profile
    return {"username": user.username, "display_name": user.display_name or user.username,
            "description": profile.description, "capabilities": profile.capabilities,
            "status": profile.status, "task": profile.task, "progress": profile.progress,
            "status_updated_at": profile.status_updated_at.isoformat().replace("+00:00", "Z")
            if profile.status_updated_at else None,
            "last_seen": profile.last_seen.isoformat().replace("+00:00", "Z") if profile.last_seen else None}


@transaction.atomic
def agent_create(*, username: str, display_name: str = "", description: str = "",
                 capabilities: list[str] | None = None, stories: list[Story] = ()) -> User:
    if not AGENT_NAME_RE.match(username):
        raise Invalid("Agent names are 1-50 of a-z 0-9 _ -, starting with a letter or digit.",
                      details={"username": "invalid"})
    if User.objects.filter(username=username).exists():
        raise Conflict(f"A user named '{username}' already exists.", details={"username": "taken"})
    user = User(username=username, display_name=display_name or username.replace("-", " ").title(), is_agent=True)
    user.set_unusable_password()  # agents sign in with tokens only
    user.save()
    AgentProfile.objects.create(user=user, description=description, capabilities=list(capabilities or []))
    for story in stories:
        participant_add(story=story, user=user, role=Participant.Role.EDITOR)
    return user


@transaction.atomic
def agent_set_status(*, agent, status: str, task: str | None = None, progress: float | None = None) -> AgentProfile:
    """Record what the agent is doing and tell every story it is in (as a presence update)."""
    profile = AgentProfile.objects.select_for_update().get(user=agent)
    now = timezone.now()
    profile.status = status
    profile.task = task if task is not None else ""
    profile.progress = progress
    profile.status_updated_at = now
    profile.last_seen = now
    profile.save(update_fields=["status", "task", "progress", "status_updated_at", "last_seen"])
    agent.agent_profile = profile  # callers render the agent next: show the new status
    data = agent_json(agent)
    for story in Story.objects.filter(participants__user=agent):
        events.publish_story_event(story, "agent.status", data)
    publish_agent_status(agent)
    return profile
