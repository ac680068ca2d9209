"""The SDK's streaming messages against a live server (issue 17).

- `async with client.stream(...) as s: await s.append(...)` completes on a normal exit: one
  message is stored, with the stream's id and the whole text; a listener's `on_stream` handlers see
  `StreamStarted`, each `StreamChunk` (offsets), `StreamEnded` (completed, its seq), and the message
  handlers the stored message after it.
- An exception in the block cancels the stream: nothing is stored, subscribers see it cancelled,
  the exception propagates.
- A subscriber that joins mid-stream gets `StreamStarted` with the text so far; `open_streams`
  lists it.
- An append whose answer is lost after the server applied it is retried with the same offset and
  the text is not doubled; so are an open and a complete (by their id).
- The blocking client: `with client.stream(...) as s: s.append(...)`.
"""
import asyncio

import httpx
import pytest

from accounts.services import token_issue
from mythline_sdk import (AsyncMythlineClient, Backoff, Conflict, MythlineClient, StreamChunk, StreamEnded,
                          StreamStarted)
from tests.live import LiveServer, until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]
GENERAL = ("tale", "general")
FAST = Backoff(base=0.01, cap=0.05, max_attempts=5)


@pytest.fixture(scope="module")
def server(django_db_setup):
    live = LiveServer(env={"MYTHLINE_LOOP_WINDOW_SECONDS": "0", "MYTHLINE_POST_RATE": "1000/s",
                           "MYTHLINE_POST_BURST": "1000"})
    with live:  # started; stopped, its log removed, after the module
        yield live


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    narrator = make_agent("narrator", capabilities=["narration"], stories=[story])
    return {"alice": token_issue(user=alice), "narrator": token_issue(user=narrator)}




def stored(server, token) -> list[dict]:
    r = httpx.get(f"{server.base}/api/stories/tale/channels/general/messages", params={"limit": 500},
                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["results"]


class Watcher:
    """Alice's listener on #general: the stream events and the messages, in the order they came."""

    def __init__(self, client: AsyncMythlineClient):
        self.seen: list = []
        self.listener = client.listener([GENERAL], start="latest", ack=False)
        self.listener.on_stream(self._add)
        self.listener.on("*", self._add)

    async def _add(self, item):
        self.seen.append(item)

    def of(self, stream_id: str) -> list:
        return [x for x in self.seen if getattr(x, "id", None) == stream_id]


def test_a_stream_is_seen_growing_and_completes_into_one_message(server, tale):
    async def go():
        async with AsyncMythlineClient(server.base, tale["alice"]) as alice, \
                AsyncMythlineClient(server.base, tale["narrator"]) as narrator:
            watcher = Watcher(alice)
            task = asyncio.create_task(watcher.listener.run())
            await until(lambda: watcher.listener.connected.is_set(), what="alice subscribed")
            async with narrator.stream("tale", "general", "narration", correlation_id="scene-1") as s:
                assert s.status == "open" and s.length == 0
                assert await s.append("The lamp ") == 9
                await s.append("guttered, ")
                await until(lambda: len(watcher.of(s.id)) >= 3, what="the first chunks")
                # A latecomer gets the text so far, and the open stream is listed.
                late = Watcher(alice)
                late_task = asyncio.create_task(late.listener.run())
                await until(lambda: late.of(s.id), what="the latecomer's stream.started")
                assert late.of(s.id)[0].stream.text == "The lamp guttered, "
                [listed] = await alice.open_streams("tale", "general")
                assert (listed.id, listed.text, listed.msg_type, listed.field) == (
                    s.id, "The lamp guttered, ", "narration", "text")
                await s.append("and went out.")
            message = s.message
            assert s.status == "completed" and message.id == s.id and message.created
            assert message.payload["text"] == "The lamp guttered, and went out."
            assert message.correlation_id == "scene-1" and message.sender_name == "narrator"
            await until(lambda: any(getattr(x, "msg_type", None) == "narration" for x in watcher.seen),
                        what="the stored message")
            late.listener.stop()
            watcher.listener.stop()
            await asyncio.gather(task, late_task)
            assert await alice.open_streams("tale", "general") == []
            return s, watcher.of(s.id), message

    s, events, message = asyncio.run(go())
    started, *chunks, ended, final = events
    assert isinstance(started, StreamStarted) and started.stream.text == "" and started.topic == "channel:tale/general"
    assert started.stream.sender["username"] == "narrator" and started.stream.msg_type == "narration"
    assert all(isinstance(c, StreamChunk) for c in chunks)
    assert [(c.offset, c.text) for c in chunks] == [(0, "The lamp "), (9, "guttered, "), (19, "and went out.")]
    assert isinstance(ended, StreamEnded) and ended.status == "completed" and ended.seq == message.seq
    assert final.id == s.id and final.payload["text"] == "The lamp guttered, and went out."
    assert [m["id"] for m in stored(server, tale["alice"])] == [s.id]  # one message in the log


def test_an_exception_in_the_block_cancels_the_stream_and_stores_nothing(server, tale):
    async def go():
        async with AsyncMythlineClient(server.base, tale["alice"]) as alice, \
                AsyncMythlineClient(server.base, tale["narrator"]) as narrator:
            watcher = Watcher(alice)
            task = asyncio.create_task(watcher.listener.run())
            await until(lambda: watcher.listener.connected.is_set(), what="alice subscribed")
            with pytest.raises(RuntimeError, match="the model failed"):
                async with narrator.stream("tale", "general", "narration") as s:
                    await s.append("The lamp ")
                    raise RuntimeError("the model failed")
            assert s.status == "cancelled" and s.message is None
            await until(lambda: any(isinstance(x, StreamEnded) for x in watcher.of(s.id)), what="stream.ended")
            watcher.listener.stop()
            await task
            return watcher.of(s.id)

    events = asyncio.run(go())
    assert [type(e).__name__ for e in events] == ["StreamStarted", "StreamChunk", "StreamEnded"]
    assert events[-1].status == "cancelled" and events[-1].seq is None
    assert stored(server, tale["alice"]) == []


class LosingGateway(httpx.AsyncBaseTransport):
    """Forwards every request; for paths ending with one of `lose`, the first answer is thrown
    away after the server applied it (a 502 from a proxy), so the client must retry."""

    def __init__(self, *lose: str):
        self.upstream = httpx.AsyncHTTPTransport()
        self.lose = list(lose)
        self.forwarded: list[tuple[str, int, bytes]] = []

    async def handle_async_request(self, request):
        response = await self.upstream.handle_async_request(request)
        self.forwarded.append((request.url.path, response.status_code, request.content))
        suffix = next((s for s in self.lose if request.url.path.endswith(s)), None)
        if suffix is None:
            return response
        self.lose.remove(suffix)
        await response.aread()
        await response.aclose()
        return httpx.Response(502, text="<h1>502 Bad Gateway</h1>", headers={"Content-Type": "text/html"},
                              request=request)

    async def aclose(self):
        await self.upstream.aclose()


def test_lost_answers_are_retried_by_offset_and_id_without_doubling_anything(server, tale):
    gateway = LosingGateway("/streams", "/append", "/append", "/complete")

    async def go():
        async with AsyncMythlineClient(server.base, tale["narrator"], backoff=FAST, transport=gateway) as narrator:
            async with narrator.stream("tale", "general", "narration") as s:
                await s.append("One, ")
                await s.append("two, ")
                await s.append("three.")
            return s

    s = asyncio.run(go())
    assert s.message.payload["text"] == "One, two, three."
    [message] = stored(server, tale["alice"])
    assert message["id"] == s.id and message["payload"]["text"] == "One, two, three."
    statuses = [(path.rsplit("/", 1)[-1], status) for path, status, _ in gateway.forwarded]
    assert statuses == [("streams", 201), ("streams", 200), ("append", 200), ("append", 200), ("append", 200),
                        ("append", 200), ("append", 200), ("complete", 201), ("complete", 200)]


def test_a_gap_is_a_conflict_and_the_blocking_client_streams_too(server, tale):
    with MythlineClient(server.base, tale["narrator"]) as narrator:
        with narrator.stream("tale", "general", "narration") as s:
            s.append("The keeper ")
            # Another writer with the same token got in first: our offset is behind, a 409.
            narrator.request("POST", f"/api/streams/{s.id}/append", json={"text": "(sic) ", "offset": 11})
            with pytest.raises(Conflict):
                s.append("climbs.")
            s.cancel()
        assert s.status == "cancelled" and s.message is None
        with narrator.stream("tale", "general", "narration") as s:
            s.append("The keeper ")
            s.append("climbs.")
        assert s.message.payload["text"] == "The keeper climbs." and s.message.id == s.id
    assert [m["payload"]["text"] for m in stored(server, tale["alice"])] == ["The keeper climbs."]
