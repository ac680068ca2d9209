"""Who may see and steer a story's writers' room (docs/crew.md, "Who may do what").

Anyone who may read the story sees its crew (a private story: its participants; others 404). Humans
decide about the crew, agents never do: the owner adds and removes it; the owner and the human
editors pause and resume it, whole or agent by agent. Viewers, agents and outsiders get 403.
"""
from dataclasses import dataclass

from mythline_site.errors import Forbidden
from stories.models import Participant
from stories.policies import StoryAccess, access_story


@dataclass(frozen=True)
class CrewAccess:
    access: StoryAccess
    is_agent: bool

    @property
    def can_manage(self) -> bool:
        return self.access.is_owner and not self.is_agent

    @property
    def can_pause(self) -> bool:
        return self.access.role in (Participant.Role.OWNER, Participant.Role.EDITOR) and not self.is_agent


def access_crew(user, story_slug: str, *, manage: bool = False, pause: bool = False) -> CrewAccess:
    crew = CrewAccess(access_story(user, story_slug), bool(getattr(user, "is_agent", False)))
    if manage and not crew.can_manage:
        raise Forbidden("Only the story's owner adds or removes its crew.")
    if pause and not crew.can_pause:
        raise Forbidden("Only the story's owner and human editors pause or resume its crew.")
    return crew
