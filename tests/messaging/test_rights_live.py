"""Rights follow every change on open connections: the live-rights matrix.

Every change that may take a right away x every connection kind (a socket holding a channel, a
story and a document topic; an SSE stream), against real servers:
- `memory`: one Daphne process with the in-process channel layer (the embedded configuration);
- `redis`: two Daphne processes over Redis; each change is made through process A's REST API
  while the connections are held by process B.

For each cell the documented answer arrives within 1 s of the change (docs/realtime.md,
"Revocation"), and nothing the user may no longer read arrives after it: after the answer the
owner posts and edits, an observer socket on the same process sees that, and the subject's socket
then answers a ping without having received it.

Token revocation and deactivation are made through the services in this test process, as a
management command would: on Redis (this process then publishes on the servers' layer) their
event reaches the servers at once; on the in-process layer it cannot, and the servers' sweep
(every heartbeat interval, set to 1 s here) is what closes the connections.
"""
import asyncio
import itertools
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts.services import token_issue, token_revoke, user_set_active
from accounts.models import ApiToken
from messaging.services import channel_create, member_add
from stories.models import Document
from tests.conftest import require
from tests.live import DEFAULT_TEST_REDIS, LiveServer, redis_available

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

HEARTBEAT = 1.0
ANSWER_WITHIN = 1.0
CLOSE_WITHIN = HEARTBEAT + 0.5  # the sweep's interval, and its query
SSE_CAP = 3
ENV = {"MYTHLINE_LOOP_WINDOW_SECONDS": "0", "MYTHLINE_HEARTBEAT_SECONDS": str(HEARTBEAT),
       "MYTHLINE_MAX_SSE_PER_USER": str(SSE_CAP)}
_slugs = itertools.count(1)


@pytest.fixture(scope="module", params=["memory", "redis"])
def servers(request, django_db_setup, django_db_blocker):
    """(A, B): where changes are made, where connections are held."""
    with django_db_blocker.unblock():
        if request.param == "memory":
            with LiveServer(env=ENV) as one:
                yield request.param, one, one, None
            return
        require(redis_available(), f"Redis at {DEFAULT_TEST_REDIS}")
        prefix = f"mythline-rights-{time.monotonic_ns()}"
        env = {**ENV, "MYTHLINE_REDIS_PREFIX": prefix}
        with LiveServer(redis_url=DEFAULT_TEST_REDIS, env=env) as a, LiveServer(redis_url=DEFAULT_TEST_REDIS, env=env) as b:
            yield request.param, a, b, {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                                    "CONFIG": {"hosts": [DEFAULT_TEST_REDIS], "prefix": f"{prefix}:asgi"}}}


@pytest.fixture
def world(make_user, make_story):
    def build(*, visibility="private", bob_role="editor", private_channel=False):
        alice, bob, carol = make_user(), make_user(), make_user()
        story = make_story(alice, slug=f"rights-{next(_slugs)}", visibility=visibility,
                           editors=[carol] + ([bob] if bob_role == "editor" else []),
                           viewers=[bob] if bob_role == "viewer" else [])
        channel = "general"
        if private_channel:
            cabal = channel_create(story=story, creator=alice, name="cabal", kind="private")
            member_add(channel=cabal, user=bob)
            member_add(channel=cabal, user=carol)
            channel = "cabal"
        return {"story": story.slug, "channel": channel, "alice": token_issue(user=alice),
                "bob": token_issue(user=bob), "carol": token_issue(user=carol), "bob_user": bob}
    return build


def auth(token):
    return {"Authorization": f"Bearer {token}"}


class Socket:
    def __init__(self, ws):
        self.ws, self.seen, self.refs = ws, [], itertools.count()

    async def next(self, predicate, timeout):
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                self.seen.append(frame)
                if predicate(frame):
                    return frame

    async def request(self, frame, timeout=5):
        ref = f"r{next(self.refs)}"
        await self.ws.send(json.dumps({**frame, "ref": ref}))
        return await self.next(lambda f: f.get("ref") == ref, timeout)

    def since(self, mark):
        return self.seen[mark:]


class Stream:
    """An SSE stream read in the background: its lines, and whether it ended."""

    def __init__(self, live, token, story, channel):
        self.client = httpx.AsyncClient(base_url=live.base, headers=auth(token), timeout=None)
        self.url = f"/api/stories/{story}/channels/{channel}/events"
        self.lines: list[str] = []
        self.ended = asyncio.Event()
        self.opened = asyncio.Event()

    async def run(self):
        try:
            async with self.client.stream("GET", self.url) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    self.lines.append(line)
                    if line.startswith(": subscribed"):
                        self.opened.set()
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def texts(self):
        return [json.loads(line[6:])["payload"]["text"] for line in self.lines if line.startswith("data: ")]


async def open_all(live, w):
    """Bob's socket with the channel, story and document topics; his SSE stream; an observer."""
    s, c = w["story"], w["channel"]
    bob = Socket(await connect(live.ws, additional_headers=auth(w["bob"])))
    for topic in (f"channel:{s}/{c}", f"story:{s}", f"doc:{s}/main"):
        reply = await bob.request({"type": "subscribe", "topic": topic})
        assert reply["type"] == "subscribed", reply
    observer = Socket(await connect(live.ws, additional_headers=auth(w["alice"])))
    for topic in (f"channel:{s}/{c}", f"doc:{s}/main"):
        assert (await observer.request({"type": "subscribe", "topic": topic}))["type"] == "subscribed"
    stream = Stream(live, w["bob"], s, c)
    task = asyncio.create_task(stream.run())
    async with asyncio.timeout(5):
        await stream.opened.wait()
    assert not stream.ended.is_set(), stream.lines
    return bob, observer, stream, task


async def owner_writes(live, w, text):
    """Alice posts in the channel and edits the document; returns when her own socket saw both."""
    async with httpx.AsyncClient(base_url=live.base, headers=auth(w["alice"])) as alice:
        r = await alice.post(f"/api/stories/{w['story']}/channels/{w['channel']}/messages",
                             json={"msg_type": "text", "payload": {"text": text}})
        assert r.status_code == 201, r.text
        r = await alice.post(f"/api/stories/{w['story']}/documents/main/ops", json={"append": text})
        assert r.status_code == 200, r.text


async def nothing_more(bob: Socket, observer: Socket, live, w, text):
    """After the answer: what alice writes now reaches her observer, and not bob."""
    mark = len(bob.seen)
    await owner_writes(live, w, text)
    await observer.next(lambda f: f.get("type") == "message" and f["message"]["payload"].get("text") == text, 5)
    await observer.next(lambda f: f.get("type") == "doc.change", 5)
    await bob.request({"type": "ping"})
    return [f for f in bob.since(mark) if f["type"] not in ("pong",)]


async def close_all(task, *sockets):
    task.cancel()
    for socket in sockets:
        await socket.ws.close()


async def timed(change):
    started = time.monotonic()
    await asyncio.to_thread(change)
    return started


def rest_change(live, token, method, path, body=None):
    def change():
        r = httpx.request(method, live.base + path, headers=auth(token), json=body, timeout=10)
        assert r.status_code in (200, 204), r.text
    return change


async def expect_revoked(bob: Socket, topics, started):
    got = set()
    while got != set(topics):
        frame = await bob.next(lambda f: f.get("type") == "unsubscribed", ANSWER_WITHIN)
        assert frame.get("reason") == "access_revoked" and "ref" not in frame, frame
        got.add(frame["topic"])
    assert time.monotonic() - started <= ANSWER_WITHIN


async def expect_stream_ends(stream: Stream, started, within=ANSWER_WITHIN):
    async with asyncio.timeout(within + 0.5):
        await stream.ended.wait()
    assert time.monotonic() - started <= within + 0.1


def run(coro):
    asyncio.run(coro)


# --- the cells ---------------------------------------------------------------------------------------

def test_demoted_editor_keeps_reading_and_every_write_is_forbidden(servers, world):
    mode, a, b, _ = servers
    w = world()

    async def go():
        bob, observer, stream, task = await open_all(b, w)
        s, c = w["story"], w["channel"]
        await timed(rest_change(a, w["alice"], "POST", f"/api/stories/{s}/participants",
                                {"username": w["bob_user"].username, "role": "viewer"}))
        deadline = time.monotonic() + ANSWER_WITHIN
        # No frame announces a lost write right: the next writes answer `forbidden` (the first
        # within the second, once the change has reached process B).
        while True:
            reply = await bob.request({"type": "doc.push", "topic": f"doc:{s}/main", "revision": 0,
                                       "changes": [[0, "demoted"]], "client_id": "bob"})
            if reply["type"] == "error" and reply["code"] == "forbidden":
                break
            assert time.monotonic() < deadline, reply
        for frame in ({"type": "publish", "topic": f"channel:{s}/{c}", "msg_type": "text", "payload": {"text": "x"}},
                      {"type": "typing", "topic": f"channel:{s}/{c}", "typing": True},
                      {"type": "cursor", "topic": f"doc:{s}/main", "anchor": 0}):
            reply = await bob.request(frame)
            assert (reply["type"], reply["code"]) == ("error", "forbidden"), (frame, reply)
        doc = await asyncio.to_thread(lambda: Document.objects.get(story__slug=s, name="main"))
        assert (doc.revision, doc.text) == (0, "")
        # Still subscribed everywhere: alice's writes reach bob's socket and stream.
        await owner_writes(a, w, "after the demotion")
        await bob.next(lambda f: f.get("type") == "message" and f["message"]["payload"]["text"] == "after the demotion", 5)
        await bob.next(lambda f: f.get("type") == "doc.change", 5)
        async with asyncio.timeout(5):
            while "after the demotion" not in stream.texts():
                await asyncio.sleep(0.02)
        assert not any(f["type"] == "unsubscribed" for f in bob.seen)
        assert not stream.ended.is_set()
        await close_all(task, bob, observer)
    run(go())
    assert Document.objects.get(story__slug=w["story"], name="main").text == "after the demotion"


@pytest.mark.parametrize("change", ["participant_removed", "story_made_private"])
def test_losing_the_story_ends_every_topic_and_the_stream(servers, world, change):
    mode, a, b, _ = servers
    w = world(visibility="public" if change == "story_made_private" else "private",
              bob_role="none" if change == "story_made_private" else "editor")
    s, c = w["story"], w["channel"]
    if change == "participant_removed":
        make = rest_change(a, w["alice"], "DELETE", f"/api/stories/{s}/participants/{w['bob_user'].username}")
    else:
        make = rest_change(a, w["alice"], "PATCH", f"/api/stories/{s}", {"visibility": "private"})

    async def go():
        bob, observer, stream, task = await open_all(b, w)
        started = await timed(make)
        await expect_revoked(bob, [f"channel:{s}/{c}", f"story:{s}", f"doc:{s}/main"], started)
        await expect_stream_ends(stream, started)
        leaked = await nothing_more(bob, observer, a, w, "secret after")
        assert leaked == [], leaked
        assert "secret after" not in stream.texts()
        # And a new subscription is refused as for any outsider.
        reply = await bob.request({"type": "subscribe", "topic": f"channel:{s}/{c}"})
        assert (reply["type"], reply["code"]) == ("error", "not_found")
        await close_all(task, bob, observer)
    run(go())


def test_member_removed_loses_the_channel_only(servers, world):
    mode, a, b, _ = servers
    w = world(private_channel=True)
    s, c = w["story"], w["channel"]

    async def go():
        bob, observer, stream, task = await open_all(b, w)
        started = await timed(rest_change(a, w["alice"], "DELETE",
                                          f"/api/stories/{s}/channels/{c}/members/{w['bob_user'].username}"))
        await expect_revoked(bob, [f"channel:{s}/{c}"], started)
        await expect_stream_ends(stream, started)
        leaked = await nothing_more(bob, observer, a, w, "cabal secret")
        # The document is still his to read: its change arrives; the channel's message does not.
        assert [f["type"] for f in leaked] == ["doc.change"], leaked
        await close_all(task, bob, observer)
    run(go())


def test_archived_channel_stays_readable_and_refuses_writes(servers, world):
    mode, a, b, _ = servers
    w = world()
    s, c = w["story"], w["channel"]

    async def go():
        bob, observer, stream, task = await open_all(b, w)
        await timed(rest_change(a, w["alice"], "PATCH", f"/api/stories/{s}/channels/{c}", {"archived": True}))
        deadline = time.monotonic() + ANSWER_WITHIN
        while True:
            # A typing frame that goes through has no answer (docs/protocol.md 6.6): until the archiving
            # reaches bob's server, the probe hears nothing back, and is sent again.
            try:
                reply = await bob.request({"type": "typing", "topic": f"channel:{s}/{c}", "typing": True},
                                          timeout=0.5)
            except TimeoutError:
                reply = {}
            if reply.get("code") == "archived":
                break
            assert time.monotonic() < deadline, reply
            await asyncio.sleep(0.05)
        reply = await bob.request({"type": "publish", "topic": f"channel:{s}/{c}", "msg_type": "text",
                                   "payload": {"text": "late"}})
        assert (reply["type"], reply["code"]) == ("error", "archived")
        assert not any(f["type"] == "unsubscribed" for f in bob.seen)
        assert not stream.ended.is_set()
        await close_all(task, bob, observer)
    run(go())


@pytest.mark.parametrize("change", ["token_revoked", "user_deactivated"])
def test_revoked_token_or_deactivated_user_is_closed_4401(servers, world, change, settings):
    mode, a, b, layer = servers
    if layer is not None:
        settings.CHANNEL_LAYERS = layer  # publish where the servers listen
    w = world()
    other = token_issue(user=w["bob_user"])  # a second token of bob's: stays valid when one is revoked

    def make():
        if change == "token_revoked":
            token_revoke(token=ApiToken.objects.get(prefix=w["bob"][:12]))
        else:
            user_set_active(user=w["bob_user"], active=False)

    async def go():
        bob, observer, stream, task = await open_all(b, w)
        spare = Socket(await connect(b.ws, additional_headers=auth(other)))
        await spare.next(lambda f: f["type"] == "welcome", 5)
        started = await timed(make)
        within = ANSWER_WITHIN if mode == "redis" else CLOSE_WITHIN  # memory: the sweep
        with pytest.raises(ConnectionClosed) as closed:
            await bob.next(lambda f: False, within + 0.5)
        assert closed.value.rcvd.code == 4401
        assert time.monotonic() - started <= within + 0.1
        await expect_stream_ends(stream, started, within)
        if change == "token_revoked":
            assert (await spare.request({"type": "ping"}))["type"] == "pong"  # another token: untouched
        else:
            with pytest.raises(ConnectionClosed):
                await spare.next(lambda f: False, within + 0.5)
        task.cancel()
        await observer.ws.close()
    run(go())


def test_sse_streams_per_user_are_capped_across_processes(servers, world):
    """SSE_CAP streams, spread over the processes; one more answers 429; closing one frees a place."""
    mode, a, b, _ = servers
    w = world()

    async def go():
        streams = [Stream(live, w["bob"], w["story"], "general") for live in (a, b, a)]
        tasks = [asyncio.create_task(st.run()) for st in streams]
        for st in streams:
            async with asyncio.timeout(5):
                await st.opened.wait()
            assert not st.ended.is_set()
        async with httpx.AsyncClient(base_url=b.base, headers=auth(w["bob"])) as client:
            r = await client.get(f"/api/stories/{w['story']}/channels/general/events")
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited", r.text
            assert r.json()["error"]["details"]["limit"] == SSE_CAP and int(r.headers["Retry-After"]) >= 1
            tasks[0].cancel()
            await streams[0].client.aclose()
            async with asyncio.timeout(5):  # the server sees the stream go and gives its place back
                while True:
                    async with client.stream("GET", f"/api/stories/{w['story']}/channels/general/events") as r:
                        if r.status_code == 200:
                            break
                    await asyncio.sleep(0.05)
        for task in tasks[1:]:
            task.cancel()
    run(go())
