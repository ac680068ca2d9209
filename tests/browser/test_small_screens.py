"""Phones and tablets: at 390 and 820 px every part of the room is reachable and usable (channels,
chat, the story text, people, a thread), and the agent monitor's table scrolls instead of being
cut off. At 1,280 px everything shows at once."""
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]


def post(rest, token, text, **extra):
    r = rest(token).post("/api/stories/tale/channels/general/messages",
                         json={"msg_type": "narration", "payload": {"text": text}, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def no_horizontal_scroll(page):
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width,height", [(390, 844), (820, 1180)])
def test_every_pane_is_reachable_on_a_small_screen(open_as, rest, tale, width, height):
    root = post(rest, tale["narrator_token"], "The barometer fell.")
    post(rest, tale["narrator_token"], "The gulls went quiet.", reply_to=root["id"])
    page = open_as(tale["alice"], "/stories/tale/", viewport={"width": width, "height": height})
    tabs = page.locator("#room-tabs")
    expect(tabs).to_be_visible()
    assert no_horizontal_scroll(page)

    # Chat first: the feed and a compose box as wide as the screen allows.
    expect(page.locator("#feed-list .msg").first).to_be_visible()
    compose = page.locator("#compose-host .compose")
    expect(compose).to_be_visible()
    assert compose.bounding_box()["width"] >= width - 40
    assert page.locator("#compose-host textarea").first.bounding_box()["width"] >= 0.6 * width
    crumbs, pill = page.locator(".crumb-current").bounding_box(), page.locator("#connection").bounding_box()
    assert crumbs["x"] + crumbs["width"] <= pill["x"] + 1  # the title does not slide under "Live"

    # Channels: the list, and picking one comes back to its chat.
    tabs.get_by_role("button", name="Channels").click()
    expect(page.locator("#channel-groups")).to_be_visible()
    expect(page.locator("#feed-list")).to_be_hidden()
    page.locator('.chan[data-channel="general"]').click()
    expect(page.locator("#feed-list")).to_be_visible()

    # A thread opens over the chat, and Esc closes it.
    page.locator("#feed-list .msg .replies-link", has_text="1 reply").click()
    expect(page.locator("#thread")).to_be_visible()
    expect(page.locator("#thread")).to_contain_text("The gulls went quiet.")
    page.keyboard.press("Escape")
    expect(page.locator("#thread")).to_be_hidden()

    # The story text: visible, and typing in it is saved.
    tabs.get_by_role("button", name="Text").click()
    editor = page.locator("#editor .cm-content")
    expect(editor).to_be_visible()
    editor.click()
    page.keyboard.type("Written on a small screen.")
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced")
    assert "Written on a small screen." in page.evaluate("() => window.mythlineEditor.view.state.doc.toString()")

    # People.
    tabs.get_by_role("button", name="People").click()
    expect(page.locator("#people-body")).to_be_visible()
    expect(page.locator('#people-body .person[data-user="narrator"]')).to_be_visible()
    assert no_horizontal_scroll(page)


def test_wide_screens_show_everything_without_tabs(open_as, tale):
    page = open_as(tale["alice"], "/stories/tale/", viewport={"width": 1280, "height": 800})
    expect(page.locator("#room-tabs")).to_be_hidden()
    for selector in ("#channel-groups", "#feed", "#compose-host .compose", "#editor .cm-content", "#people-body"):
        expect(page.locator(selector)).to_be_visible()


def test_the_monitor_table_scrolls_on_a_phone(open_as, tale):
    page = open_as(tale["alice"], "/stories/tale/agents/", viewport={"width": 390, "height": 844})
    card = page.locator(".table-card")
    expect(card).to_be_visible()
    assert no_horizontal_scroll(page)
    scrollable = card.evaluate("(el) => el.scrollWidth > el.clientWidth && getComputedStyle(el).overflowX === 'auto'")
    assert scrollable
