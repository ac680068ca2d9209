"""Streams over REST (docs/protocol.md, "Streaming messages"): the answers, and every refusal with
the SPEC's status and code."""
import uuid

import pytest

from messaging.models import Message
from tests.conftest import error_code

pytestmark = pytest.mark.django_db
LIST = "/api/stories/tale/channels/{}/streams"


def opened(client, channel="general", **body):
    body.setdefault("msg_type", "narration")
    r = client.post(LIST.format(channel), body, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def test_open_append_list_complete(tale, api):
    bob, alice = api(tale["bob"]), api(tale["alice"])
    stream = opened(bob, payload={"mood": "grim"}, correlation_id="run-1")
    sid = stream["id"]
    assert {k: stream[k] for k in ("status", "field", "text", "msg_type", "payload", "correlation_id")} == {
        "status": "open", "field": "text", "text": "", "msg_type": "narration", "payload": {"mood": "grim"},
        "correlation_id": "run-1"}
    assert stream["sender"] == {"username": "bob", "display_name": "bob", "kind": "human"}
    r = bob.post(f"/api/streams/{sid}/append", {"text": "Dusk."}, format="json")
    assert r.status_code == 200 and r.json() == {"id": sid, "length": 5}
    listed = alice.get(LIST.format("general")).json()["results"]
    assert [(s["id"], s["text"]) for s in listed] == [(sid, "Dusk.")]
    r = bob.post(f"/api/streams/{sid}/complete", format="json")
    assert r.status_code == 201
    message = r.json()
    assert (message["id"], message["seq"], message["payload"], message["correlation_id"]) == (
        sid, 1, {"mood": "grim", "text": "Dusk."}, "run-1")
    r = bob.post(f"/api/streams/{sid}/complete", format="json")
    assert r.status_code == 200 and r.json()["id"] == sid
    assert alice.get(LIST.format("general")).json() == {"results": []}
    assert alice.get(f"/api/messages/{sid}").json()["payload"]["text"] == "Dusk."
    # An open retried with its id: 200 and the same stream.
    chosen = str(uuid.uuid4())
    assert opened(bob, id=chosen)["id"] == chosen
    r = bob.post(LIST.format("general"), {"msg_type": "narration", "id": chosen}, format="json")
    assert r.status_code == 200 and r.json()["id"] == chosen


def test_refusals(tale, api, settings):
    bob, carol, vera, otto, narrator = (api(tale[n]) for n in ("bob", "carol", "vera", "otto", "narrator"))
    sid = opened(bob)["id"]
    secret = opened(carol, channel="cabal")["id"]
    cases = [
        # who
        (api(None), "post", LIST.format("general"), {"msg_type": "narration"}, 401, "unauthenticated"),
        (vera, "post", LIST.format("general"), {"msg_type": "narration"}, 403, "forbidden"),  # a viewer
        (otto, "post", LIST.format("general"), {"msg_type": "narration"}, 403, "forbidden"),  # an outsider
        (narrator, "post", LIST.format("cabal"), {"msg_type": "narration"}, 404, "not_found"),  # not a member
        (narrator, "get", LIST.format("cabal"), None, 404, "not_found"),
        (carol, "post", f"/api/streams/{sid}/append", {"text": "mine"}, 403, "forbidden"),  # someone else's
        (carol, "post", f"/api/streams/{sid}/complete", None, 403, "forbidden"),
        (carol, "post", f"/api/streams/{sid}/cancel", None, 403, "forbidden"),
        (vera, "post", f"/api/streams/{sid}/append", {"text": "mine"}, 403, "forbidden"),
        (narrator, "post", f"/api/streams/{secret}/append", {"text": "x"}, 404, "not_found"),  # unreadable
        (otto, "post", f"/api/streams/{secret}/cancel", None, 404, "not_found"),
        (bob, "post", f"/api/streams/{uuid.uuid4()}/append", {"text": "x"}, 404, "not_found"),
        (bob, "post", "/api/streams/not-a-uuid/append", {"text": "x"}, 404, "not_found"),
        # what
        (bob, "post", LIST.format("general"), {"msg_type": "narration", "field": "title"}, 400, "invalid"),
        (bob, "post", LIST.format("general"), {"msg_type": "dialogue", "field": "line"}, 400, "invalid"),
        (bob, "post", LIST.format("general"), {"msg_type": "narration", "extra": 1}, 400, "invalid"),
        (bob, "post", LIST.format("general"), ["narration"], 400, "invalid"),
        (bob, "post", f"/api/streams/{sid}/append", {"text": ""}, 400, "invalid"),
        (bob, "post", f"/api/streams/{sid}/append", {"text": 5}, 400, "invalid"),
        (bob, "post", f"/api/streams/{sid}/append", {"text": "x", "offset": -1}, 400, "invalid"),
        (bob, "post", f"/api/streams/{sid}/append", {"text": "x", "offset": True}, 400, "invalid"),
        (bob, "post", f"/api/streams/{sid}/append", {"text": "x", "seq": 1}, 400, "invalid"),
        (bob, "post", f"/api/streams/{sid}/append", {"text": "x", "offset": 3}, 409, "conflict"),  # a gap
        (bob, "post", f"/api/streams/{sid}/complete", {"payload": "x"}, 400, "invalid"),
        (bob, "post", f"/api/streams/{sid}/cancel", {"why": "x"}, 400, "invalid"),
        (bob, "post", f"/api/streams/{sid}/append", {"text": "x" * (settings.MYTHLINE_MAX_PAYLOAD_BYTES + 1)},
         413, "payload_too_large"),
    ]
    for client, method, path, body, status, code in cases:
        r = getattr(client, method)(path, body, format="json") if method == "post" else client.get(path)
        assert r.status_code == status, (path, body, r.content)
        assert error_code(r) == code, (path, body)
    r = bob.post(f"/api/streams/{sid}/append", {"text": "x", "offset": 3}, format="json")
    assert r.json()["error"]["details"] == {"offset": 3, "length": 0}
    r = bob.post(f"/api/streams/{sid}/append", b"{not json", content_type="application/json")
    assert r.status_code == 400 and error_code(r) == "invalid"
    # After complete: no append, no cancel.
    bob.post(f"/api/streams/{sid}/append", {"text": "Done."}, format="json")
    assert bob.post(f"/api/streams/{sid}/complete").status_code == 201
    for path, body in ((f"/api/streams/{sid}/append", {"text": "more"}), (f"/api/streams/{sid}/cancel", None)):
        r = bob.post(path, body, format="json")
        assert r.status_code == 409 and error_code(r) == "conflict"
    assert Message.objects.count() == 1


def test_the_list_is_filtered_by_audience(tale, api):
    narrator = api(tale["narrator"])
    opened(narrator, audience="agents")
    opened(narrator, audience=["carol"])
    assert api(tale["bob"]).get(LIST.format("general")).json() == {"results": []}
    assert [s["audience"] for s in api(tale["carol"]).get(LIST.format("general")).json()["results"]] == [["carol"]]
    assert len(api(tale["alice"]).get(LIST.format("general")).json()["results"]) == 2  # the story owner
