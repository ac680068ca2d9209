"""`notifications:<username>`: the caller's own notification feed, live (notifications app).

Only the user themself subscribes (anyone else's name: `forbidden`). `subscribed` carries the
unread count; then each new notification comes as a `notification` frame and each marking read
(by any of the user's clients) as `notifications.read`, both with the unread count after them.
They reach the socket through the user's notification group (`notifications.services.user_group`).
No client frames: marking read is REST or MCP. The feed itself is read over REST or MCP.
"""
from channels.db import database_sync_to_async

from messaging import frames
from messaging.topics import Topic
from mythline_site.errors import Forbidden
from notifications import selectors
from notifications.services import user_group


class NotificationsTopic(Topic):
    kind = "notifications"

    def __init__(self, topic: str, username: str, user_id: int):
        # No story: slug "" (the socket joined no story's rights group for it, and leaves none) and
        # story_id 0 (no story has it), so no story's rights change is in this topic's scope.
        super().__init__(topic, "", 0)
        self.user_id = user_id

    @property
    def group(self) -> str:
        return user_group(self.user_id)

    def recheck(self, user) -> bool:
        return user.pk == self.user_id  # one's own feed stays readable (a deactivated user is closed anyway)

    async def on_event(self, conn, event: dict) -> None:
        if event["type"] == "notification.event":
            await conn.send_frame(event["frame"])


async def subscribe(conn, frame: dict, ref, topic: str, username: str, name: None) -> NotificationsTopic:
    if username != conn.user.username:
        raise Forbidden("You may subscribe only to your own notifications: "
                        f"'{frames.notifications_topic(conn.user.username)}'.", details={"topic": "not yours"})
    sub = NotificationsTopic(topic, username, conn.user.pk)
    # Join first, then count: a notification committed after the count is also a live frame.
    await conn.fanout.join(sub.group, conn.inbox)
    try:
        unread = await database_sync_to_async(selectors.unread_count)(conn.user)
    except BaseException:
        await conn.fanout.leave(sub.group, conn.inbox)
        raise
    conn.add_sub(sub)
    await conn.reply(frames.subscribed(topic, unread=unread), ref)
    return sub
