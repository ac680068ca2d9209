"""The crew worker end to end: a real server, `manage.py run_crew` as a process, a test-local
chat-completions server, a story of the writer's own (premise, bible, outline).

- The owner adds the crew over REST; the worker starts it. A human's chat is left alone; a request
  (@showrunner) gets the scene the outline planned, written from the story: the prompts carry the
  premise and the bible entries the scene names, never the unrelated one; the text goes into the
  document and the outline scene's range covers it; the messages carry their context receipts.
- Paused, the crew does nothing; resumed, it answers the request made meanwhile.
"""
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from accounts.services import token_issue
from agents.models import AgentProfile
from tests.live import ROOT, LiveServer

PREMISE = "Venice, 1590: a glassblower's daughter hides a forbidden furnace recipe from the guild."
ENTRIES = [
    {"kind": "character", "name": "Ada Moretti", "aliases": ["Ada"],
     "description": "ADA-DESC the glassblower's daughter, sharp with numbers."},
    {"kind": "character", "name": "Bruno Vetri", "aliases": ["Bruno"],
     "description": "BRUNO-DESC a guild inspector who owes her father a debt."},
    {"kind": "place", "name": "The Furnace Room", "aliases": ["furnace"],
     "description": "FURNACE-DESC low, red, always too hot."},
    {"kind": "lore", "name": "The Doge's Barge", "description": "BARGE-DESC unrelated to any scene."},
]
WORDS = ("amber", "cobalt", "smoke", "ember", "salt", "lantern", "canal", "bellows", "ash", "copper", "tide",
         "glass", "wick", "quay", "rosin", "silt", "brine", "flint", "soot", "vessel")


class Model:
    """A chat-completions endpoint on a free port; answers differ in words (the loop policy ignores
    digits), and every request body is kept."""

    def __init__(self):
        self.requests: list[dict] = []
        counter = itertools.count()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model.requests.append(body)
                n = next(counter)
                words = " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(4))
                text = f"Ada Moretti hid the recipe from Bruno Vetri in the furnace light: {words}."
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def prompts(self) -> list[str]:
        return [" ".join(m["content"] for m in r["messages"]) for r in self.requests]


@pytest.fixture
def model():
    m = Model()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def glass(transactional_db, make_user, make_story):
    ada = make_user("ada", display_name="Ada")
    story = make_story(ada, slug="glass", title="The Glass Recipe")
    story.premise = PREMISE
    story.save()
    return {"story": story, "token": token_issue(user=ada)}


class Worker:
    def __init__(self, server: LiveServer, model: Model, log: Path):
        env = {**server.env, "MYTHLINE_LLM_URL": model.url, "MYTHLINE_LLM_MODEL": "stub", "MYTHLINE_LLM_TIMEOUT": "5"}
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "manage.py", "run_crew", "--url", server.base, "--pace", "0",
                                      "--poll", "0.2", "--wait", "10"], cwd=ROOT, env=env,
                                     stdout=log.open("w"), stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def live(glass, model, tmp_path):
    """A real server for the story, an owner's client on it, and `start_worker()`: the crew worker as
    a process (stopped, with the server, when the test ends)."""
    server = LiveServer()
    server.start()
    state = SimpleNamespace(server=server, worker=None,
                            http=httpx.Client(base_url=server.base, timeout=10,
                                              headers={"Authorization": f"Bearer {glass['token']}"}))

    def start_worker():
        state.worker = Worker(server, model, tmp_path / "worker.log")
        return state.worker
    state.start_worker = start_worker
    try:
        yield state
    finally:
        if state.worker is not None:
            state.worker.stop()
        state.http.close()
        server.stop()
        Path(server.log.name).unlink(missing_ok=True)


def wait_for(predicate, worker: Worker, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}; worker log:\n{worker.log.read_text()[-4000:]}")
        time.sleep(0.2)


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_the_crew_writes_the_writers_own_story_on_request_and_pauses(glass, model, live):
    http = live.http
    for entry in ENTRIES:
        assert http.post("/api/stories/glass/bible", json=entry).status_code == 201
    planned = http.post("/api/stories/glass/outline", json={
        "title": "The Recipe in the Ash", "beats": ["Ada hides the recipe in the furnace room.",
                                                   "Bruno comes to inspect the furnace."]}).json()
    crew = http.post("/api/stories/glass/crew", json={}).json()
    names = {a["role"]: a["username"] for a in crew["agents"]}
    showrunner = names["showrunner"]

    def general():
        return http.get("/api/stories/glass/channels/general/messages", params={"limit": 500}).json()["results"]

    def by(sender, msg_type, **payload):
        return [m for m in general() if m["sender"]["username"] == sender and m["msg_type"] == msg_type
                and all(m["payload"].get(k) == v for k, v in payload.items())]

    chat = http.post("/api/stories/glass/channels/general/messages",
                     json={"msg_type": "text", "payload": {"text": "Morning all, coffee first."}}).json()
    worker = live.start_worker()
    wait_for(lambda: AgentProfile.objects.filter(user__username=showrunner, status__in=["idle", "working"]).exists()
             and "Waiting" in AgentProfile.objects.get(user__username=showrunner).task, worker,
             "the showrunner to wait for a request")
    ask = http.post("/api/stories/glass/channels/general/messages", json={
        "msg_type": "text", "payload": {"text": "@showrunner write scene 1: Ada keeps the recipe from Bruno"}}).json()

    done = wait_for(lambda: by(showrunner, "task_update", stage="scene", scene=1), worker, "scene 1", timeout=90)
    assert done
    acks = by(showrunner, "text")
    assert [a["payload"]["steer_from"] for a in acks] == [ask["id"]]  # the chat was left alone
    assert chat["id"] not in {a.get("reply_to") for a in acks}

    # The scene the outline planned, written where the outline says, and marked drafted.
    scene = http.get(f"/api/stories/glass/outline/{planned['id']}").json()
    doc = http.get("/api/stories/glass/documents/main").json()
    assert scene["status"] == "drafted" and scene["range"] and not scene["range"]["gone"]
    written = doc["text"][scene["range"]["from"]:scene["range"]["to"]]
    assert written.startswith("I. The Recipe in the Ash") and "Ada" in written
    assert doc["text"].count("I. The Recipe in the Ash") == 1
    for word in ("Mara", "Elias", "Skerry", "lighthouse"):
        assert word not in doc["text"]

    # What the model was asked: the story's premise and the entries the scene names, not the others.
    prompts = model.prompts()
    assert prompts and all(PREMISE in p for p in prompts)
    assert any("ADA-DESC" in p and "FURNACE-DESC" in p for p in prompts)
    assert not any("BARGE-DESC" in p for p in prompts)
    assert not any("Skerry" in p or "Lighthouse" in p for p in prompts)

    # Receipts: what each narration was written from.
    narration = by(names["narrator"], "narration", scene=1)
    assert len(narration) == 2
    receipt = narration[0]["payload"]["based_on"]
    assert {"ada-moretti", "bruno-vetri"} <= {e["slug"] for e in receipt["bible"]}
    assert "the-doges-barge" not in {e["slug"] for e in receipt["bible"]}
    assert receipt["outline"]["id"] == planned["id"] and receipt["document"]["document"] == "main"
    assert receipt["messages"] == [{"id": ask["id"], "sender": "ada"}]
    # The critic's notes land on the lines they are about: comment threads on the passages.
    threads = wait_for(lambda: [t for t in http.get("/api/stories/glass/documents/main/comments").json()["results"]
                                if t["created_by"] == names["critic"]], worker, "the critic's comments")
    notes = {f["payload"]["text"] for f in by(names["critic"], "feedback", scene=1)}
    assert all(t["quote"] in doc["text"] or t["orphaned"] for t in threads)
    assert {t["first_comment"]["body"] for t in threads} <= notes
    check = by(names["continuity"], "feedback", scene=1)
    assert check and check[0]["payload"]["request_met"] is True, check[0]["payload"]

    # An @narrator note reaches the narrator (not a new scene): it says so, and its next pass has it.
    note = http.post("/api/stories/glass/channels/general/messages", json={
        "msg_type": "text", "payload": {"text": "@narrator more ash in the air, please"}}).json()
    wait_for(lambda: [m for m in by(names["narrator"], "text") if m["reply_to"] == note["id"]], worker,
             "the narrator to take the note")
    assert not [a for a in by(showrunner, "text") if a["payload"].get("steer_from") == note["id"]]

    # Paused: the agents say so, and a request waits; resumed, the crew answers it.
    assert http.patch("/api/stories/glass/crew", json={"paused": True}).status_code == 200
    wait_for(lambda: AgentProfile.objects.filter(user__username__in=names.values(),
                                                 task="Paused by the room").count() == len(names), worker,
             "every agent to report the pause")
    second = http.post("/api/stories/glass/channels/general/messages", json={
        "msg_type": "steer", "payload": {"text": "Next: Bruno finds the ash still warm"}}).json()
    assert http.patch("/api/stories/glass/crew", json={"paused": False}).status_code == 200
    ack = wait_for(lambda: [a for a in by(showrunner, "text") if a["payload"].get("steer_from") == second["id"]],
                   worker, "the request made while paused")
    wait_for(lambda: by(showrunner, "task_update", stage="scene", scene=2), worker, "scene 2", timeout=90)
    assert any("more ash in the air" in p for p in model.prompts()[len(prompts):])
    outline = http.get("/api/stories/glass/outline").json()["results"]
    assert [s["position"] for s in outline] == [1, 2] and outline[1]["created_by"] == names["plot-planner"]
    assert outline[1]["range"]["from"] >= scene["range"]["to"] and ack


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_crew_asked_to_write_in_a_fork_leaves_main_alone(live):
    http = live.http
    for entry in ENTRIES[:2]:
        assert http.post("/api/stories/glass/bible", json=entry).status_code == 201
    http.post("/api/stories/glass/documents/main/ops", json={"append": "The writers' own opening.\n"})
    crew = http.post("/api/stories/glass/crew", json={"roles": [], "writes_to": "fork"}).json()
    assert crew["writes_to"] == "fork" and crew["roles"] == ["showrunner", "plot-planner", "narrator"]
    worker = live.start_worker()
    http.post("/api/stories/glass/channels/general/messages",
              json={"msg_type": "steer", "payload": {"text": "Ada and Bruno at the furnace"}})

    def drafted():
        scenes = http.get("/api/stories/glass/outline").json()["results"]
        return scenes if scenes and scenes[0]["status"] == "drafted" else None
    scenes = wait_for(drafted, worker, "the scene in the crew's draft", timeout=90)
    draft = http.get("/api/stories/glass/documents/crew-draft").json()
    assert draft["forked_from"] == "main" and scenes[0]["range"]["document"] == "crew-draft"
    assert draft["text"].startswith("The writers' own opening.")
    assert draft["text"][scenes[0]["range"]["from"]:].startswith("I. ")
    assert http.get("/api/stories/glass/documents/main").json()["text"] == "The writers' own opening.\n"


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_paused_agent_holds_its_stage_and_a_bare_request_is_still_a_request(live):
    http = live.http
    crew = http.post("/api/stories/glass/crew", json={"roles": []}).json()
    names = {a["role"]: a["username"] for a in crew["agents"]}
    http.patch("/api/stories/glass/crew", json={"paused": True, "agent": "narrator"})
    worker = live.start_worker()
    ask = http.post("/api/stories/glass/channels/general/messages",
                    json={"msg_type": "text", "payload": {"text": "@crew next scene, please"}}).json()

    def general():
        return http.get("/api/stories/glass/channels/general/messages", params={"limit": 500}).json()["results"]

    def said(sender, msg_type):
        return [m for m in general() if m["sender"]["username"] == sender and m["msg_type"] == msg_type]
    # Named nothing the crew knows, and yet a request: answered and planned.
    ack = wait_for(lambda: [m for m in said(names["showrunner"], "text")
                            if m["payload"].get("steer_from") == ask["id"]], worker, "the answer")
    assert "next scene" in ack[0]["payload"]["text"]
    wait_for(lambda: said(names["showrunner"], "decision"), worker, "the plan's approval (no critic: its own)")
    inbox = f"/api/stories/glass/channels/inbox.{names['narrator']}/messages"
    wait_for(lambda: http.get(inbox).json()["results"], worker, "the narrator's assignment")
    # The narrator is paused: its work waits for it (no narration, nothing in the draft).
    assert not said(names["narrator"], "narration")
    assert http.get("/api/stories/glass/documents/main").json()["text"] == ""
    http.patch("/api/stories/glass/crew", json={"paused": False, "agent": "narrator"})
    wait_for(lambda: said(names["showrunner"], "task_update") and
             [m for m in said(names["showrunner"], "task_update") if m["payload"].get("stage") == "scene"],
             worker, "the scene, once the narrator is back", timeout=90)
    assert http.get("/api/stories/glass/documents/main").json()["text"].startswith("I. ")


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_where_agents_suggest_the_crew_writes_suggestions_a_person_accepts(glass, live):
    glass["story"].agents_suggest = True
    glass["story"].save()
    http = live.http
    crew = http.post("/api/stories/glass/crew", json={"roles": []}).json()
    names = {a["role"]: a["username"] for a in crew["agents"]}
    worker = live.start_worker()
    http.post("/api/stories/glass/channels/general/messages",
              json={"msg_type": "steer", "payload": {"text": "Ada at the furnace"}})
    base = "/api/stories/glass/documents/main/suggestions"
    found = wait_for(lambda: [s for s in http.get(base).json()["results"] if s["author"] == names["narrator"]],
                     worker, "the narrator's suggestion", timeout=90)
    assert found[0]["edits"][0]["insert"].startswith("I. ") and found[0]["status"] == "open"
    assert http.get("/api/stories/glass/documents/main").json()["text"] == ""  # nothing applied
    assert http.post(f"{base}/{found[0]['id']}/accept", json={}).status_code == 200
    assert http.get("/api/stories/glass/documents/main").json()["text"].startswith("I. ")