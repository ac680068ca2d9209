"""The pages on the seeded demo story (`manage.py seed_demo`), as a user sees them.

Asserts that the demo renders; with MYTHLINE_SCREENSHOTS=1 it also refreshes the screenshots the
README shows (docs/img/lobby.png, room.png, monitor.png):

    MYTHLINE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser/test_screenshots.py
"""
import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def test_demo_pages(open_as, db_call, tmp_path):
    from django.contrib.auth import get_user_model

    def seed():
        from stories.models import Participant, Story
        from stories.services import participant_add, story_create

        call_command("seed_demo", stdout=io.StringIO())
        users = get_user_model().objects
        ines = users.create_user("ines", password="pw-ines-123456", display_name="Inès Moreau")
        story_create(owner=ines, slug="salt-and-iron", title="Salt and Iron",
                     premise="A shipwright and her automaton apprentice race a rival yard to launch the first "
                             "iron-hulled clipper before the winter storms close the harbour.")
        story_create(owner=ines, slug="the-quiet-orbit", title="The Quiet Orbit",
                     premise="Six researchers on a failing station discover that the ground has stopped answering.")
        participant_add(story=Story.objects.get(slug="the-lighthouse"), user=ines, role=Participant.Role.EDITOR)
        return users.get(username="demo"), users.get(username="reader"), ines

    demo, reader, ines = db_call(seed)
    out = IMG if os.environ.get("MYTHLINE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)

    page = open_as(demo, "/", wait_live=False)
    expect(page.locator('#my-stories [data-story="the-lighthouse"]')).to_be_visible()
    expect(page.locator('#public-stories [data-story="salt-and-iron"]')).to_be_visible()
    page.screenshot(path=str(out / "lobby.png"))

    # A second person in the room, with the caret in the document.
    other = open_as(reader, "/stories/the-lighthouse/?channel=general")
    page.goto("/stories/the-lighthouse/?channel=general")
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.locator('#people-body .person[data-user="reader"]')).to_be_visible()
    expect(page.locator("#feed-list .msg-scene_plan").first).to_be_attached()
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced")
    # The reader is a viewer: the document is read-only and there is no compose box.
    expect(other.locator("#editor .cm-content")).to_have_attribute("contenteditable", "false")
    expect(other.locator("#compose-host .compose")).to_be_hidden()
    expect(other.locator("#doc-status")).to_have_text("Read only")
    # A viewer's caret is not shown to others (cursors are for those who may write); an editor's is.
    writer = open_as(ines, "/stories/the-lighthouse/?channel=general")
    expect(writer.locator("#doc-status")).to_have_attribute("data-status", "synced")
    writer.locator("#editor .cm-content").click(position={"x": 120, "y": 60})
    expect(page.locator("#editor .cm-remoteCursorName", has_text="Inès Moreau")).to_be_visible(timeout=5000)
    # Show a scene plan and its narration in the feed rather than the last notes.
    page.locator("#feed-list .msg-scene_plan").last.scroll_into_view_if_needed()
    page.locator("#feed").evaluate("(el) => { el.scrollTop = el.scrollTop - 60; }")
    page.mouse.move(5, 790)
    page.screenshot(path=str(out / "room.png"))

    page.goto("/stories/the-lighthouse/agents/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.locator("#monitor-body tr.agent-row")).to_have_count(8)
    page.screenshot(path=str(out / "monitor.png"), full_page=False)
    assert not page.errors, page.errors
