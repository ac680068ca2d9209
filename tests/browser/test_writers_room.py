"""A writer's own story, end to end in the browser: a story started from the lobby with a premise,
a few bible entries, the writers' room added from the room's sidebar, a request in the chat; the
crew (the real worker, `manage.py run_crew`, offline writer) plans the scene into the story's
outline and writes it into its document, naming the story's characters, and every narration says
what it was based on."""
import re
import signal
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_until
from tests.live import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ENTRIES = [
    {"kind": "character", "name": "Ada Moretti", "aliases": ["Ada"], "description": "The glassblower's daughter."},
    {"kind": "character", "name": "Bruno Vetri", "aliases": ["Bruno"], "description": "A guild inspector."},
    {"kind": "place", "name": "Murano", "description": "The island of furnaces."},
]


@pytest.fixture
def worker(server, tmp_path):
    log = tmp_path / "worker.log"
    env = {k: v for k, v in server.env.items() if not k.startswith("MYTHLINE_LLM_")}  # the offline writer
    proc = subprocess.Popen([sys.executable, "manage.py", "run_crew", "--url", server.base, "--pace", "0",
                             "--poll", "0.2", "--wait", "10"], cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    proc.log = log
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_a_new_story_gets_its_crew_and_the_crew_writes_that_story(open_as, rest, db_call, make_user, worker, server):
    from accounts.services import token_issue

    wren = db_call(make_user, "wren", display_name="Wren")
    page = open_as(wren, "/", wait_live=False)
    page.fill("#id_new-title", "The Glass Recipe")
    page.fill("#id_new-premise", "Venice, 1590: a glassblower's daughter hides a forbidden recipe from the guild.")
    page.get_by_role("button", name="Create story").click()
    expect(page).to_have_url(re.compile(r"/stories/the-glass-recipe/"))
    expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=15000)

    api = rest(db_call(token_issue, user=wren))
    for entry in ENTRIES:
        assert api.post("/api/stories/the-glass-recipe/bible", json=entry).status_code == 201

    # The owner adds the writers' room in a click; its agents join the story.
    page.locator("#crew-button").click()
    expect(page.locator("#crew-dialog")).to_be_visible()
    page.locator("#crew-add").click()
    expect(page.locator("#crew-agents li")).to_have_count(8, timeout=10000)
    page.keyboard.press("Escape")

    # A request in the chat: the crew plans the scene and writes it.
    compose = page.locator("#compose-host textarea")
    compose.fill("@showrunner please write the opening: Ada hides the recipe from Bruno")
    compose.press("Enter")
    expect(page.locator(".msg", has_text="please write the opening")).to_be_visible()

    def outline():
        return api.get("/api/stories/the-glass-recipe/outline").json()["results"]

    def written():
        scenes = outline()
        return scenes if scenes and scenes[0]["status"] == "drafted" and scenes[0]["range"] else None
    # (polled at a human pace: the server's log stays readable)
    try:
        scenes = wait_until(written, timeout=90, message="the crew to write scene 1")
    except AssertionError:
        said = api.get("/api/stories/the-glass-recipe/channels/general/messages").json()["results"]
        raise AssertionError(f"{[(m['sender']['username'], m['msg_type'], m['payload']) for m in said]}\n"
                             f"{worker.log.read_text()[-3000:]}\n"
                             + "\n".join([line for line in open(server.log.name) if "/outline" not in line][-80:])) from None
    assert scenes[0]["created_by"].startswith("plot-planner-")
    text = api.get("/api/stories/the-glass-recipe/documents/main").json()["text"]
    scene_text = text[scenes[0]["range"]["from"]:scenes[0]["range"]["to"]]
    assert scene_text.startswith("I. ") and "Ada" in scene_text and "Bruno" in scene_text
    for word in ("Mara", "Elias", "Skerry", "lighthouse", "keeper"):
        assert word not in text

    # The room shows it: the text in the editor, the receipt under the narration.
    expect(page.locator("#editor .cm-content")).to_contain_text("Ada", timeout=10000)
    narration = page.locator(".msg", has_text=re.compile("Based on")).first
    expect(narration).to_be_visible(timeout=10000)
    expect(narration).to_contain_text("Ada Moretti")
    assert not page.errors
