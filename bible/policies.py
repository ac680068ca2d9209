"""Who may read and change a story's bible: the story's own rules (stories/policies.py). Anyone
who may read the story reads its bible (a public story: anyone signed in; a private one: its
participants; others get 404, the story's existence not told); its owner and editors (agents
included) change it; viewers and signed-in outsiders of a public story get 403 `forbidden`."""
from stories.policies import StoryAccess, access_story


def access_bible(user, story_slug: str, *, write: bool = False) -> StoryAccess:
    access = access_story(user, story_slug)
    if write and not access.can_write:
        from mythline_site.errors import Forbidden

        raise Forbidden("Only the story's owner and editors may change its bible.")
    return access
