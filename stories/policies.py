"""Who may see and change a story. Shared by REST, WebSocket, SSE and MCP.

A story the caller may not know of (private, not a participant) is 404, never 403: its
existence does not leak. Known but not allowed is 403.
"""
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from mythline_site.errors import Forbidden, NotFound
from stories.models import Participant, Story


@dataclass(frozen=True)
class StoryAccess:
    story: Story
    role: str | None  # owner | editor | viewer | None (not a participant)

    @property
    def is_owner(self) -> bool:
        return self.role == Participant.Role.OWNER

    @property
    def can_write(self) -> bool:
        return self.role in (Participant.Role.OWNER, Participant.Role.EDITOR)


def role_subquery(user, story_ref="pk"):
    return Subquery(Participant.objects.filter(story_id=OuterRef(story_ref), user_id=user.pk).values("role")[:1])


def story_is_visible(story: Story, role: str | None) -> bool:
    return story.visibility == Story.Visibility.PUBLIC or role is not None


def access_story(user, slug: str, *, write: bool = False, owner: bool = False) -> StoryAccess:
    """Fetch a story with the caller's role in one query, or raise NotFound / Forbidden."""
    story = Story.objects.select_related("owner").filter(slug=slug).annotate(caller_role=role_subquery(user)).first()
    if story is None or not story_is_visible(story, story.caller_role):
        raise NotFound(f"No story '{slug}'.")
    access = StoryAccess(story=story, role=story.caller_role)
    if owner and not access.is_owner:
        raise Forbidden("Only the story owner may do that.")
    if write and not access.can_write:
        raise Forbidden("Only editors and the owner may change this story; join it first.")
    return access
