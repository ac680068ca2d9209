"""REST: GET /api/notifications and POST /api/notifications/read, the caller's own only."""
import pytest

from notifications import services
from tests.conftest import error_code
from tests.notifications.conftest import post

pytestmark = pytest.mark.django_db


def test_list_unread_filter_paging_and_mark_read(cast, api):
    for i in range(5):
        post(cast["bob"], payload={"text": f"@carol line {i}"})
    client = api(cast["carol"])
    body = client.get("/api/notifications").json()
    assert body["unread"] == 5 and body["next"] is None
    assert [n["excerpt"] for n in body["results"]] == [f"@carol line {i}" for i in (4, 3, 2, 1, 0)]
    first = body["results"][0]
    assert set(first) == {"id", "kind", "story", "channel", "message_id", "actor", "excerpt", "created_at", "read_at"}
    assert first["kind"] == "mention" and first["story"] == "tale" and first["channel"] == "general"
    assert first["actor"] == {"username": "bob", "display_name": "bob", "kind": "human"} and first["read_at"] is None

    page = client.get("/api/notifications?limit=2").json()
    assert len(page["results"]) == 2 and page["next"].startswith("http://testserver/api/notifications?")
    second = client.get(page["next"]).json()
    assert [n["id"] for n in second["results"]] == [n["id"] for n in body["results"][2:4]]
    third = client.get(second["next"]).json()
    assert len(third["results"]) == 1 and third["next"] is None

    r = client.post("/api/notifications/read", {"ids": [first["id"], body["results"][1]["id"]]}, format="json")
    assert r.status_code == 200 and r.json() == {"unread": 3}
    unread = client.get("/api/notifications?unread=1").json()
    assert unread["unread"] == 3 and len(unread["results"]) == 3
    assert all(n["read_at"] is None for n in unread["results"])
    read = client.get("/api/notifications").json()["results"][0]
    assert read["read_at"] is not None
    assert client.post("/api/notifications/read", {"all": True}, format="json").json() == {"unread": 0}
    assert client.get("/api/notifications?unread=1").json()["results"] == []


def test_someone_elses_notifications_are_neither_seen_nor_marked(cast, api):
    mine = services.notify(user=cast["vera"], kind="webhook.disabled", excerpt="vera's")
    post(cast["bob"], payload={"text": "@carol hi"})
    carol = api(cast["carol"])
    assert [n["excerpt"] for n in carol.get("/api/notifications").json()["results"]] == ["@carol hi"]
    assert carol.post("/api/notifications/read", {"ids": [mine.pk]}, format="json").json() == {"unread": 1}
    mine.refresh_from_db()
    assert mine.read_at is None
    assert api(cast["otto"]).get("/api/notifications").json() == {"results": [], "unread": 0, "next": None}
    assert api(None).get("/api/notifications").status_code == 401
    assert api(None).post("/api/notifications/read", {"all": True}, format="json").status_code == 401


@pytest.mark.parametrize("query", ["unread=maybe", "limit=0", "limit=201", "limit=x", "before=-1", "before=1.5"])
def test_bad_query(cast, api, query):
    r = api(cast["carol"]).get(f"/api/notifications?{query}")
    assert r.status_code == 400 and error_code(r) == "invalid"


@pytest.mark.parametrize("body", [{}, {"ids": [1], "all": True}, {"ids": "1"}, {"ids": [True]}, {"ids": [0]},
                                  {"ids": list(range(1, 502))}, {"all": "yes"}, {"all": False}, {"every": True},
                                  [1, 2]])
def test_bad_mark_read_body(cast, api, body):
    r = api(cast["carol"]).post("/api/notifications/read", body, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid"


def test_mentions_over_rest_posts(cast, api):
    bob = api(cast["bob"])
    r = bob.post("/api/stories/tale/channels/general/messages",
                 {"msg_type": "text", "payload": {"text": "hi @vera"}, "mentions": ["carol"]}, format="json")
    assert r.status_code == 201 and r.json()["mentions"] == ["carol", "vera"]
    read = bob.get("/api/stories/tale/channels/general/messages?after=0").json()["results"][-1]
    assert read["mentions"] == ["carol", "vera"]
    for bad in ("carol", [5], [f"u{i}" for i in range(51)], ["ghost"], ["otto"]):
        r = bob.post("/api/stories/tale/channels/general/messages",
                     {"msg_type": "text", "payload": {"text": "x"}, "mentions": bad}, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid" and "mentions" in r.json()["error"]["details"]
    assert api(cast["carol"]).get("/api/notifications").json()["unread"] == 1
