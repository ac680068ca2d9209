"""`story:<story>`: story-level events (channels created and archived, participants, documents,
agents' status...). No client frames of its own."""
from channels.db import database_sync_to_async

from messaging import frames
from messaging.events import story_group
from messaging.topics import Topic
from mythline_site.errors import MythlineError
from stories.policies import access_story


class StoryTopic(Topic):
    kind = "story"

    @property
    def group(self) -> str:
        return story_group(self.story_id)

    def recheck(self, user) -> bool:
        try:
            access_story(user, self.slug)
        except MythlineError:
            return False
        return True

    async def on_event(self, conn, event: dict) -> None:
        if event["type"] != "story.event":
            return
        only = event.get("only_user_ids")
        if only is None or conn.user.pk in only:
            await conn.send_frame(event["frame"])


async def subscribe(conn, frame: dict, ref, topic: str, story: str, name: None) -> StoryTopic:
    access = await database_sync_to_async(access_story)(conn.user, story)
    sub = StoryTopic(topic, access.story.slug, access.story.pk)
    await conn.fanout.join(sub.group, conn.inbox)
    conn.add_sub(sub)
    await conn.reply(frames.subscribed(topic), ref)
    return sub


FRAMES: dict = {}
