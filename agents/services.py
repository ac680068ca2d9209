"""Writes for agents: creation and the status they report."""
import re

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from agents.models import AgentProfile
from messaging import events
from mythline_site.errors import Conflict, Forbidden, Invalid, one_of
from mythline_site.parsers import has_nul, has_surrogate
from presence.services import publish_agent_status
from stories.models import Participant, Story
from stories.services import participant_add

User = get_user_model()
# An agent's inbox is `inbox.<username>`, so the username must fit a channel name.
AGENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
MAX_TASK_CHARS = AgentProfile._meta.get_field("task").max_length


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


def require_agent(user) -> AgentProfile:
    """The caller's agent profile; only agents report a status (403 `forbidden` for anyone else)."""
    if not getattr(user, "is_agent", False) or not hasattr(user, "agent_profile"):
        raise Forbidden("Only agents report a status; use an agent's token.")
    return user.agent_profile


def status_errors(*, status, task, progress) -> dict:
    """What is wrong with a status report, by field (empty when nothing is)."""
    errors = {}
    if not isinstance(status, str) or status not in AgentProfile.Status.values:
        errors["status"] = one_of(AgentProfile.Status.values)
    if not isinstance(task, str) or len(task) > MAX_TASK_CHARS or has_nul(task) or has_surrogate(task):
        errors["task"] = f"must be text of at most {MAX_TASK_CHARS} characters (no NUL)"
    # NaN and infinities fail the range test; so does a huge int, without converting it.
    if progress is not None and (isinstance(progress, bool) or not isinstance(progress, (int, float))
                                 or not 0 <= progress <= 1):
        errors["progress"] = "must be a number from 0 to 1, or null"
    return errors


@transaction.atomic
def agent_set_status(*, agent, status: str, task: str = "", progress: float | None = None) -> AgentProfile:
    """Record what the agent is doing and tell every story it is in (as a presence update).

    Every protocol reports through here: only an agent reports (403 `forbidden`); `status` is one
    of AgentProfile.Status, `task` text of at most 500 characters ("" for none), `progress` a
    number from 0 to 1 or None (400 `invalid`, each bad field named in the details).
    """
    require_agent(agent)
    errors = status_errors(status=status, task=task, progress=progress)
    if errors:
        raise Invalid("The status report is invalid.", details=errors)
    profile = AgentProfile.objects.select_for_update().get(user=agent)
    now = timezone.now()
    profile.status = status
    profile.task = task
    profile.progress = float(progress) if progress is not None else None
    profile.status_updated_at = now
    profile.last_seen = now
    profile.save(update_fields=["status", "task", "progress", "status_updated_at", "last_seen"])
    agent.agent_profile = profile  # callers render the agent next: show the new status
    data = agent_json(agent)
    for story in Story.objects.filter(participants__user=agent):
        events.publish_story_event(story, "agent.status", data)
    publish_agent_status(agent)
    return profile
