"""The model-backed writer against a real HTTP server speaking the chat-completions API, started
here on a free port: its prompts come from the story (premise, the bible entries the scene names,
the outline, the room, the draft), fit the token budget, and any failure of the endpoint (a
timeout, an answer that is not JSON, JSON without choices) falls back to the rules, after which
the writer carries on with the model.
"""
import asyncio
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.crew.llm import SYSTEM, LLMWriter, build_prompt, writer_from_env
from agents.crew.writing import DEFAULT_CAST, Writer
from tests.agents.test_crew_writing import GLASS, PLANNED

ANSWER = "The silvering came away like frost, and under it the seal. (from the model)"
EXCERPT = "EXCERPT-MARK the last paragraph of the draft, where the next words go."


class Model:
    """What the stub endpoint does next, and every request body it received."""

    def __init__(self):
        self.mode = "ok"                      # ok | hang | not-json | no-choices
        self.requests: list[dict] = []
        self.release = threading.Event()      # set at teardown: a hanging request ends
        self.received = threading.Event()


def _handler(model: Model):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            model.requests.append({"path": self.path, "body": body})
            model.received.set()
            if model.mode == "hang":
                model.release.wait(30)
                data = b"{}"
            elif model.mode == "not-json":
                data = b"<html>502 Bad Gateway</html>"
            elif model.mode == "no-choices":
                data = json.dumps({"id": "x", "object": "chat.completion", "error": "overloaded"}).encode()
            else:
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": ANSWER}}]}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up on us (the timeout test)

        def log_message(self, *args):
            pass
    return Handler


@pytest.fixture
def model():
    state = Model()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def env_for(model: Model, **extra) -> dict:
    return {"MYTHLINE_LLM_URL": model.url, "MYTHLINE_LLM_MODEL": "tiny-glass", **extra}


def messages(request: dict) -> tuple[str, str]:
    system, user = request["body"]["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    return system["content"], user["content"]


def test_prompts_carry_the_story_and_only_the_bible_entries_the_scene_names(model):
    writer = writer_from_env(DEFAULT_CAST, env=env_for(model), story=GLASS)
    assert isinstance(writer, LLMWriter) and writer.cast[0].full_name == "Lucia Barovier"
    outline = writer.outline(2)  # the humans' planned scene
    recent = ("alice: make the seal belong to someone powerful", "critic: keep the apprentice quiet")

    async def go():
        try:
            text = await writer.narration(outline, 1, recent=recent, around=EXCERPT)
            line = await writer.line(outline, 0)
            return text, line
        finally:
            await writer.chat.aclose()
    text, (line, direction) = asyncio.run(go())
    assert text == ANSWER and line == ANSWER and direction == outline.lines[0][1]
    assert len(model.requests) == 2 and model.requests[0]["path"] == "/v1/chat/completions"
    system, user = messages(model.requests[0])
    assert "The Glass Furnace" in system and GLASS.premise in system and "Skerry" not in system
    assert user.startswith("Task: In 60-90 words") and "The Seal Beneath the Silver" in user
    assert all(beat in user for beat in PLANNED["beats"])
    for entry in GLASS.entries[:4]:  # the characters, the place and the object the scene names
        assert entry["description"] in user, entry["name"]
    assert "voice: dry, exact" in user and "look: smoke and canals" in user  # fields too
    assert "Plague" not in user and "A third of the city died" not in user  # never an unrelated entry
    assert "- Scene 1: Embers" in user and "- Scene 2:" not in user  # the other planned scenes
    assert recent[0] in user and recent[1] in user and EXCERPT in user
    assert [e["slug"] for e in writer.last_entries[:1]] == ["nico-falier"] and len(writer.last_entries) == 4
    # Each prompt is the scene's: the line's names its speaker, with the same bible.
    _, user = messages(model.requests[1])
    assert "for Nico Falier (her apprentice, sixteen, far too curious)" in user and "A third of the city" not in user


def test_the_budget_trims_the_least_important_parts_never_the_task():
    outline = Writer(story=GLASS).outline(2)
    task = "Write one spoken line for Nico Falier."
    recent = ["alice: " + " ".join(["more about the seal"] * 10)]
    system, user, entries = build_prompt(GLASS, outline, task, recent=recent, around=EXCERPT, budget_tokens=4000)
    assert EXCERPT in user and recent[0] in user and len(entries) == 4 and len(system + user) <= 16000
    # A little less room: the draft excerpt goes first, the bible stays.
    budget = (len(system) + len(user) - len(EXCERPT) - 10) // 4
    _, user, entries = build_prompt(GLASS, outline, task, recent=recent, around=EXCERPT, budget_tokens=budget)
    assert "EXCERPT-MARK" not in user and recent[0] in user and len(entries) == 4
    # Tiny: only the task and the scene are left.
    system, user, entries = build_prompt(GLASS, outline, task, recent=recent, around=EXCERPT, budget_tokens=60)
    assert user.startswith(f"Task: {task}") and all(beat in user for beat in PLANNED["beats"])
    assert entries == [] and "Story bible" not in user and "EXCERPT" not in user and "more about the seal" not in user
    # A budget between: the bible entries are cut before the outline's other scenes are added.
    base = len(build_prompt(GLASS, outline, task, budget_tokens=1)[1]) + len(system)
    _, user, entries = build_prompt(GLASS, outline, task, around=EXCERPT, budget_tokens=(base + 150) // 4)
    assert 1 <= len(entries) < 4 and "Embers" not in user and "EXCERPT" not in user
    # The lighthouse demo keeps its own system prompt.
    assert build_prompt(None, Writer().outline(1), task)[0] == SYSTEM


def test_the_budget_comes_from_the_environment(model):
    writer = writer_from_env(DEFAULT_CAST, env=env_for(model, MYTHLINE_LLM_BUDGET="200"), story=GLASS)
    outline = writer.outline(2)

    async def go():
        try:
            return await writer.revise(outline, 1, "Shorter, and let him lie badly.", around=EXCERPT)
        finally:
            await writer.chat.aclose()
    assert asyncio.run(go())[0] == ANSWER
    system, user = messages(model.requests[0])
    assert "Shorter, and let him lie badly." in user and PLANNED["beats"][0] in user  # the task and the scene
    assert "EXCERPT" not in user and "Story bible" not in user and "Embers" not in user  # past 200 tokens: cut


def test_a_timeout_falls_back_to_the_rules_and_the_next_call_uses_the_model(model, caplog):
    writer = writer_from_env(DEFAULT_CAST, env=env_for(model, MYTHLINE_LLM_TIMEOUT="0.3"), story=GLASS)
    outline = writer.outline(2)
    model.mode = "hang"

    async def go():
        try:
            fallback = await writer.narration(outline, 2)
            assert model.received.is_set()  # it did ask, and gave up waiting
            model.mode = "ok"
            return fallback, await writer.narration(outline, 2)
        finally:
            await writer.chat.aclose()
    with caplog.at_level(logging.WARNING, logger="mythline.crew.llm"):
        fallback, text = asyncio.run(go())
    assert fallback == outline.narration[1] and "Lucia Barovier" in fallback
    assert "Timeout" in caplog.text and "using the writing rules" in caplog.text
    assert text == ANSWER and len(model.requests) == 2


@pytest.mark.parametrize("mode", ["not-json", "no-choices"])
def test_a_malformed_answer_falls_back_to_the_rules_and_the_writer_carries_on(model, caplog, mode):
    writer = writer_from_env(DEFAULT_CAST, env=env_for(model), story=GLASS)
    outline = writer.outline(3)
    model.mode = mode

    async def go():
        try:
            narration = await writer.narration(outline, 1)
            line = await writer.line(outline, 1)
            note = await writer.critique(outline, 0, outline.lines[0][0], True)
            model.mode = "ok"
            return narration, line, note, await writer.line(outline, 1)
        finally:
            await writer.chat.aclose()
    with caplog.at_level(logging.WARNING, logger="mythline.crew.llm"):
        narration, line, note, after = asyncio.run(go())
    rules = Writer(DEFAULT_CAST, story=GLASS)
    assert narration == asyncio.run(rules.narration(outline, 1)) and line == outline.lines[1]
    assert note == asyncio.run(rules.critique(outline, 0, outline.lines[0][0], True))
    assert caplog.text.count("using the writing rules") == 3
    assert after == (ANSWER, outline.lines[1][1]) and len(model.requests) == 4
