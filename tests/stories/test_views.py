"""The browser pages on the server side: what they render, the lobby's forms, the page config and
the Content-Security-Policy. (The pages in a real browser: tests/browser/.)"""
import json
import re

import pytest
from django.test import Client

from stories.models import Participant, Story

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def page_config(response):
    match = re.search(r'<script id="page-config" type="application/json">(.*?)</script>', response.content.decode(), re.S)
    assert match, "no page-config block"
    return json.loads(match.group(1))


def csp(response):
    return dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";"))


def test_pages_need_a_sign_in(make_user, make_story):
    story = make_story(make_user("alice"), slug="tale")
    for path in ("/", f"/stories/{story.slug}/", f"/stories/{story.slug}/agents/"):
        r = Client().get(path)
        assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


def test_html_pages_forbid_inline_scripts_but_json_and_admin_keep_their_headers(make_user, make_story):
    alice = make_user("alice", is_staff=True, is_superuser=True)
    make_story(alice, slug="tale")
    client = signed_in(alice)
    for path in ("/", "/stories/tale/", "/stories/tale/agents/", "/accounts/login/", "/accounts/signup/"):
        r = client.get(path)
        assert r.status_code == 200, path
        policy = csp(r)
        assert policy["script-src"] == "'self'", path
        assert "unsafe" not in policy["script-src"]
        assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
        assert "ws://testserver" in policy["connect-src"]
        assert "<script>" not in r.content.decode(), f"inline script on {path}"
    assert "Content-Security-Policy" not in client.get("/api/stories").headers
    assert "Content-Security-Policy" not in client.get("/admin/").headers
    assert "Content-Security-Policy" not in client.get("/api/docs").headers


def test_the_room_page_hands_its_state_to_the_bundle_as_escaped_json(make_user, make_story, make_agent):
    alice, bob = make_user("alice"), make_user("bob")
    evil = "</script><script>alert(1)</script>"
    story = make_story(alice, slug="tale", title=evil, premise=evil, editors=[bob])
    make_agent("narrator", stories=[story])
    r = signed_in(bob).get("/stories/tale/?channel=general")
    html = r.content.decode()
    assert "<script>alert(1)</script>" not in html
    config = page_config(r)
    assert config["page"] == "room" and config["story"]["title"] == evil
    assert config["me"]["username"] == "bob" and config["role"] == "editor" and config["can_write"] is True
    channels = {c["name"]: c for c in config["channels"]}
    assert channels["general"]["readable"] and channels["room"]["kind"] == "presence"
    # bob may post to the agent's inbox but not read it: listed, write-only.
    assert channels["inbox.narrator"]["readable"] is False
    assert config["channel"] == "general"
    assert [d["name"] for d in config["documents"]] == ["main"]
    assert [a["username"] for a in config["agents"]] == ["narrator"]


def test_a_private_story_is_404_for_outsiders(make_user, make_story):
    make_story(make_user("alice"), slug="secret", visibility="private")
    client = signed_in(make_user("eve"))
    assert client.get("/stories/secret/").status_code == 404
    assert client.get("/stories/secret/agents/").status_code == 404
    assert client.post("/", {"action": "join", "story": "secret"}).status_code == 404


def test_the_lobby_creates_and_joins_stories(make_user, make_story):
    alice, carol = make_user("alice"), make_user("carol")
    make_story(alice, slug="tale", title="A Tale")
    client = signed_in(carol)
    r = client.get("/")
    assert "A Tale" in r.content.decode() and page_config(r) == {"page": "lobby"}

    r = client.post("/", {"action": "join", "story": "tale"})
    assert r.status_code == 302 and r["Location"] == "/stories/tale/"
    assert Participant.objects.get(story__slug="tale", user=carol).role == "editor"

    r = client.post("/", {"action": "create", "new-title": "Storm", "new-slug": "storm", "new-premise": "",
                          "new-visibility": "private"})
    assert r.status_code == 302 and r["Location"] == "/stories/storm/"
    assert Story.objects.get(slug="storm").owner == carol

    r = client.post("/", {"action": "create", "new-title": "Again", "new-slug": "storm", "new-visibility": "public"})
    assert r.status_code == 200 and "already exists" in r.content.decode()
    r = client.post("/", {"action": "create", "new-title": "Bad", "new-slug": "Not A Slug", "new-visibility": "public"})
    assert r.status_code == 200 and Story.objects.count() == 2


def test_the_monitor_page_lists_the_agents_with_recent_activity(make_user, make_story, make_agent, api):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    narrator = make_agent("narrator", stories=[story])
    r = api(narrator).post("/api/stories/tale/channels/general/messages",
                           {"msg_type": "narration", "payload": {"text": "The lamp guttered."}}, format="json")
    assert r.status_code == 201
    config = page_config(signed_in(alice).get("/stories/tale/agents/"))
    assert config["page"] == "monitor"
    assert [a["username"] for a in config["agents"]] == ["narrator"]
    assert len(config["recent"]["narrator"]) == 1 and config["last_message"]["narrator"]
    assert {c["name"] for c in config["channels"]} >= {"general", "room", "inbox.narrator"}
    assert config["room"] == "room"
