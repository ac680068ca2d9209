"""Delivering streams to a channel subscription (the socket's channel topic and SSE share this).

After its replay a subscriber gets a `stream.started` frame with the text so far for each open stream
it may read (the snapshot). The subscription joined the channel's group before the snapshot was
read, so chunks published meanwhile are also waiting for it: `StreamSnapshot` drops those the
snapshot already holds (a chunk ending at or before the snapshot's length) and a second `started`
of a stream the snapshot already sent. Every chunk carries its `offset`, so a client can check
the same itself.

A subscriber sees a stream's frames when it would see the final message: the feed's `wants`
(audience, the subscription's msg_type filter) decides, as for `message` frames.
"""
from messaging import frames
from streaming import services


class StreamSnapshot:
    """The lengths of the streams a subscription's snapshot sent (id -> length)."""

    def __init__(self, sent: dict[str, int] | None = None):
        self.sent = sent or {}

    def admits(self, event: dict) -> bool:
        """False for what the snapshot already delivered."""
        sent = self.sent.get(event["id"])
        if sent is None:
            return True
        kind = event["event"]
        if kind == "stream.started":
            return False
        if kind == "stream.chunk":
            if event["end"] <= sent:
                return False
            del self.sent[event["id"]]  # past the snapshot: every later chunk is new
            return True
        del self.sent[event["id"]]  # ended
        return True


def wants(feed, event: dict) -> bool:
    return feed.wants(msg_type=event["msg_type"], audience_kind=event["audience_kind"],
                      sender_id=event["sender_id"], recipient_ids=event["recipient_ids"])


def snapshot(feed) -> tuple[list[dict], StreamSnapshot]:
    """Sync (database thread): the `stream.started` frames of the channel's open streams the feed's
    user may read, and the snapshot that filters the live events that follow."""
    out, sent = [], {}
    for stream in services.open_streams(feed.channel):
        if feed.wants(msg_type=stream.msg_type, audience_kind=stream.audience_kind, sender_id=stream.sender_id,
                      recipient_ids=stream.recipient_ids):
            out.append(frames.stream_started(feed.topic, services.stream_json(stream)))
            sent[str(stream.id)] = len(stream.text)
    return out, StreamSnapshot(sent)


def sse_event(name: str, data_text: str) -> str:
    """An SSE event without an `id:` line: Last-Event-ID keeps counting messages only."""
    return f"event: {name}\ndata: {data_text}\n\n"


def sse_started(frame: dict) -> str:
    return sse_event(frame["type"], frames.dumps({k: v for k, v in frame.items() if k not in ("type", "topic")}))
