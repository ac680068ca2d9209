"""Who may read and change a story's outline: the story's own rules (stories/policies.py).

Read: whoever may read the story (a private story's participants; anyone for a public one).
Write: its owner and editors, people and agents alike; a viewer is 403 `forbidden`, and a
private story the caller does not take part in is 404 `not_found` (its existence does not leak).
The services check the write right again under the story's row lock.
"""
from stories.policies import StoryAccess, access_story


def access_outline(user, slug: str, *, write: bool = False) -> StoryAccess:
    return access_story(user, slug, write=write)
