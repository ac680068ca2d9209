"""The messaging REST API as an agent uses it: reads, threads, activity, inbox, ack, route, channels."""
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from messaging.models import Channel, Message
from tests.conftest import error_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def room(make_user, make_story, make_agent, api):
    """alice owns a public story; bob edits; narrator is an agent that handles narration."""
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    narrator = make_agent("narrator", capabilities=["narration", "dialogue"], stories=[story])
    return {"story": story, "alice": api(alice), "bob": api(bob), "narrator": api(narrator),
            "users": {"alice": alice, "bob": bob, "narrator": narrator}}


def say(client, text, channel="general", msg_type="text", **extra):
    payload = extra.pop("payload", {"text": text})
    r = client.post(f"/api/stories/tale/channels/{channel}/messages", {"msg_type": msg_type, "payload": payload, **extra},
                    format="json")
    assert r.status_code == 201, r.content
    return r.json()


def texts(page):
    return [m["payload"].get("text") for m in page["results"]]


def test_read_after_before_limit_and_type(room):
    for i in range(1, 8):
        say(room["alice"], f"m{i}", msg_type="text" if i % 2 else "query")
    get = lambda **q: room["bob"].get("/api/stories/tale/channels/general/messages", q).json()  # noqa: E731
    page = get(after=2, limit=3)
    assert texts(page) == ["m3", "m4", "m5"] and page["next_after"] == 5 and page["last_seq"] == 7
    assert texts(get(after=page["next_after"])) == ["m6", "m7"]
    assert get(after=7) == {"results": [], "next_after": 7, "last_seq": 7}
    down = get(before=6, limit=2)
    assert texts(down) == ["m5", "m4"] and down["next_before"] == 4
    assert texts(get(before=down["next_before"], limit=10)) == ["m3", "m2", "m1"]
    assert texts(get(type="query")) == ["m2", "m4", "m6"]
    assert texts(get(type="text,query", limit=2)) == ["m1", "m2"]
    assert len(get(limit=100000)["results"]) == 7  # clamped to the maximum, not refused


def test_message_and_thread(room):
    root = say(room["alice"], "Shall the keeper leave?", msg_type="query")
    a = say(room["narrator"], "She stays.", msg_type="narration", reply_to=root["id"])
    b = say(room["bob"], "Agreed", reply_to=a["id"])
    say(room["bob"], "unrelated")
    c = say(room["alice"], "Another branch", reply_to=root["id"])
    assert room["bob"].get(f"/api/messages/{b['id']}").json() == b
    for start in (root, a, b, c):
        thread = room["bob"].get(f"/api/messages/{start['id']}/thread").json()
        assert thread["root"] == root["id"]
        assert [m["id"] for m in thread["results"]] == [root["id"], a["id"], b["id"], c["id"]]
    r = room["bob"].get(f"/api/messages/{uuid.uuid4()}")
    assert r.status_code == 404 and error_code(r) == "not_found"
    assert room["bob"].get("/api/messages/not-a-uuid").status_code == 404


def test_activity_across_channels_with_cursor(room):
    r = room["bob"].post("/api/stories/tale/channels", {"name": "plot", "kind": "public"}, format="json")
    assert r.status_code == 201
    say(room["alice"], "g1")
    say(room["bob"], "p1", channel="plot")
    say(room["alice"], "g2")
    page = room["bob"].get("/api/activity", {"story": "tale", "limit": 2}).json()
    assert texts(page) == ["g1", "p1"]
    say(room["bob"], "p2", channel="plot")
    rest = room["bob"].get("/api/activity", {"story": "tale", "after": page["next_after"]}).json()
    assert texts(rest) == ["g2", "p2"]
    assert room["bob"].get("/api/activity", {"after": rest["next_after"]}).json()["results"] == []
    r = room["bob"].get("/api/activity", {"after": "garbage!"})
    assert r.status_code == 400 and error_code(r) == "invalid"


def test_inbox_counts_and_ack_never_moves_back(room):
    for i in range(3):
        say(room["alice"], f"m{i}")
    say(room["bob"], "mine")
    rows = {row["channel"]: row for row in room["bob"].get("/api/inbox").json()["results"]}
    assert rows["general"] == {**rows["general"], "story": "tale", "last_seq": 4, "read_seq": 0, "unread": 3}
    ack = lambda seq: room["bob"].post("/api/stories/tale/channels/general/ack", {"seq": seq}, format="json")  # noqa: E731
    assert ack(2).json()["read_seq"] == 2
    assert ack(1).json()["read_seq"] == 2  # never moves back
    r = ack(99)
    assert r.status_code == 400 and error_code(r) == "invalid"
    rows = {row["channel"]: row for row in room["bob"].get("/api/inbox").json()["results"]}
    assert rows["general"]["read_seq"] == 2 and rows["general"]["unread"] == 1


def test_route_to_capable_agents(room, make_agent, api):
    critic = make_agent("critic", capabilities=["feedback"], stories=[room["story"]])
    body = {"msg_type": "narration", "payload": {"text": "Write the storm."}, "id": str(uuid.uuid4())}
    r = room["alice"].post("/api/stories/tale/route", body, format="json")
    assert r.status_code == 201 and r.json()["routed_to"] == ["narrator"]
    [copy] = r.json()["results"]
    assert copy["channel"] == "inbox.narrator" and copy["seq"] == 1
    again = room["alice"].post("/api/stories/tale/route", body, format="json")
    assert again.status_code == 200 and again.json()["results"] == [copy]
    inbox = room["narrator"].get("/api/stories/tale/channels/inbox.narrator/messages").json()
    assert [m["id"] for m in inbox["results"]] == [copy["id"]]
    assert api(critic).get("/api/stories/tale/channels/inbox.critic/messages").json()["results"] == []
    r = room["alice"].post("/api/stories/tale/route", {"msg_type": "vote.tally", "payload": {}}, format="json")
    assert r.status_code == 422 and error_code(r) == "no_route"


def test_channel_create_conflict_archive_and_unarchive(room):
    r = room["bob"].post("/api/stories/tale/channels", {"name": "side", "kind": "private", "topic": "t"}, format="json")
    assert r.status_code == 201 and r.json()["kind"] == "private" and r.json()["created_by"] == "bob"
    r = room["alice"].post("/api/stories/tale/channels", {"name": "side", "kind": "public"}, format="json")
    assert r.status_code == 409 and error_code(r) == "conflict"
    say(room["bob"], "before", channel="side")
    r = room["bob"].patch("/api/stories/tale/channels/side", {"archived": True}, format="json")
    assert r.status_code == 200 and r.json()["archived"] is True and r.json()["archived_at"]
    r = room["bob"].post("/api/stories/tale/channels/side/messages", {"msg_type": "text", "payload": {"text": "x"}},
                         format="json")
    assert r.status_code == 409 and error_code(r) == "archived"
    page = room["bob"].get("/api/stories/tale/channels/side/messages").json()
    assert texts(page) == ["before"]  # archived channels stay readable
    r = room["bob"].patch("/api/stories/tale/channels/side", {"archived": False, "topic": "again"}, format="json")
    assert r.json()["archived"] is False and r.json()["topic"] == "again"
    assert say(room["bob"], "after", channel="side")["seq"] == 2


def test_members_of_private_channel(room):
    room["bob"].post("/api/stories/tale/channels", {"name": "side", "kind": "private"}, format="json")
    members = lambda: [m["username"] for m in room["bob"].get("/api/stories/tale/channels/side/members").json()["results"]]  # noqa: E731
    assert members() == ["bob"]
    r = room["bob"].post("/api/stories/tale/channels/side/members", {"username": "narrator"}, format="json")
    assert r.status_code == 201 and r.json()["role"] == "member"
    assert room["bob"].post("/api/stories/tale/channels/side/members", {"username": "narrator"},
                            format="json").status_code == 200
    assert members() == ["bob", "narrator"]
    assert say(room["narrator"], "in", channel="side", msg_type="narration")["seq"] == 1
    assert room["narrator"].delete("/api/stories/tale/channels/side/members/narrator").status_code == 204  # leave
    r = room["narrator"].get("/api/stories/tale/channels/side/messages")
    assert r.status_code == 404
    r = room["bob"].post("/api/stories/tale/channels/side/members", {"username": "nobody"}, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid"


def test_idle_channel_is_archived_by_sweep_and_at_post_time(room):
    r = room["bob"].post("/api/stories/tale/channels", {"name": "brief", "kind": "public", "idle_archive_seconds": 60},
                         format="json")
    assert r.json()["idle_archive_seconds"] == 60
    say(room["bob"], "hello", channel="brief")
    room["bob"].post("/api/stories/tale/channels", {"name": "brief2", "kind": "public", "idle_archive_seconds": 60},
                     format="json")
    long_ago = timezone.now() - timedelta(seconds=61)
    Channel.objects.filter(name__in=["brief", "brief2"]).update(last_message_at=long_ago, created_at=long_ago)
    call_command("archive_idle_channels", stdout=open("/dev/null", "w"))
    assert Channel.objects.get(name="brief").archived_at is not None
    Channel.objects.filter(name="brief2").update(archived_at=None)
    # Between sweeps the rule still holds: a post to an expired channel archives it and is refused.
    r = room["bob"].post("/api/stories/tale/channels/brief2/messages", {"msg_type": "text", "payload": {"text": "late"}},
                         format="json")
    assert r.status_code == 409 and error_code(r) == "archived"
    assert Channel.objects.get(name="brief2").archived_at is not None
    assert not Message.objects.filter(channel__name="brief2").exists()


def test_agent_status_and_presence(room):
    r = room["narrator"].put("/api/agents/me/status", {"status": "working", "task": "Act 1", "progress": 0.25},
                             format="json")
    assert r.status_code == 200 and r.json()["status"] == "working"
    presence = room["bob"].get("/api/stories/tale/presence").json()
    [agent] = presence["agents"]
    assert agent["username"] == "narrator" and agent["task"] == "Act 1" and agent["progress"] == 0.25
    assert agent["last_seen"] and "connections" in agent and presence["members"] == []
    r = room["bob"].put("/api/agents/me/status", {"status": "working"}, format="json")
    assert r.status_code == 403 and error_code(r) == "forbidden"
    r = room["narrator"].put("/api/agents/me/status", {"status": "sleeping"}, format="json")
    assert r.status_code == 400 and "status" in r.json()["error"]["details"]


def test_export_has_everything_for_the_owner_only(room):
    room["bob"].post("/api/stories/tale/channels", {"name": "side", "kind": "private"}, format="json")
    secret = say(room["bob"], "secret plan", channel="side")
    say(room["alice"], "for agents", audience="agents")
    r = room["alice"].get("/api/stories/tale/export")
    assert r.status_code == 200
    export = json.loads(b"".join(r.streaming_content))
    assert export["story"]["slug"] == "tale"
    assert {p["username"] for p in export["participants"]} == {"alice", "bob", "narrator"}
    assert {c["name"] for c in export["channels"]} == {"general", "room", "side", "inbox.narrator"}
    assert secret["id"] in {m["id"] for m in export["messages"]}
    assert len(export["messages"]) == 2 and "documents" in export
    r = room["bob"].get("/api/stories/tale/export")
    assert r.status_code == 403 and error_code(r) == "forbidden"


@override_settings(MYTHLINE_RATES={"post": ("1/s", 3), "read": ("100/s", 100), "write": ("100/s", 100)})
def test_post_rate_limit_answers_429_with_retry_after(room):
    url = "/api/stories/tale/channels/general/messages"
    codes = [room["bob"].post(url, {"msg_type": "text", "payload": {"text": f"{i}"}}, format="json")
             for i in range(6)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert error_code(limited[0]) == "rate_limited" and int(limited[0]["Retry-After"]) >= 1
    assert Message.objects.filter(channel__name="general").count() == len(codes) - len(limited)
    # Another sender has a budget of its own.
    assert room["alice"].post(url, {"msg_type": "text", "payload": {"text": "me"}}, format="json").status_code == 201


def test_a_post_takes_one_unit_of_the_post_budget(room, settings):
    """The view leaves the limit to `message_publish`: one unit a post, not one more from DRF."""
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("1/m", 3)}  # four posts, then 429
    url = "/api/stories/tale/channels/general/messages"
    statuses = [room["bob"].post(url, {"msg_type": "text", "payload": {"text": f"{i}"}}, format="json").status_code
                for i in range(5)]
    assert statuses == [201, 201, 201, 201, 429]
    r = room["bob"].post(url, {"msg_type": "text", "payload": {"text": "late"}}, format="json")
    retry_after = int(r["Retry-After"])
    assert r.status_code == 429 and retry_after >= 1
    assert r.json() == {"error": {"code": "rate_limited", "message": "Too many requests; retry after the given delay.",
                                  "details": {"retry_after": retry_after}}}
    assert Message.objects.filter(channel__name="general").count() == 4
    assert room["bob"].get(url).status_code == 200  # reading has a budget of its own


def test_payload_references_must_be_readable_by_the_sender(room):
    room["alice"].post("/api/stories/tale/channels", {"name": "secret", "kind": "private"}, format="json")
    hidden = say(room["alice"], "private plan", channel="secret")
    r = room["bob"].post("/api/stories/tale/channels/general/messages",
                         {"msg_type": "feedback", "payload": {"text": "nice", "target": hidden["id"]}}, format="json")
    assert r.status_code == 400 and r.json()["error"]["details"] == {"payload.target": "no such message in this story"}
    r = room["alice"].post("/api/stories/tale/channels/general/messages",
                           {"msg_type": "feedback", "payload": {"text": "mine", "target": hidden["id"]}}, format="json")
    assert r.status_code == 201
