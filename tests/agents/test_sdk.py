"""The agent SDK against real servers and real sockets.

- A server killed (SIGKILL) and restarted on the same port while an agent listens and replies:
  every message is processed, none is lost, no reply is stored twice; an agent that starts over
  from seq 0 replies to everything again and stores nothing new (idempotency keys from the
  message answered).
- An agent process killed and restarted resumes from its server-side read cursor.
- 429 with `Retry-After`: the client waits at least that long and every post is stored once.
- Duplicates from the socket are dropped; the local queue stays bounded, the server closes the
  non-reading socket with 4008 and the listener resumes with `after`, losing nothing; a listener
  far behind gets a big replay without being taken for a slow reader.
- The blocking client: plain-function handlers that call the client.
- Errors: `loop_detected` is final (one request), 5xx and network errors are retried.
"""
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from accounts.services import token_issue
from mythline_sdk import (AsyncMythlineClient, Backoff, InvalidRequest, LoopDetected, MythlineClient, RateLimited,
                          ServerError, SubscriptionError, TransportError, Unauthenticated, idempotency_key)
from tests.live import LiveServer, ROOT, until

live = [pytest.mark.django_db(transaction=True), pytest.mark.live]

GENERAL = "channel:tale/general"


@pytest.fixture(scope="module")
def server(django_db_setup):
    """A server shared by the tests that leave it running (Daphne takes seconds to start); each
    test has its own data, since the database is emptied after every test."""
    with LiveServer() as live:  # stopped, its log removed, after the module
        yield live


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    echo = make_agent("echo", capabilities=["query"], stories=[story])
    return {"story": story, "alice": token_issue(user=alice), "echo": token_issue(user=echo)}


def word(i: int) -> str:
    """A distinct word per number, letters only: the server's loop prevention ignores digits, so
    'line 1' and 'line 2' would be near-identical posts."""
    letters = ""
    i += 26 * 27
    while i:
        i, r = divmod(i, 26)
        letters = "abcdefghijklmnopqrstuvwxyz"[r] + letters
    return letters


def texts(prefix: str, n: int) -> list[str]:
    return [f"{prefix} {word(i)}" for i in range(n)]


def human(server, token) -> httpx.Client:
    return httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def post_queries(server, token, texts) -> list[str]:
    ids = []
    with human(server, token) as client:
        for text in texts:
            r = client.post("/api/stories/tale/channels/general/messages",
                            json={"msg_type": "query", "payload": {"text": text}})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    return ids


def all_messages(server, token, channel="general") -> list[dict]:
    out, after = [], 0
    with human(server, token) as client:
        while True:
            page = client.get(f"/api/stories/tale/channels/{channel}/messages", params={"after": after, "limit": 500})
            assert page.status_code == 200, page.text
            body = page.json()
            out += body["results"]
            if not body["results"]:
                return out
            after = body["next_after"]


def replies_by_query(messages) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in messages:
        if m["msg_type"] == "text" and m["sender"]["username"] == "echo":
            counts[m["reply_to"]] = counts.get(m["reply_to"], 0) + 1
    return counts




def echo_agent(client: AsyncMythlineClient, handled: list, **options):
    listener = client.listener([GENERAL], queue_size=options.pop("queue_size", 16), **options)

    @listener.on("query")
    async def answer(message):
        handled.append(message.id)
        await client.reply(message, "text", {"text": f"echo: {message.payload['text']}"})

    return listener


# --- server restarts -------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_server_killed_and_restarted_while_an_agent_listens_and_replies(server, tale):
    try:
        async def go():
            retries = []
            client = AsyncMythlineClient(server.base, tale["echo"], on_retry=retries.append,
                                         backoff=Backoff(base=0.1, cap=1.0, max_attempts=None))
            handled: list[str] = []
            listener = echo_agent(client, handled, reconnect=Backoff(base=0.05, cap=0.5, max_attempts=None))
            task = asyncio.create_task(listener.run())
            await until(lambda: listener.stats.connections >= 1, what="first connection")

            first = await asyncio.to_thread(post_queries, server, tale["alice"], texts("before", 10))
            await until(lambda: len(handled) >= 10, what="the first ten")
            # Ten more, and the server dies (SIGKILL) while the agent is answering them.
            second = await asyncio.to_thread(post_queries, server, tale["alice"], texts("during", 10))
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(0.3)  # the agent's replies and its socket now fail
            await asyncio.to_thread(server.start)
            third = await asyncio.to_thread(post_queries, server, tale["alice"], texts("after", 10))
            queries = first + second + third

            async def all_answered():
                counts = replies_by_query(await asyncio.to_thread(all_messages, server, tale["alice"]))
                return set(counts) >= set(queries)
            await until(all_answered, timeout=30, interval=0.2, what="a reply to every query")
            listener.stop()
            await task
            assert listener.stats.reconnects >= 1 and listener.stats.connections >= 2
            assert set(handled) >= set(queries)

            # An agent that lost its cursor and starts from the beginning handles everything again:
            # every reply answers 200 with the reply stored the first time.
            again: list[str] = []
            fresh = AsyncMythlineClient(server.base, tale["echo"])
            replayed = echo_agent(fresh, again, after=0)
            run = asyncio.create_task(replayed.run())
            await until(lambda: len(again) >= len(queries), what="the replay")
            replayed.stop()
            await run
            assert sorted(again) == sorted(queries)
            await client.aclose()
            await fresh.aclose()

        asyncio.run(go())
        messages = all_messages(server, tale["alice"])
        counts = replies_by_query(messages)
        assert all(n == 1 for n in counts.values()), counts  # no reply stored twice
        assert len(counts) == 30
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(1, len(seqs) + 1))
        # The server-side cursor caught up: the agent acknowledged what it processed.
        with human(server, tale["echo"]) as client:
            row = next(r for r in client.get("/api/inbox").json()["results"] if r["channel"] == "general")
            assert row["read_seq"] == row["last_seq"]
    finally:
        if server.proc.poll() is not None:  # the module's server: leave it running for the others
            server.start()


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_a_killed_agent_process_resumes_from_its_read_cursor(server, tale, tmp_path):
    """The runnable example, as a process: SIGKILL it mid-work, start it again."""
    logs = [tmp_path / "agent-1.log", tmp_path / "agent-2.log"]

    def start_agent(log: Path):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen([sys.executable, "sdk/examples/echo_agent.py", "--url", server.base,
                                 "--token", tale["echo"], "--story", "tale", "--delay", "0.05"],
                                cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)

    try:
        agent = start_agent(logs[0])
        queries = post_queries(server, tale["alice"], texts("question", 20))

        def answered() -> int:
            return len(replies_by_query(all_messages(server, tale["alice"])))

        def cursor() -> int:
            with human(server, tale["echo"]) as echo:
                return next(r["read_seq"] for r in echo.get("/api/inbox").json()["results"] if r["channel"] == "general")

        deadline = time.monotonic() + 20
        while cursor() < 5:  # it answered and acknowledged a few
            assert time.monotonic() < deadline, logs[0].read_text()
            time.sleep(0.1)
        agent.kill()  # SIGKILL: no clean shutdown, no final ack
        agent.wait(10)
        agent = start_agent(logs[1])
        deadline = time.monotonic() + 30
        while answered() < 20:
            assert time.monotonic() < deadline, logs[1].read_text()
            time.sleep(0.2)
        agent.terminate()
        agent.wait(10)
        counts = replies_by_query(all_messages(server, tale["alice"]))
        assert set(counts) == set(queries) and set(counts.values()) == {1}, counts
        second = logs[1].read_text()
        started = json.loads(next(line for line in second.splitlines() if line.startswith("{")))
        assert started["positions"][GENERAL] >= 5  # from the server's read cursor, not from 0
        handled = [line.split()[1] for line in (logs[0].read_text() + second).splitlines()
                   if line.startswith("handled ")]
        assert set(handled) == set(queries)
    finally:
        agent.kill()


# --- rate limits -----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_429_retries_honour_retry_after(tale):
    with LiveServer(env={"MYTHLINE_POST_RATE": "2/s", "MYTHLINE_POST_BURST": "1"}) as server:
        retries = []
        with MythlineClient(server.base, tale["echo"], on_retry=retries.append) as client:
            started = time.monotonic()
            posted = [client.post_message("tale", "general", "text", {"text": text}) for text in texts("line", 4)]
            elapsed = time.monotonic() - started
        assert all(m.created for m in posted) and [m.seq for m in posted] == [1, 2, 3, 4]
        limited = [r for r in retries if isinstance(r.error, RateLimited)]
        assert limited, "the tiny budget must have answered 429"
        for event in limited:
            assert event.retry_after is not None and event.retry_after >= 1
            assert event.delay >= event.retry_after  # never sooner than the server asked
        assert elapsed >= sum(e.delay for e in limited) - 0.05
        assert len(all_messages(server, tale["alice"])) == 4  # each stored once


# --- the socket ------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_duplicates_from_the_socket_are_dropped(server, tale):
    if True:
        async def go():
            async with AsyncMythlineClient(server.base, tale["echo"]) as client:
                handled: list[str] = []
                listener = echo_agent(client, handled)
                task = asyncio.create_task(listener.run())
                await until(lambda: listener.stats.connections >= 1)
                ids = await asyncio.to_thread(post_queries, server, tale["alice"], texts("q", 5))
                await until(lambda: listener.stats.processed >= 10)  # five queries, five own replies
                # Ask the server to replay everything on the open socket: all of it is known.
                await listener.resubscribe(GENERAL, after=0)
                await until(lambda: listener.stats.duplicates >= 10, what="the replay")
                listener.stop()
                await task
                assert handled == ids
                assert listener.stats.processed == 10 and listener.stats.delivered == 10
        asyncio.run(go())


@pytest.fixture(scope="module")
def tight_server(django_db_setup):
    """A server with a small send buffer (64 KiB) per socket, and no post limit to speak of."""
    live = LiveServer(env={"MYTHLINE_WS_SEND_BUFFER_BYTES": "65536", "MYTHLINE_WS_SEND_DRAIN_SECONDS": "1",
                           "MYTHLINE_POST_RATE": "1000/s", "MYTHLINE_POST_BURST": "1000"})
    live.start()
    try:
        yield live
    finally:
        live.stop()
        Path(live.log.name).unlink(missing_ok=True)


def post_bulk(server, token, count, start=0):
    with human(server, token) as alice:
        for i in range(start, start + count):
            r = alice.post("/api/stories/tale/channels/general/messages",
                           json={"msg_type": "bulk", "payload": {"i": i, "body": "x" * 60_000}})
            assert r.status_code == 201, r.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_a_listener_far_behind_gets_the_whole_replay_without_being_closed(tight_server, tale):
    """Resuming 2.4 MB behind through a 64 KiB send buffer: the replay is written a page at a
    time, faster than any client reads, and the server waits for a reading client to drain it."""
    server = tight_server
    post_bulk(server, tale["alice"], 40)

    async def go():
        async with AsyncMythlineClient(server.base, tale["echo"]) as client:
            seen: list[int] = []
            listener = client.listener([GENERAL], start="beginning", ack=False)
            listener.on("bulk", lambda m: _append(seen, m.seq))
            task = asyncio.create_task(listener.run())
            await until(lambda: len(seen) >= 40, timeout=30, what="the replay")
            listener.stop()
            await task
            assert seen == list(range(1, 41))
            assert listener.stats.connections == 1 and listener.stats.close_codes == [], listener.stats
    asyncio.run(go())


async def _append(into, value):
    into.append(value)


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_a_full_queue_stops_reading_the_server_closes_4008_and_the_listener_resumes(tight_server, tale):
    server = tight_server
    if True:
        async def go():
            async with AsyncMythlineClient(server.base, tale["echo"]) as client:
                gate = asyncio.Event()
                seen: list[int] = []
                listener = client.listener([GENERAL], queue_size=3, start="beginning", ack=False)

                @listener.on("bulk")
                async def slow(message):
                    await gate.wait()
                    seen.append(message.seq)

                task = asyncio.create_task(listener.run())
                await until(lambda: listener.stats.connections >= 1)

                def slow_clients_closed() -> bool:
                    text = httpx.get(server.base + "/metrics").text
                    return any(line.startswith("mythline_slow_clients_closed_total ") and float(line.split()[1]) >= 1
                               for line in text.splitlines())

                # Post big messages until the server gives up on us (a few MB fill the socket
                # buffers on both sides), then a few more while we are away.
                body, total, closed_at = "x" * 60_000, 0, None
                with human(server, tale["alice"]) as alice:
                    while closed_at is None or total < closed_at + 5:
                        r = await asyncio.to_thread(alice.post, "/api/stories/tale/channels/general/messages",
                                                    json={"msg_type": "bulk", "payload": {"i": total, "body": body}})
                        assert r.status_code == 201, r.text
                        total += 1
                        assert listener.queue_depth <= 3
                        if closed_at is None and total % 5 == 0 and await asyncio.to_thread(slow_clients_closed):
                            closed_at = total
                        assert total < 400, "the server never closed the socket that stopped reading"
                # The handler catches up: the listener reads what was buffered, sees the close
                # (4008, or a reset: 1006), reconnects and resumes after its last seq.
                gate.set()
                await until(lambda: len(seen) >= total, timeout=30, what="every message")
                listener.stop()
                await task
                assert seen == list(range(1, total + 1))  # in order, none lost, none twice
                assert listener.stats.max_queue_depth <= 3
                assert set(listener.stats.close_codes) & {4008, 1006}, listener.stats.close_codes
                assert listener.stats.connections >= 2
        asyncio.run(go())


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_the_blocking_client_listens_with_plain_functions(server, tale):
    ids = post_queries(server, tale["alice"], texts("blocking", 3))
    answered, stop = [], threading.Event()
    with MythlineClient(server.base, tale["echo"]) as client:
        @client.on("query")
        def answer(message):  # a plain function, in a worker thread, calling the client
            client.reply(message, "text", {"text": "plainly " + message.payload["text"]})
            answered.append(message.id)
            if len(answered) == len(ids):
                stop.set()

        listener = client.listen([("tale", "general")], stop=stop, duration=30)
    assert answered == ids and listener.stats.connections == 1
    assert set(replies_by_query(all_messages(server, tale["alice"])).values()) == {1}
    with human(server, tale["echo"]) as echo:  # what was processed is acknowledged on the way out
        row = next(r for r in echo.get("/api/inbox").json()["results"] if r["channel"] == "general")
        assert row["read_seq"] >= 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_typed_answers_joining_stories_and_paging_backwards_against_a_live_server(server, tale, make_agent):
    """The first hour of a new agent, with the blocking client: find a story, join it, read the
    log backwards page by page, report status, look at the document's change log."""
    ids = post_queries(server, tale["alice"], texts("page", 5))
    newcomer = token_issue(user=make_agent("newcomer"))
    with MythlineClient(server.base, newcomer) as client:
        assert "tale" in [s.slug for s in client.list_stories()]
        joined = client.join_story("tale")
        assert joined.created and joined.role == "editor" and joined.username == "newcomer"
        assert client.join_story("tale").created is False
        assert client.get_story("tale").role == "editor"
        assert {"alice", "echo", "newcomer"} <= {p.username for p in client.list_participants("tale")}
        assert "general" in [c.name for c in client.list_channels("tale")]
        seen, before = [], None
        while True:
            page = client.read_messages("tale", "general", before=before, limit=2) if before else \
                client.read_messages("tale", "general", before=6, limit=2)
            seen += [m.id for m in page.results]
            if page.next_before is None:
                break
            before = page.next_before
        assert seen == ids[::-1]  # newest first, every page linked by next_before
        assert [m.id for m in client.activity(story="tale").results] == ids
        assert client.set_status("working", "reading", 0.5).status == "working"
        edit = client.append_document("tale", "main", "A first line.\n")
        assert edit.revision == edit.change.revision and edit.change.author == "newcomer"
        assert client.document_ops("tale", "main", after=edit.revision - 1).results[0].revision == edit.revision


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_a_refused_token_or_subscription_stops_the_listener_instead_of_retrying(server, tale):
    async def go():
        async with AsyncMythlineClient(server.base, "myth_not-a-token") as stranger:
            with pytest.raises(Unauthenticated):
                await asyncio.wait_for(stranger.listener([GENERAL]).run(), 10)
        async with AsyncMythlineClient(server.base, tale["echo"]) as client:
            with pytest.raises(SubscriptionError):
                await asyncio.wait_for(client.listener([("tale", "no-such-channel")], start="beginning").run(), 10)
    asyncio.run(go())


# --- errors and retries, without a server ----------------------------------------------------

def _transport(answers, calls):
    """A fake server: answers in turn (status, body, headers) or an exception to raise."""
    def handle(request):
        calls.append(request)
        answer = answers[min(len(calls), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = answer
        return httpx.Response(status, json=body, headers=headers)
    return httpx.MockTransport(handle)


MESSAGE = {"id": "6f0c1a52-3c1e-4a8e-9d7e-6b5e8c0f4a11", "story": "tale", "channel": "general", "seq": 1,
           "sender": {"username": "echo", "kind": "agent"}, "msg_type": "text", "payload": {"text": "hi"}}


def test_loop_detected_is_final_and_never_retried():
    calls = []
    body = {"error": {"code": "loop_detected", "message": "looks like a loop", "details": {"policy": "duplicate"}}}
    with MythlineClient("http://mythline.test", "t", transport=_transport([(422, body, {})], calls)) as client:
        with pytest.raises(LoopDetected) as caught:
            client.post_message("tale", "general", "text", {"text": "again"})
    assert len(calls) == 1 and caught.value.status == 422 and not caught.value.retryable
    assert caught.value.details == {"policy": "duplicate"}


def test_5xx_and_network_errors_are_retried_with_the_same_idempotency_key():
    calls = []
    answers = [httpx.ConnectError("refused"), (503, {"error": {"code": "internal", "message": "down"}}, {}),
               httpx.ReadError("reset"), (201, MESSAGE, {})]
    fast = Backoff(base=0.001, cap=0.01)
    with MythlineClient("http://mythline.test", "t", backoff=fast, transport=_transport(answers, calls)) as client:
        message = client.post_message("tale", "general", "text", {"text": "hi"}, idempotency_key="k-1")
    assert message.created and message.seq == 1 and len(calls) == 4
    assert {c.headers["Idempotency-Key"] for c in calls} == {"k-1"}
    assert {c.headers["Authorization"] for c in calls} == {"Bearer t"}


def test_retries_end_with_the_last_error_and_bad_input_is_not_retried():
    calls = []
    down = (500, {"error": {"code": "internal", "message": "boom"}}, {})
    with MythlineClient("http://mythline.test", "t", backoff=Backoff(base=0.001, cap=0.01, max_attempts=3),
                        transport=_transport([down], calls)) as client:
        with pytest.raises(ServerError) as caught:
            client.get_story("tale")
    assert len(calls) == 3 and caught.value.attempts == 3 and caught.value.retryable
    calls.clear()
    bad = (400, {"error": {"code": "invalid", "message": "no", "details": {"payload.text": "required"}}}, {})
    with MythlineClient("http://mythline.test", "t", transport=_transport([bad], calls)) as client:
        with pytest.raises(InvalidRequest):
            client.post_message("tale", "general", "text", {})
    assert len(calls) == 1


def test_a_write_without_a_key_is_not_retried_when_the_server_may_have_applied_it():
    fast = Backoff(base=0.001, cap=0.01)
    bad_gateway = (502, {"error": {"code": "internal", "message": "bad gateway"}}, {})
    for failure in (httpx.ReadError("reset"), bad_gateway):
        calls = []
        with MythlineClient("http://mythline.test", "t", backoff=fast, transport=_transport([failure], calls)) as client:
            with pytest.raises((TransportError, ServerError)):
                client.request("POST", "/api/stories/tale/documents", json={"name": "notes"})
        assert len(calls) == 1, failure
    # ... but when it surely did nothing (no connection, 429) it is.
    calls = []
    answers = [httpx.ConnectError("refused"), (429, {"error": {"code": "rate_limited", "message": "slow"}},
                                               {"Retry-After": "0"}), (201, {"name": "notes"}, {})]
    with MythlineClient("http://mythline.test", "t", backoff=fast, transport=_transport(answers, calls)) as client:
        assert client.request("POST", "/api/stories/tale/documents", json={"name": "notes"}) == (201, {"name": "notes"})
    assert len(calls) == 3


def test_document_edits_carry_an_idempotency_key_and_are_retried_with_it():
    calls = []
    change = {"revision": 4, "change": {"revision": 4, "changes": [], "client_id": None, "author": "echo",
                                        "via": "rest", "created_at": "2025-01-01T00:00:00Z"}}
    answers = [httpx.ReadError("reset"), (502, {"error": {"code": "internal", "message": "bad gateway"}}, {}),
               (200, change, {})]
    with MythlineClient("http://mythline.test", "t", backoff=Backoff(base=0.001, cap=0.01),
                        transport=_transport(answers, calls)) as client:
        assert client.append_document("tale", "main", "more").revision == 4
        client.append_document("tale", "main", "more")  # another call: another key
        client.edit_document("tale", "main", base_revision=3, find="a", replace="b", idempotency_key="edit-1")
    keys = [c.headers["Idempotency-Key"] for c in calls]
    assert len(keys) == 5 and keys[0] == keys[1] == keys[2] != keys[3] and keys[4] == "edit-1"
    assert keys[0].startswith("sdk-") and keys[3].startswith("sdk-")


def test_full_jitter_stays_under_the_ceiling_and_retry_after_is_a_floor():
    backoff = Backoff(base=0.5, cap=4.0)
    for attempt in range(12):
        for _ in range(50):
            assert 0 <= backoff.delay(attempt) <= min(4.0, 0.5 * 2 ** attempt)
    assert all(backoff.delay(0, retry_after=3) >= 3 for _ in range(50))
    assert idempotency_key("re", "abc", "reply") == "re:abc:reply"
    assert len(idempotency_key("x" * 400)) <= 255
    assert idempotency_key("x" * 400) == idempotency_key("x" * 400) != idempotency_key("x" * 401)


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_post_messages_answers_each_message_and_a_repeat_stores_nothing(server, tale):
    with MythlineClient(server.base, tale["echo"]) as client:
        items = client.post_messages("tale", "general", [
            {"msg_type": "text", "payload": {"text": "first"}}, {"msg_type": "text", "payload": "not an object"},
            {"msg_type": "text", "payload": {"text": "second"}, "correlation_id": "c-9"}])
        assert [(item.status, item.ok) for item in items] == [(201, True), (400, False), (201, True)]
        assert isinstance(items[1].error, InvalidRequest) and "payload" in items[1].error.details
        assert [item.message.seq for item in (items[0], items[2])] == [1, 2]
        assert items[2].message.correlation_id == "c-9" and items[0].message.created
        again = client.post_messages("tale", "general", [
            {"msg_type": "text", "payload": {"text": "first"}, "id": items[0].message.id}])
        assert again[0].status == 200 and again[0].message.created is False and again[0].message.seq == 1
        assert [m.text for m in client.read_messages("tale", "general").results] == ["first", "second"]


def test_post_messages_gives_each_message_an_id_so_a_retry_is_the_same_batch():
    calls = []
    answer = (200, {"results": [{"status": 201, "message": MESSAGE}]}, {})
    with MythlineClient("http://mythline.test", "t", backoff=Backoff(base=0.001, cap=0.01),
                        transport=_transport([httpx.ReadError("reset"), answer], calls)) as client:
        items = client.post_messages("tale", "general", [{"msg_type": "text", "payload": {"text": "hi"}}])
    assert items[0].message.created and len(calls) == 2
    sent = [json.loads(call.content)["messages"][0]["id"] for call in calls]
    assert sent[0] == sent[1] and len(sent[0]) == 36
