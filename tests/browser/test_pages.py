"""Sign-up, sign-in, sign-out and the lobby; the agent monitor; older messages on scroll."""
import re
import time

import pytest
from playwright.sync_api import expect

from messaging.policies import access_channel
from messaging.services import message_post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]


def test_sign_up_create_a_story_sign_out_sign_in_and_join_a_public_story(browser, server, tale):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server.base)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto("/")
        expect(page).to_have_url(f"{server.base}/accounts/login/?next=/")
        page.get_by_role("link", name="Create one").click()
        page.fill("#id_username", "carol")
        page.fill("#id_display_name", "Carol")
        page.fill("#id_password1", "a-long-Password-9")
        page.fill("#id_password2", "a-long-Password-9")
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(f"{server.base}/")
        expect(page.locator(".me-name")).to_have_text("Carol")
        # alice's public story is offered to join; carol has none of her own yet.
        expect(page.locator('#public-stories [data-story="tale"]')).to_be_visible()

        # Create a story: the slug follows the title until edited.
        page.fill("#id_new-title", "Storm Over Skerry")
        expect(page.locator("#id_new-slug")).to_have_value("storm-over-skerry")
        page.fill("#id_new-premise", "A keeper, a stranger, a failing light.")
        page.get_by_role("button", name="Create story").click()
        expect(page).to_have_url(re.compile(r"/stories/storm-over-skerry/(\?channel=general)?$"))
        expect(page.locator("#connection")).to_have_attribute("data-state", "open")
        expect(page.locator("#channel-name")).to_contain_text("general")
        expect(page.locator('.chan[data-channel="room"]')).to_be_visible()

        # A taken slug is refused with a message, nothing is created.
        page.goto("/")
        page.fill("#id_new-title", "Again")
        page.fill("#id_new-slug", "tale")
        page.get_by_role("button", name="Create story").click()
        expect(page.locator("#create-story .field-errors, #create-story .form-error")).to_contain_text("already exists")

        # Sign out, sign back in, join alice's story from the lobby.
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{server.base}/accounts/login/")
        page.fill("#id_username", "carol")
        page.fill("#id_password", "a-long-Password-9")
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{server.base}/")
        expect(page.locator('#my-stories [data-story="storm-over-skerry"]')).to_be_visible()
        page.locator('#public-stories [data-story="tale"]').get_by_role("button", name="Join").click()
        expect(page).to_have_url(re.compile(r"/stories/tale/(\?channel=general)?$"))
        expect(page.locator("#compose-host textarea")).to_be_editable()
        page.locator("#compose-host textarea").fill("Hello from Carol")
        page.locator("#compose-host textarea").press("Enter")
        expect(page.locator("#feed-list .msg", has_text="Hello from Carol")).to_have_count(1)
        page.goto("/")
        expect(page.locator('#my-stories [data-story="tale"]')).to_be_visible()
        assert errors == []
    finally:
        context.close()


def test_a_title_typed_before_the_page_script_ran_still_names_the_slug(open_as, tale):
    """The lobby's form is usable before its script runs: a title typed while the script is on its
    way gives the slug once the script runs, and a slug typed by hand before then is kept."""
    for slug_typed, slug_after in [("", "storm-over-skerry"), ("my-own", "my-own")]:
        held = []
        page = open_as(tale["alice"], "/", wait_live=False, goto_until="commit",
                       before=lambda page: page.route("**/static/js/mythline*.js", lambda route: held.append(route)))
        page.fill("#id_new-title", "Storm Over Skerry")
        if slug_typed:
            page.fill("#id_new-slug", slug_typed)
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:  # the parser may reach the script tag after the form
            page.wait_for_timeout(20)  # lets Playwright dispatch the route to `held`
        assert len(held) == 1, "the page asked for its script once, and it is held"
        expect(page.locator("#id_new-slug")).to_have_value(slug_typed)
        held[0].continue_()
        page.wait_for_load_state("load")  # module scripts, and so the lobby's start, ran before "load"
        expect(page.locator("#id_new-slug")).to_have_value(slug_after)
        assert page.errors == []


def test_the_agent_monitor_updates_live(open_as, rest, tale):
    page = open_as(tale["alice"], "/stories/tale/agents/")
    row = page.locator('#monitor-body tr[data-agent="narrator"]')
    expect(row.locator('[data-col="status"]')).to_have_text("offline")
    expect(row.locator('[data-col="rate"]')).to_have_text("0")

    agent = rest(tale["narrator_token"])
    r = agent.put("/api/agents/me/status", json={"status": "working", "task": "Drafting scene 4", "progress": 0.4})
    assert r.status_code == 200, r.text
    expect(row.locator('[data-col="status"]')).to_have_text("working", timeout=2000)
    expect(row.locator('[data-col="task"]')).to_have_text("Drafting scene 4")
    expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "40")
    expect(row.locator('[data-col="seen"]')).to_have_text("just now")

    for text in ("The lamp guttered.", "Salt on the glass.", "The chain held."):
        r = agent.post("/api/stories/tale/channels/general/messages", json={"msg_type": "narration", "payload": {"text": text}})
        assert r.status_code == 201, r.text
    expect(row.locator('[data-col="rate"]')).to_have_text("3", timeout=2000)
    expect(page.locator("#stats .stat", has_text="Working").locator(".stat-value")).to_have_text("1")

    r = agent.put("/api/agents/me/status", json={"status": "error", "task": "Lost the thread"})
    assert r.status_code == 200
    expect(row).to_have_attribute("data-status", "error", timeout=2000)
    expect(row.locator(".progress")).to_have_count(0)
    expect(page.locator("#stats .stat", has_text="Errors").locator(".stat-value")).to_have_text("1")
    assert not page.errors, page.errors


def test_older_messages_load_on_scroll_without_moving_what_the_reader_sees(open_as, db_call, tale):
    def fill():
        access = access_channel(tale["bob"], "tale", "general", for_write=True)
        for i in range(1, 131):
            message_post(sender=tale["bob"], access=access,
                         data={"msg_type": "text", "payload": {"text": f"Message number {i} of the long night"}})

    db_call(fill)
    page = open_as(tale["alice"], "/stories/tale/?channel=general")
    cards = page.locator("#feed-list .msg")
    expect(cards.last).to_have_attribute("data-seq", "130")
    expect(cards.last).to_be_in_viewport()
    first_loaded = int(cards.first.get_attribute("data-seq"))
    assert first_loaded > 1

    feed = page.locator("#feed")
    for _ in range(10):
        oldest = cards.first
        seq = oldest.get_attribute("data-seq")
        if seq == "1":
            break
        # Put the oldest card a little below the top, then nudge into the load zone.
        feed.evaluate("(el) => { el.scrollTop = 0; }")
        before = page.locator(f'#feed-list .msg[data-seq="{seq}"]').bounding_box()["y"]
        expect(cards.first).not_to_have_attribute("data-seq", seq)
        after = page.locator(f'#feed-list .msg[data-seq="{seq}"]').bounding_box()["y"]
        assert abs(after - before) <= 2, (before, after)  # the page did not jump
    expect(cards.first).to_have_attribute("data-seq", "1")
    expect(page.locator("#feed-top .feed-start")).to_be_visible()
    seqs = [int(s) for s in cards.evaluate_all("cs => cs.map(c => c.dataset.seq)")]
    assert seqs == list(range(1, 131))
    assert not page.errors, page.errors
