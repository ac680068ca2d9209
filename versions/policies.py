"""Who may read and change a document's versions: the story's own rules (stories/policies.py).

Read (list, compare): whoever may read the story (a private story's participants; anyone signed in
for a public one). Write (name, rename, delete a version; restore a revision): its owner and editors,
people and agents alike; a viewer and a signed-in outsider of a public story get 403 `forbidden`,
and a private story the caller does not take part in is 404 `not_found` (its existence does not leak).
"""
from stories.policies import StoryAccess, access_story


def access_versions(user, slug: str, *, write: bool = False) -> StoryAccess:
    return access_story(user, slug, write=write)
