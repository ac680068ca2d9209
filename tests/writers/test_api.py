"""The writers' room over REST: the owner adds the crew (its agents become editors with inboxes),
humans pause and resume it (whole, or agent by agent), the owner removes it; viewers, agents and
outsiders are refused with nothing changed; bad bodies get clear errors; the room hears of it."""
import pytest

from messaging.models import Channel
from stories.models import Participant
from tests.conftest import error_code
from writers.models import CrewAgent, StoryCrew
from writers.roles import NAMES
from writers.selectors import active_crews

pytestmark = pytest.mark.django_db


def url(story):
    return f"/api/stories/{story}/crew"


@pytest.fixture
def tale(make_user, make_story, make_agent):
    owner, editor, viewer, outsider = (make_user(n) for n in ("owner", "ed", "vera", "olga"))
    public = make_story(owner, slug="tale", editors=[editor], viewers=[viewer])
    private = make_story(owner, slug="hush", visibility="private", editors=[editor], viewers=[viewer])
    agent = make_agent("scribe", stories=[public, private])  # an editor, but an agent
    return {"owner": owner, "ed": editor, "vera": viewer, "olga": outsider, "scribe": agent,
            "public": public, "private": private}


def test_the_owner_adds_the_crew_and_its_agents_join_with_inboxes(tale, api):
    owner = api(tale["owner"])
    before = owner.get(url("tale")).json()
    assert before["enabled"] is False and before["agents"] == [] and before["can_manage"] and before["can_pause"]
    assert [r["role"] for r in before["available_roles"]] == list(NAMES)

    r = owner.post(url("tale"), {}, format="json")
    assert r.status_code == 201, r.json()
    crew = r.json()
    assert crew["enabled"] and not crew["paused"] and crew["roles"] == list(NAMES)
    story = tale["public"]
    usernames = [a["username"] for a in crew["agents"]]
    assert usernames == [f"{role}-{story.pk}" for role in NAMES]  # the story's own agents
    assert {a["display_name"] for a in crew["agents"]} >= {"Showrunner", "Narrator", "Lead Voice"}
    for username in usernames:
        assert Participant.objects.get(story=story, user__username=username).role == "editor"
        assert Channel.objects.filter(story=story, name=f"inbox.{username}").exists()
    assert crew["writes_to"] == "main"
    # Adding again changes nothing but answers 200; the owner may send the crew to its own fork.
    again = owner.post(url("tale"), {}, format="json")
    assert again.status_code == 200 and again.json()["agents"] == crew["agents"]
    for bad in ("elsewhere", ["fork"], 1):
        r = owner.post(url("tale"), {"writes_to": bad}, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid", bad
    forked = owner.post(url("tale"), {"writes_to": "fork"}, format="json").json()
    assert forked["writes_to"] == "fork" and forked["agents"] == crew["agents"]  # the roles kept
    assert forked["version"] == crew["version"] + 1
    same = owner.post(url("tale"), {"writes_to": "fork"}, format="json").json()
    assert same["version"] == forked["version"]  # nothing changed: no new version (no restart)
    assert {c["story"]: c for c in active_crews()}["tale"]["writes_to"] == "fork"
    # Another story gets agents of its own.
    other = owner.post(url("hush"), {"roles": ["narrator"]}, format="json").json()
    assert other["roles"] == ["showrunner", "plot-planner", "narrator"]  # the required ones come along
    assert not set(a["username"] for a in other["agents"]) & set(usernames)
    assert {c["story"]: c for c in active_crews()}["tale"]["members"]["narrator"] == f"narrator-{story.pk}"


def test_roles_can_be_picked_and_dialogue_comes_whole(tale, api):
    owner = api(tale["owner"])
    r = owner.post(url("tale"), {"roles": ["critic", "dialogue-writer"]}, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid" and "roles" in r.json()["error"]["details"]
    r = owner.post(url("tale"), {"roles": ["critic", "ghostwriter"]}, format="json")
    assert r.status_code == 400 and "ghostwriter" in r.json()["error"]["message"]
    for bad in ("critic", [1, 2], {"critic": True}):
        r = owner.post(url("tale"), {"roles": bad}, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid", bad
    assert owner.post(url("tale"), {"crew": "all"}, format="json").status_code == 400  # unknown field
    assert owner.post(url("tale"), "[]", content_type="application/json").status_code == 400
    assert not StoryCrew.objects.exists() and not CrewAgent.objects.exists()
    r = owner.post(url("tale"), {"roles": ["critic", "dialogue-writer", "voice-lead", "voice-second"]}, format="json")
    assert r.status_code == 201
    assert r.json()["roles"] == ["showrunner", "plot-planner", "narrator", "dialogue-writer", "voice-lead",
                                 "voice-second", "critic"]
    # Dropping a role later: the crew forgets it (its agent stays a participant).
    r = owner.post(url("tale"), {"roles": []}, format="json")
    assert r.status_code == 200 and r.json()["roles"] == ["showrunner", "plot-planner", "narrator"]
    assert Participant.objects.filter(story=tale["public"], user__username__startswith="critic-").exists()


def test_humans_pause_and_resume_the_crew_and_its_agents(tale, api):
    owner, editor = api(tale["owner"]), api(tale["ed"])
    owner.post(url("tale"), {}, format="json")
    r = editor.patch(url("tale"), {"paused": True}, format="json")
    assert r.status_code == 200 and r.json()["paused"] is True and r.json()["can_manage"] is False
    assert active_crews() == []  # the worker stops it
    r = editor.patch(url("tale"), {"paused": False}, format="json")
    assert r.json()["paused"] is False and len(active_crews()) == 1
    r = owner.patch(url("tale"), {"paused": True, "agent": "narrator"}, format="json")
    assert [a["paused"] for a in r.json()["agents"] if a["role"] == "narrator"] == [True]
    row = active_crews()[0]
    assert "narrator" in row["members"] and row["paused"] == ["narrator"]  # in the crew; its work waits for it
    narrator = f"narrator-{tale['public'].pk}"
    r = owner.patch(url("tale"), {"paused": False, "agent": narrator}, format="json")  # by username too
    assert not any(a["paused"] for a in r.json()["agents"])
    for body in ({"paused": "yes"}, {}, {"paused": True, "agent": "ghost"}, {"paused": True, "agent": ["narrator"]},
                 {"paused": True, "extra": 1}):
        r = owner.patch(url("tale"), body, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid", body
    assert owner.patch(url("hush"), {"paused": True}, format="json").status_code == 409  # no crew there


def test_the_owner_removes_the_crew_and_its_agents_stay(tale, api):
    owner = api(tale["owner"])
    owner.post(url("tale"), {}, format="json")
    assert owner.delete(url("tale")).status_code == 204
    assert owner.get(url("tale")).json()["enabled"] is False and active_crews() == []
    assert Participant.objects.filter(story=tale["public"], user__is_agent=True).count() == len(NAMES) + 1
    # Added again: the same agents come back, no new accounts.
    agents = CrewAgent.objects.count()
    assert owner.post(url("tale"), {}, format="json").status_code == 201 and CrewAgent.objects.count() == agents


@pytest.mark.parametrize("story", ["tale", "hush"])
def test_only_humans_decide_and_outsiders_learn_nothing(tale, api, story):
    owner = api(tale["owner"])
    hidden = story == "hush"
    for who in ("ed", "vera", "scribe", "olga"):  # only the owner adds
        r = api(tale[who]).post(url(story), {}, format="json")
        assert r.status_code == (404 if hidden and who == "olga" else 403), who
    assert not StoryCrew.objects.exists()
    owner.post(url(story), {}, format="json")
    for who in ("vera", "scribe", "olga"):  # viewers, agents, outsiders neither pause nor remove
        client = api(tale[who])
        status = 404 if hidden and who == "olga" else 403
        assert client.patch(url(story), {"paused": True}, format="json").status_code == status, who
        assert client.delete(url(story)).status_code == status, who
    assert api(tale["ed"]).delete(url(story)).status_code == 403
    crew = StoryCrew.objects.get()
    assert crew.paused is False and crew.version == 1
    for who in ("ed", "vera", "scribe"):  # participants read it
        body = api(tale[who]).get(url(story)).json()
        assert body["enabled"] and body["can_manage"] is False
        assert body["can_pause"] is (who == "ed")
    assert api(tale["olga"]).get(url(story)).status_code == (404 if hidden else 200)
    assert api(None).get(url(story)).status_code == 401


def test_a_server_runs_a_bounded_number_of_crews(tale, api, settings):
    settings.MYTHLINE_CREW_MAX_STORIES = 1
    owner = api(tale["owner"])
    assert owner.post(url("tale"), {}, format="json").status_code == 201
    r = owner.post(url("hush"), {}, format="json")
    assert r.status_code == 409 and error_code(r) == "conflict"
    assert StoryCrew.objects.count() == 1 and not CrewAgent.objects.filter(story=tale["private"]).exists()


def test_an_agent_named_like_a_role_is_never_taken_over(tale, api, make_agent):
    story = tale["public"]
    squatter = make_agent(f"narrator-{story.pk}", stories=[story])
    crew = api(tale["owner"]).post(url("tale"), {}, format="json").json()
    narrator = next(a["username"] for a in crew["agents"] if a["role"] == "narrator")
    assert narrator == f"narrator-{story.pk}-2" and not CrewAgent.objects.filter(user=squatter).exists()
    assert squatter.username not in active_crews()[0]["members"].values()


def test_a_storys_crew_agent_joins_no_other_story(tale, api, make_user, make_story):
    """What a story's crew agent does (its status, its tasks) shows in every story it is in: it is in
    its own story only."""
    api(tale["owner"]).post(url("tale"), {}, format="json")
    narrator = f"narrator-{tale['public'].pk}"
    mallory = make_user("mallory")
    make_story(mallory, slug="spy")
    r = api(mallory).post("/api/stories/spy/participants", {"username": narrator, "role": "editor"}, format="json")
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert not Participant.objects.filter(story__slug="spy", user__username=narrator).exists()
