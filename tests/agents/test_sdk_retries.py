"""SDK retries against a live server, behind a gateway that fails AFTER the server did the work.

`Gateway` stands where a reverse proxy stands: it forwards each request to the real server (Daphne
on a real socket), and for the first few writes throws the server's answer away and answers 502
(or breaks the connection) instead, as a proxy does when the upstream answer is lost after the
commit. A retry is then a repeat of something the server already stored:
- posts, routes and document edits carry an `Idempotency-Key` (the client makes one per call and
  keeps it for the call's retries): the retry is answered with what was stored, and the server
  holds it once: one message, one append, one replacement;
- a write without a key is not retried at all: the caller gets the error, the server holds it once.
"""
import asyncio

import httpx
import pytest

from accounts.services import token_issue
from mythline_sdk import AsyncMythlineClient, Backoff, MythlineClient, ServerError, TransportError
from stories.models import Document
from tests.live import LiveServer

FAST = Backoff(base=0.01, cap=0.05, max_attempts=5)


@pytest.fixture(scope="module")
def server(django_db_setup):
    live = LiveServer()
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    echo = make_agent("echo", capabilities=["query"], stories=[story])
    return {"story": story, "alice": token_issue(user=alice), "echo": token_issue(user=echo)}


class Gateway(httpx.AsyncBaseTransport):
    """Forwards every request to the server; the first `fail` writes (POST, PATCH) get `failure`
    instead of the server's answer: "502" (a proxy's HTML page) or "reset" (the connection drops)."""

    def __init__(self, fail: int = 1, failure: str = "502"):
        self.upstream = httpx.AsyncHTTPTransport()
        self.fail, self.failure = fail, failure
        self.forwarded: list[tuple[str, str, int, str | None]] = []  # method, path, server's status, key

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.upstream.handle_async_request(request)
        self.forwarded.append((request.method, request.url.path, response.status_code,
                               request.headers.get("Idempotency-Key")))
        if request.method not in ("POST", "PATCH") or self.fail <= 0:
            return response
        self.fail -= 1
        await response.aread()
        await response.aclose()
        if self.failure == "reset":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(502, headers={"Content-Type": "text/html"}, text="<h1>502 Bad Gateway</h1>",
                              request=request)

    async def aclose(self) -> None:
        await self.upstream.aclose()


def writes(gateway) -> list[tuple[str, str, int, str | None]]:
    return [f for f in gateway.forwarded if f[0] in ("POST", "PATCH")]


def general(server, token) -> list[dict]:
    r = httpx.get(f"{server.base}/api/stories/tale/channels/general/messages", params={"limit": 500},
                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["results"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
@pytest.mark.parametrize("failure", ["502", "reset"])
def test_a_post_whose_answer_is_lost_after_the_commit_is_stored_once(server, tale, failure):
    gateway, retries = Gateway(fail=1, failure=failure), []

    async def go():
        async with AsyncMythlineClient(server.base, tale["echo"], backoff=FAST, transport=gateway,
                                       on_retry=retries.append) as client:
            return await client.post_message("tale", "general", "text", {"text": "The lamp is lit."})

    message = asyncio.run(go())
    assert not message.created  # the retry was answered with the message the first try stored
    assert [(m, s) for m, _, s, _ in writes(gateway)] == [("POST", 201), ("POST", 200)]
    assert len({key for *_, key in writes(gateway)}) == 1 and len(retries) == 1
    assert [m["id"] for m in general(server, tale["alice"])] == [message.id]


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_a_route_whose_answer_is_lost_is_stored_once_per_inbox(server, tale):
    gateway = Gateway(fail=2)
    with MythlineClient(server.base, tale["alice"], backoff=FAST, transport=gateway) as client:
        routed = client.route("tale", "query", {"text": "Who keeps the lamp?"})
    assert routed.routed_to == ["echo"] and not routed.created
    assert [s for _, _, s, _ in writes(gateway)] == [201, 200, 200]
    r = httpx.get(f"{server.base}/api/stories/tale/channels/inbox.echo/messages",
                  headers={"Authorization": f"Bearer {tale['echo']}"}, timeout=10)
    assert [m["id"] for m in r.json()["results"]] == [routed.results[0].id]


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
@pytest.mark.parametrize("failure", ["502", "reset"])
def test_document_edits_whose_answer_is_lost_are_applied_once(server, tale, failure):
    """The old client retried an append after a 5xx without a key: the text went in twice."""
    gateway = Gateway(fail=2, failure=failure)
    with MythlineClient(server.base, tale["echo"], backoff=FAST, transport=gateway) as client:
        start = client.get_document("tale", "main")
        appended = client.append_document("tale", "main", "The keeper climbs.\n")
        assert appended.revision == start.revision + 1
        gateway.fail = 2
        edited = client.edit_document("tale", "main", base_revision=appended.revision,
                                      find="keeper climbs", replace="keeper climbs the stair")
        assert edited.revision == appended.revision + 1
        final = client.get_document("tale", "main")
    assert final.revision == start.revision + 2
    assert final.text.count("The keeper climbs the stair.") == 1 and "climbs the stair the stair" not in final.text
    assert Document.objects.get(story=tale["story"], name="main").text == final.text
    ops = writes(gateway)
    assert [s for _, _, s, _ in ops] == [200] * 6
    assert len({key for *_, key in ops[:3]}) == len({key for *_, key in ops[3:]}) == 1
    assert ops[0][3] != ops[3][3]  # a key per call


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
@pytest.mark.parametrize("failure", ["502", "reset"])
def test_a_write_without_a_key_is_never_retried_blindly(server, tale, failure):
    gateway = Gateway(fail=1, failure=failure)
    with MythlineClient(server.base, tale["echo"], backoff=FAST, transport=gateway) as client:
        with pytest.raises(ServerError if failure == "502" else TransportError):
            client.request("POST", "/api/stories/tale/channels/general/messages",
                           json={"msg_type": "text", "payload": {"text": "Once only."}})
    assert [(m, s, k) for m, _, s, k in writes(gateway)] == [("POST", 201, None)]  # one try, no key
    assert [m["payload"]["text"] for m in general(server, tale["alice"])] == ["Once only."]
