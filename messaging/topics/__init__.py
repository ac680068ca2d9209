"""What a socket subscribes to: one module per topic kind, each owning its subscribe (with its
access check and replay), its live events, its client frames and its `recheck`.

- `channel:<story>/<channel>` (messaging/topics/channel.py): a channel's messages, typing, and on a
  presence channel the presence of its members; frames `publish`, `typing`, `ack`. SSE drives the
  same channel feed.
- `story:<story>` (messaging/topics/story.py): story-level events.
- `doc:<story>/<doc>` (messaging/topics/document.py): a document's changes and cursors; frames
  `doc.push`, `doc.pull`, `cursor`.
- `notifications:<username>` (messaging/topics/notifications.py): the caller's own notification
  feed, live (no client frames; marking read is REST or MCP).

The socket (messaging/consumers.py) is only the transport: it parses a frame and hands it to the
handler registered for its `type` here (`FRAMES`), and hands each layer event to the topic it
names. A topic's `recheck()` re-runs its access check when a rights event reaches the socket
(messaging/rights.py).
"""
from mythline_site.errors import Invalid

TOPIC_SHAPES = ("topic must look like 'channel:<story>/<channel>', 'story:<story>', 'doc:<story>/<doc>' or "
                "'notifications:<username>'.")


def parse_topic(topic) -> tuple[str, str, str | None]:
    """'channel:story/name' -> ('channel', story, name); 'story:slug' -> ('story', slug, None)."""
    if not isinstance(topic, str) or ":" not in topic:
        raise Invalid(TOPIC_SHAPES, details={"topic": "malformed"})
    kind, _, rest = topic.partition(":")
    if kind in ("story", "notifications") and rest and "/" not in rest:
        return kind, rest, None
    if kind in ("channel", "doc"):
        story, _, name = rest.partition("/")
        if story and name and "/" not in name:
            return kind, story, name
    raise Invalid(TOPIC_SHAPES, details={"topic": "malformed"})


# What `Topic.live_frame` answers for an event that needs the socket's turn (it awaits something).
LATER = object()


class Topic:
    """One open subscription of one socket."""

    kind = ""
    channel_id: int | None = None  # channel topics only: the scope of channel rights changes

    def __init__(self, topic: str, slug: str, story_id: int):
        self.topic, self.slug, self.story_id = topic, slug, story_id

    @property
    def group(self) -> str:
        raise NotImplementedError

    def recheck(self, user) -> bool:
        """Sync (database thread): re-run the access check; False when the user may no longer read.
        May refresh what the topic remembers of the user's rights (say, write access)."""
        raise NotImplementedError

    async def on_event(self, conn, event: dict) -> None:
        """A layer event for this topic (already matched by `topic`)."""

    def live_frame(self, event: dict):
        """The socket's fast path (RealtimeConsumer.offer), for an event it could handle with no
        await: the frame text to send, None when there is nothing to send (the event is accounted
        for), or LATER for the usual path (`on_event`, in the socket's turn). Must not change the
        topic's state when it answers LATER."""
        return LATER

    async def close(self, conn) -> None:
        """Leave what the topic joined (its group, presence)."""
        await conn.fanout.leave(self.group, conn.inbox)


def integer(frame: dict, name: str, *, default=None, minimum: int = 0):
    """A non-negative integer field of a client frame (bools refused), or `default` when absent."""
    value = frame.get(name, default)
    if value is default and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Invalid(f"'{name}' must be a non-negative integer.", details={name: "invalid"})
    return value
