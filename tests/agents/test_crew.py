"""The demo crew end to end: `manage.py run_agents` as a process, its eight agents as SDK clients of
a real server (the loop-prevention policies on), a human in the room.

- Killed half-way through a scene and started again with `--once`, the crew finishes it: every
  built-in message type, each post once, edits to `main` (appends and a find/replace), status
  reports, cursors moved.
- A human `query` naming a character and a place steers the next scene's plan.
- With `requires_approval` the crew proposes and waits: no decision and no writing until a human
  votes; a "no" sends the plan back, a human `decision` lets the writing start.
- The optional model adapter, against a stub OpenAI-compatible server in the test.
"""
import asyncio
import json
from collections import Counter
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from accounts.services import token_issue
from agents.crew.llm import LLMWriter, writer_from_env
from agents.crew.runner import CREW, revise_index
from agents.crew.writing import DEFAULT_CAST, SEEDS, Focus, Writer, steer_from, verdict
from agents.models import AgentProfile
from messaging.loops import payload_fingerprint
from messaging.models import ReadCursor
from stories.models import Document, DocumentChange
from tests.live import ROOT, LiveServer

BUILT_IN = {"text", "scene_plan", "narration", "dialogue", "feedback", "query", "task_update", "proposal", "vote",
            "decision"}


@pytest.fixture(scope="module")
def server(django_db_setup):
    """One server for the module (starting Daphne costs seconds); each test has its own data."""
    with LiveServer() as live:  # stopped, its log removed, after the module
        yield live


@pytest.fixture
def drama(transactional_db, make_user, make_story):
    alice = make_user("alice", display_name="Alice")
    story = make_story(alice, slug="drama", title="The Lighthouse, again")
    return {"story": story, "alice": alice, "token": token_issue(user=alice)}


class CrewProcess:
    def __init__(self, server, *args, log: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_agents", "--story", "drama", "--url", server.base, "--pace", "0",
             "--wait", "10", *args], cwd=ROOT, env=server.env, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean stop: the agents report offline
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


class Room:
    """The owner's view through the API: every channel of the story (inboxes included)."""

    def __init__(self, server, token):
        self.http = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def messages(self) -> list[dict]:
        out, after = [], None
        while True:
            body = self.http.get("/api/activity", params={"story": "drama", "limit": 500,
                                                          **({"after": after} if after else {})}).json()
            out += body["results"]
            if not body["results"]:
                return out
            after = body["next_after"]

    def general(self) -> list[dict]:
        return [m for m in self.messages() if m["channel"] == "general"]

    def post(self, msg_type, payload, **extra) -> dict:
        r = self.http.post("/api/stories/drama/channels/general/messages",
                           json={"msg_type": msg_type, "payload": payload, **extra})
        assert r.status_code == 201, r.text
        return r.json()

    def document(self) -> dict:
        return self.http.get("/api/stories/drama/documents/main").json()


def wait_for(predicate, crew: CrewProcess, timeout=45, what="the crew"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if crew.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}; crew log:\n{crew.output()[-4000:]}")
        time.sleep(0.2)


def by(messages, sender=None, msg_type=None, **payload):
    return [m for m in messages if (sender is None or m["sender"]["username"] == sender)
            and (msg_type is None or m["msg_type"] == msg_type)
            and all(m["payload"].get(k) == v for k, v in payload.items())]


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_run_agents_writes_a_scene_with_every_message_type_even_when_killed_half_way(server, drama, tmp_path):
    """The crew is killed (SIGKILL) in the middle of the narration, then `run_agents --once` runs
    again: the scene is finished, and nothing was posted twice."""
    room = Room(server, drama["token"])
    first = CrewProcess(server, "--scenes", "1", "--pace", "0.2", "--duration", "60", log=tmp_path / "crew-1.log")
    wait_for(lambda: by(room.general(), "narrator", "narration"), first, what="the first narration")
    first.proc.kill()
    first.proc.wait(10)
    crew = CrewProcess(server, "--once", "--duration", "60", log=tmp_path / "crew-2.log")
    assert crew.proc.wait(90) == 0, crew.output()
    messages = room.messages()
    # Not the server's `mention` copies in inboxes (a reply to an agent makes one, "sent" by the replier).
    crew_posts = [m for m in messages if m["sender"]["username"] in CREW and m["msg_type"] != "mention"]
    assert BUILT_IN <= {m["msg_type"] for m in crew_posts}, {m["msg_type"] for m in crew_posts}
    assert {m["sender"]["username"] for m in crew_posts} == set(CREW)  # every agent took part
    for output in (first.output(), crew.output()):
        assert "loop_detected" not in output and "Traceback" not in output
    posted = Counter((m["sender"]["username"], m["msg_type"]) for m in crew_posts)
    assert posted == {
        ("showrunner", "task_update"): 2, ("showrunner", "text"): 3, ("showrunner", "proposal"): 1,
        ("showrunner", "decision"): 1, ("plot-planner", "task_update"): 1, ("plot-planner", "scene_plan"): 1,
        ("plot-planner", "text"): 1, ("narrator", "narration"): 2, ("narrator", "task_update"): 1,
        ("continuity", "query"): 1, ("critic", "vote"): 1, ("critic", "feedback"): 2,
        ("dialogue-writer", "text"): 2, ("dialogue-writer", "task_update"): 1,
        ("voice-mara", "dialogue"): 1 + (revise_index(1) == 0), ("voice-elias", "dialogue"): 1 + (revise_index(1) == 1),
    }, posted

    # A coherent scene: the plan, its narration and lines, a note and the revised line.
    plan = by(messages, "plot-planner", "scene_plan")[0]
    assert plan["payload"]["title"] == f"Scene 1: {SEEDS[0].title}" and len(plan["payload"]["beats"]) == 4
    narration = by(messages, "narrator", "narration")
    assert [n["reply_to"] for n in narration] == [plan["id"], plan["id"]]
    lines = [m for m in by(messages, msg_type="dialogue") if not m["payload"].get("revision_of")]
    assert {line["payload"]["character"] for line in lines} == {"Mara", "Elias"}
    asked = [f for f in by(messages, "critic", "feedback") if f["payload"]["revise"]]
    revised = by(messages, msg_type="dialogue", revision_of=asked[0]["payload"]["target"])
    assert len(asked) == 1 and len(revised) == 1 and revised[0]["reply_to"] == asked[0]["id"]
    decision = by(messages, "showrunner", "decision")[0]
    assert decision["payload"]["approved"] is True and decision["reply_to"] == by(messages, "showrunner", "proposal")[0]["id"]

    # The draft: the narration appended under a heading, the lines, the revision replacing its line.
    doc = room.document()
    text = doc["text"]
    assert text.startswith(f"I. {SEEDS[0].title}\n\n") and narration[0]["payload"]["text"] in text
    assert text.count(f"I. {SEEDS[0].title}") == 1 and text.count(narration[1]["payload"]["text"]) == 1
    original = next(line for line in lines if line["id"] == asked[0]["payload"]["target"])
    assert revised[0]["payload"]["line"] in text and original["payload"]["line"] not in text
    changes = DocumentChange.objects.filter(document=Document.objects.get(story=drama["story"], name="main"))
    assert {c.author.username for c in changes} == {"narrator", "dialogue-writer"} and doc["revision"] >= 4

    # Status reports reached the server, and every agent acknowledged what it read.
    profiles = AgentProfile.objects.filter(user__username__in=CREW)
    assert all(p.status_updated_at is not None for p in profiles) and {p.status for p in profiles} == {"offline"}
    inboxes = {c.channel.name: c.seq for c in ReadCursor.objects.filter(channel__story=drama["story"],
                                                                      channel__name__startswith="inbox.")}
    assert {"inbox.plot-planner", "inbox.narrator", "inbox.dialogue-writer", "inbox.voice-mara",
            "inbox.voice-elias"} <= {name for name, seq in inboxes.items() if seq > 0}


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_human_query_steers_the_next_scene(server, drama, tmp_path):
    crew = CrewProcess(server, "--scenes", "1", "--duration", "60", log=tmp_path / "crew.log")
    room = Room(server, drama["token"])
    try:
        wait_for(lambda: by(room.general(), "showrunner", "task_update", stage="scene", scene=1), crew,
                 what="scene 1 to be written")
        first_plan = by(room.general(), "plot-planner", "scene_plan", scene=1)[0]
        query = room.post("query", {"text": "@showrunner What if Elias takes Mara down to the boathouse?"})

        plans = wait_for(lambda: by(room.general(), "plot-planner", "scene_plan", scene=2), crew,
                         what="the plan of scene 2")
        plan = plans[0]["payload"]
        ack = by(room.general(), "showrunner", "text", steer_from=query["id"])
        assert ack and ack[0]["reply_to"] == query["id"] and "Elias" in ack[0]["payload"]["text"]
        # The plan follows what the human asked for, not the outline the crew had next.
        assert plan["title"] == "Scene 2: Elias and the Boathouse" != f"Scene 2: {SEEDS[1].title}"
        assert plan["focus"]["characters"] == ["Elias", "Mara"] and plan["steered_by"] == [query["id"]]
        assert all("boathouse" not in b for b in first_plan["payload"]["beats"])
        assert sum("boathouse" in b for b in plan["beats"]) >= 3 and plans[0]["reply_to"] == query["id"]
        # ... and so does the writing that follows.
        narration = wait_for(lambda: by(room.general(), "narrator", "narration", scene=2), crew,
                             what="the narration of scene 2")
        assert "boathouse" in narration[0]["payload"]["text"]
    finally:
        crew.stop()
    assert "loop_detected" not in crew.output()


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_with_requires_approval_the_crew_waits_for_a_human_decision(server, drama, tmp_path):
    drama["story"].requires_approval = True
    drama["story"].save()
    crew = CrewProcess(server, "--scenes", "1", "--duration", "60", log=tmp_path / "crew.log")
    room = Room(server, drama["token"])
    try:
        proposal = wait_for(lambda: by(room.general(), "showrunner", "proposal", scene=1), crew,
                            what="the proposal")[0]
        vote = wait_for(lambda: by(room.general(), "critic", "vote", proposal=proposal["id"]), crew,
                        what="the critic's vote")[0]

        def showrunner_read_the_vote():
            cursor = ReadCursor.objects.filter(channel__story=drama["story"], channel__name="general",
                                               user__username="showrunner").first()
            profile = AgentProfile.objects.get(user__username="showrunner")
            return cursor and cursor.seq >= vote["seq"] and "human vote" in profile.task and profile.status == "waiting"
        wait_for(showrunner_read_the_vote, crew, what="the showrunner to take in the critic's vote")
        # The critic's yes is not enough: no decision, nothing written.
        messages = room.general()
        assert not by(messages, "showrunner", "decision") and not by(messages, msg_type="narration")
        assert room.document()["revision"] == 0

        # A human says no: the plan goes back to the planner, and a new proposal waits again.
        room.post("vote", {"proposal": proposal["id"], "choice": "no"})
        rejected = wait_for(lambda: by(room.general(), "showrunner", "decision", scene=1), crew,
                            what="the rejection")[0]
        assert rejected["payload"]["approved"] is False and rejected["reply_to"] == proposal["id"]
        second = wait_for(lambda: by(room.general(), "showrunner", "proposal", scene=1, version=2), crew,
                          what="the second proposal")[0]
        plans = by(room.general(), "plot-planner", "scene_plan", scene=1)
        assert [p["payload"]["version"] for p in plans] == [1, 2] and plans[0]["payload"]["title"] != plans[1]["payload"]["title"]
        assert not by(room.general(), msg_type="narration")

        # A human decision on the new proposal starts the writing.
        room.post("decision", {"text": "Approved: write it.", "proposal": second["id"]})
        narration = wait_for(lambda: by(room.general(), "narrator", "narration", scene=1), crew,
                             what="the narration after the approval")
        approved = [d for d in by(room.general(), "showrunner", "decision", scene=1) if d["payload"]["approved"]]
        assert approved and approved[0]["reply_to"] == second["id"] and "Alice" in approved[0]["payload"]["text"]
        assert narration[0]["seq"] > approved[0]["seq"]
    finally:
        crew.stop()


# --- the writing rules and the model adapter, offline ----------------------------------------

def test_the_writing_never_repeats_itself_in_the_eyes_of_the_loop_policy():
    """Scene after scene, each agent's texts differ in words, not only in numbers: the server's
    near-duplicate check (which ignores digits and punctuation) never sees the crew as looping.
    (Posts that answer a message also carry its id, which differs every time.)"""
    writer = Writer(DEFAULT_CAST)
    focus = steer_from("More of Elias and the storm", DEFAULT_CAST)

    async def texts(scene, focus):
        outline = writer.outline(scene, focus)
        return [outline.title, *outline.beats, await writer.narration(outline, 1), await writer.narration(outline, 2),
                (await writer.line(outline, 0))[0], (await writer.line(outline, 1))[0],
                (await writer.critique(outline, 0, outline.lines[0][0], True))[0], outline.question, outline.answer]

    async def go():
        seen = {}
        for scene in range(1, len(SEEDS) + 1):
            for i, text in enumerate(await texts(scene, None)):
                fingerprint = payload_fingerprint({"text": text})
                assert fingerprint not in seen, (scene, text, seen.get(fingerprint))
                seen[fingerprint] = (scene, i)
        steered = await texts(20, focus)
        assert "Elias" in steered[0] and "storm" in steered[0].lower()
    asyncio.run(go())


def test_steering_and_verdicts():
    focus = steer_from("Could Mara confront Elias about the wreck?", DEFAULT_CAST, by="alice")
    assert focus.characters == ("Mara", "Elias") and focus.motif == "the wreck of the Corran"
    assert not steer_from("hello!", DEFAULT_CAST)
    assert Writer().outline(5, focus).title == "Mara and the Wreck of the Corran"
    assert Writer().outline(5, Focus()).title == SEEDS[4].title
    assert [verdict(v) for v in ("yes", "Approve", "👍", "no", "Rejected: too slow", "hmm")] == \
        [True, True, True, False, False, None]


class _StubModel(BaseHTTPRequestHandler):
    requests: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        answer = {"choices": [{"message": {"role": "assistant", "content": "The lamp held. (from the model)"}}]}
        data = json.dumps(answer).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_the_model_adapter_calls_an_openai_compatible_endpoint_and_falls_back_to_the_rules():
    stub = HTTPServer(("127.0.0.1", 0), _StubModel)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    _StubModel.requests = []
    try:
        env = {"MYTHLINE_LLM_URL": f"http://127.0.0.1:{stub.server_port}/v1", "MYTHLINE_LLM_MODEL": "tiny-drama",
               "MYTHLINE_LLM_API_KEY": "sk-test"}
        writer = writer_from_env(DEFAULT_CAST, env=env)
        assert isinstance(writer, LLMWriter)
        outline = writer.outline(1)

        async def go():
            text = await writer.narration(outline, 1)
            line, direction = await writer.line(outline, 0)
            _StubModel.status = 500
            fallback = await writer.narration(outline, 2)
            await writer.chat.aclose()
            return text, line, direction, fallback

        text, line, direction, fallback = asyncio.run(go())
        assert text == "The lamp held. (from the model)" and line == text
        assert direction == outline.lines[0][1]  # stage directions stay with the rules
        assert fallback == outline.narration[1]  # the endpoint failed: the rules wrote it
        first = _StubModel.requests[0]
        assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
        assert first["body"]["model"] == "tiny-drama" and first["body"]["messages"][0]["role"] == "system"
        assert "The Clockwork Slips" in first["body"]["messages"][1]["content"]
    finally:
        _StubModel.status = 200
        stub.shutdown()
    assert type(writer_from_env(DEFAULT_CAST, env={})) is Writer
    assert type(writer_from_env(DEFAULT_CAST, env={"MYTHLINE_LLM_URL": "http://x"})) is Writer  # no model named
