"""The room's search box (issue #17, docs/browser.md): it searches the story's messages the reader
may read (GET /api/search), shows the server's ranked results with their highlights, and a result
opens its channel at the message, loading its history down to it. Empty and error states, keys,
and never a message of a private channel the reader is not in (the server's rule: one check here)."""
import json

import pytest
from playwright.sync_api import expect

from tests.browser.test_accessibility import assert_accessible

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]


def post(user, channel, text):
    from messaging.policies import access_channel
    from messaging.services import message_post

    access = access_channel(user, "tale", channel, for_write=True)
    return str(message_post(sender=user, access=access,
                            data={"msg_type": "narration", "payload": {"text": text}}).message.pk)


def test_a_result_opens_its_channel_at_the_message_loading_history(open_room, open_as, db_call, tale):
    def build():
        from messaging.services import channel_create

        channel_create(story=tale["story"], creator=tale["alice"], name="scene-2", kind="public")
        found = post(tale["narrator"], "scene-2", "The barometer fell <fast> & the gulls went quiet.")
        # Far more than a page of history after it: the room must load back to it.
        for i in range(130):
            post(tale["alice"], "scene-2", f"Filler line {i}.")  # a person: no loop check
        post(tale["narrator"], "general", "Nothing to see in general.")
        return found
    found = db_call(build)
    page = open_room(tale["alice"])
    expect(page.locator("#feed-list .msg")).to_have_count(1)

    box = page.locator("#search-input")
    box.fill("barometer")
    results = page.locator("#search-results .search-hit")
    expect(results).to_have_count(1)
    expect(page.locator("#search-status")).to_have_text("1 message found")
    hit = results.first
    expect(hit.locator("mark")).to_have_text(["barometer"])
    # The escaped text is text: "<fast>" is shown, no element made of it.
    expect(hit.locator(".search-snippet")).to_contain_text("The barometer fell <fast> & the gulls")
    assert hit.locator(".search-snippet > *").count() == 1  # the one <mark>
    expect(hit.locator(".search-where")).to_have_text("#scene-2")
    assert_accessible(page, "the search results")

    # ↓ goes to the result; Enter follows it: scene-2 opens at the message, flashed and focused.
    box.press("ArrowDown")
    expect(hit).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#search-panel")).to_be_hidden()
    card = page.locator(f'#feed-list .msg[data-id="{found}"]')
    expect(card).to_be_visible(timeout=15000)
    expect(card).to_be_focused()
    assert "flash" in (card.get_attribute("class") or "")
    assert "channel=scene-2" in page.url
    expect(page.locator("#channel-name")).to_contain_text("scene-2")
    assert not page.errors, page.errors

    # The result is a link too: opened on its own (a new tab), the room shows the message.
    href = hit.get_attribute("href")
    assert href == f"/stories/tale/?channel=scene-2&message={found}"
    linked = open_as(tale["bob"], href)
    expect(linked.locator(f'#feed-list .msg[data-id="{found}"]')).to_be_focused(timeout=15000)


def test_empty_and_error_states_and_escape(open_room, tale):
    page = open_room(tale["bob"])
    box = page.locator("#search-input")
    box.fill("zzzzqqq")
    expect(page.locator("#search-status")).to_have_text("No messages match “zzzzqqq”.")
    expect(page.locator("#search-results .search-hit")).to_have_count(0)
    # Esc closes the results and keeps the focus in the box; Esc again empties it.
    box.press("Escape")
    expect(page.locator("#search-panel")).to_be_hidden()
    expect(box).to_be_focused()
    box.press("Escape")
    expect(box).to_have_value("")

    # The server's refusal, in words.
    page.route("**/api/search?*", lambda route: route.fulfill(status=503, content_type="application/json",
                                                              body=json.dumps({"error": {"code": "unavailable",
                                                                                         "message": "Search is resting."}})))
    box.fill("lighthouse")
    expect(page.locator("#search-status")).to_have_text("The search failed: Search is resting.")
    expect(page.locator("#search-status")).to_have_class("search-status error")
    page.unroute("**/api/search?*")
    # A newer query replaces the older one's answer.
    box.fill("lighthouse keeper")
    expect(page.locator("#search-status")).to_have_text("No messages match “lighthouse keeper”.")


def test_never_a_message_of_a_private_channel_the_reader_is_not_in(open_room, db_call, tale):
    def build():
        from messaging.services import channel_create

        channel_create(story=tale["story"], creator=tale["alice"], name="cabal", kind="private")
        post(tale["alice"], "cabal", "The lighthouse keeper is the thief.")
        return post(tale["narrator"], "general", "The lighthouse keeper waved.")
    public = db_call(build)
    bob = open_room(tale["bob"])
    bob.locator("#search-input").fill("lighthouse keeper")
    results = bob.locator("#search-results .search-hit")
    expect(results).to_have_count(1)
    expect(results.first).to_have_attribute("data-id", public)
    expect(bob.locator("#search-results")).not_to_contain_text("thief")
    # The owner, who reads every channel, finds both.
    alice = open_room(tale["alice"])
    alice.locator("#search-input").fill("lighthouse keeper")
    expect(alice.locator("#search-results .search-hit")).to_have_count(2)


def test_search_on_a_phone(open_room, db_call, tale):
    found = db_call(post, tale["narrator"], "general", "A squall off the point.")
    page = open_room(tale["bob"], viewport={"width": 390, "height": 844})
    page.locator(".search-form").click()
    box = page.locator("#search-input")
    expect(box).to_be_focused()
    box.fill("squall")
    hit = page.locator("#search-results .search-hit")
    expect(hit).to_have_count(1)
    assert page.locator("#search-panel").bounding_box()["width"] >= 360
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    hit.click()
    expect(page.locator(f'#feed-list .msg[data-id="{found}"]')).to_be_focused()
