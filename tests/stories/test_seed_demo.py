"""`manage.py seed_demo`: the demo story, its people and crew, a conversation with every built-in
type, and idempotence (a second run changes nothing)."""
import io

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.core.management import call_command

from agents.models import AgentProfile
from messaging.models import Channel, Membership, Message
from messaging.schemas import BUILT_IN_TYPES
from stories.models import Participant, Story

pytestmark = pytest.mark.django_db(transaction=False)

CREW = {"showrunner", "plot-planner", "narrator", "dialogue-writer", "voice-mara", "voice-elias", "critic",
        "continuity"}


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def snapshot():
    counts = {m._meta.label: m._default_manager.count() for m in apps.get_models()}
    seqs = {(slug, name): seq
            for slug, name, seq in Channel.objects.values_list("story__slug", "name", "last_seq")}
    profiles = list(AgentProfile.objects.order_by("pk")
                    .values_list("status", "task", "progress", "status_updated_at"))
    return counts, seqs, profiles


def test_seed_builds_the_demo_story_and_crew(api):
    output = seed()
    assert "the-lighthouse" in output and "demo / mythline-demo" in output

    story = Story.objects.get(slug="the-lighthouse")
    assert story.title == "The Lighthouse" and story.visibility == "public" and len(story.premise) > 100
    demo = authenticate(username="demo", password="mythline-demo")
    reader = authenticate(username="reader", password="mythline-reader")
    assert demo is not None and demo.is_staff and demo.is_superuser and demo.display_name == "Demo Writer"
    assert reader is not None and not reader.is_staff and not reader.is_agent
    assert story.owner == demo

    roles = dict(Participant.objects.filter(story=story).values_list("user__username", "role"))
    assert roles == {"demo": "owner", "reader": "viewer", **{name: "editor" for name in CREW}}

    # The crew, as the presence API shows it: capabilities and a plausible status each.
    presence = api(reader).get("/api/stories/the-lighthouse/presence").json()
    agents = {a["username"]: a for a in presence["agents"]}
    assert set(agents) == CREW
    assert set(agents["showrunner"]["capabilities"]) == {"proposal", "decision", "query", "task_update"}
    assert agents["critic"]["capabilities"] == ["feedback", "vote"]
    assert agents["voice-mara"]["capabilities"] == ["dialogue"]
    assert all(a["status"] in {"idle", "working", "waiting"} for a in agents.values())
    assert {a["status"] for a in agents.values()} >= {"idle", "working", "waiting"}

    # Every built-in type is there; feedback has target and rating; the vote points at the proposal.
    types = set(Message.objects.filter(story=story).values_list("msg_type", flat=True))
    assert set(BUILT_IN_TYPES) <= types
    feedback = Message.objects.filter(story=story, msg_type="feedback")
    assert all("target" in m.payload and 1 <= m.payload["rating"] <= 5 for m in feedback)
    proposal = Message.objects.get(story=story, msg_type="proposal")
    assert {m.payload["proposal"] for m in Message.objects.filter(msg_type="vote")} == {str(proposal.pk)}
    assert Message.objects.get(msg_type="decision").payload["proposal"] == str(proposal.pk)

    # Scenes are correlated; each channel's seq runs 1..last_seq with no gaps.
    assert {"scene-1", "scene-2", "scene-3"} <= set(Message.objects.values_list("correlation_id", flat=True))
    for channel in Channel.objects.filter(story=story):
        seqs = list(channel.messages.order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, channel.last_seq + 1))

    # Private writers' room with members; inboxes hold work; both audiences are used.
    room = Channel.objects.get(story=story, name="writers-room")
    assert room.kind == "private" and room.last_seq > 0
    assert set(Membership.objects.filter(channel=room).values_list("user__username", flat=True)) == {
        "demo", "showrunner", "plot-planner", "critic", "continuity"}
    assert Message.objects.filter(channel__kind="inbox").values("channel").distinct().count() >= 3
    assert {"agents", "humans"} <= set(Message.objects.values_list("audience_kind", flat=True))

    # Threads, as the API shows them: a scene plan with its drafts and their replies.
    plan = Message.objects.get(msg_type="scene_plan", payload__title="Scene 1: The Last Log Entry")
    thread = api(demo).get(f"/api/messages/{plan.pk}/thread")
    assert thread.status_code == 200, thread.content
    body = thread.json()
    rows = body["results"] if isinstance(body, dict) else body
    assert rows[0]["id"] == str(plan.pk)
    assert len(rows) >= 6 and {r["msg_type"] for r in rows} >= {"narration", "dialogue", "feedback", "query"}
    assert any(r["reply_to"] not in (None, str(plan.pk)) for r in rows)  # replies to replies

    # The reader (a viewer) reads #general but not the private room, and not the agents-only note.
    reader_api = api(reader)
    assert reader_api.get("/api/stories/the-lighthouse/channels/writers-room/messages").status_code == 404
    general = reader_api.get("/api/stories/the-lighthouse/channels/general/messages?limit=500").json()
    general = general["results"]
    kinds = {m["msg_type"] for m in general}
    assert {"scene_plan", "narration", "dialogue"} <= kinds
    assert all(m["audience"] != "agents" for m in general)
    assert any(m["audience"] == "humans" for m in general)


def test_seed_twice_changes_nothing():
    seed()
    before = snapshot()
    output = seed()
    assert "0 messages posted" in output and "already there" in output
    after = snapshot()
    assert after[0] == before[0]  # every table's row count
    assert after[1] == before[1]  # every channel's last_seq
    assert after[2] == before[2]  # agent statuses are not touched again
