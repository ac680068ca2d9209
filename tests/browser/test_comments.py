"""Comments in the room: a person selects a passage and comments on it; the passage is highlighted
in every open editor and the thread shown live in the comments dialog; another person replies; an
agent comments over REST and it appears too; text typed before a passage keeps the highlight on it;
deleting a passage's text shows its thread orphaned; resolving a thread takes its highlight away. A
viewer reads the threads but has no control to comment, reply or resolve (and the server refuses)."""
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DOC, editor_text, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

# Astral characters before the passages: the editor counts UTF-16 units, the REST API code points.
TEXT = "🌊🌊 The sea was grey that morning. The ship was old and slow.\n"


def select(page, passage):
    """Selects `passage` in the editor, as a drag over it would."""
    page.evaluate("""(passage) => {
        const view = window.mythlineEditor.view;
        const from = view.state.doc.toString().indexOf(passage);
        view.focus();
        view.dispatch({selection: {anchor: from, head: from + passage.length}, userEvent: "select"});
    }""", passage)


def mark(page, thread_id):
    return page.locator(f'#editor .cm-comment[data-thread="{thread_id}"]')


def open_comments(page):
    page.locator("#doc-comments").click()
    dialog = page.locator("#comment-dialog")
    expect(dialog).to_be_visible()
    return dialog


def close_comments(page):
    page.keyboard.press("Escape")
    expect(page.locator("#comment-dialog")).to_be_hidden()


def thread_item(dialog, thread_id):
    return dialog.locator(f'.comment-thread[data-id="{thread_id}"]')


def threads(rest, cast):
    return {t["id"]: t for t in rest(cast["alice_token"]).get(f"{DOC}/comments").json()["results"]}


def comment(client, text, passage, body):
    """`client` comments over REST on `passage` of `text` (the API counts characters); the thread."""
    at = text.index(passage)
    r = client.post(f"{DOC}/comments", json={"from": at, "to": at + len(passage), "body": body})
    assert r.status_code == 201, r.text
    return r.json()


def resolve_and_reopen(item, thread_id, quote, pages, rest, cast):
    """Alice resolves the thread from `item` (its dialog entry or its card): its highlight goes in
    every page and the count drops; `item` says so and offers to reopen, which brings both back."""
    opened = int(pages[0].locator("#doc-comments").get_attribute("data-count"))
    item.get_by_role("button", name=f"Resolve thread {thread_id}").click()
    for page in pages:
        expect(mark(page, thread_id)).to_have_count(0)
        expect(page.locator("#doc-comments")).to_have_text(f"Comments ({opened - 1})")
    expect(item).to_have_attribute("data-state", "resolved")
    expect(item).to_contain_text("resolved by @alice")
    assert threads(rest, cast)[thread_id]["resolved"] is True
    item.get_by_role("button", name=f"Reopen thread {thread_id}").click()
    for page in pages:
        expect(mark(page, thread_id)).to_have_text(quote)
        expect(page.locator("#doc-comments")).to_have_text(f"Comments ({opened})")


def test_comment_reply_agent_typing_orphaned_and_resolved_live(open_room, rest, cast):
    agent = rest(cast["narrator_token"])
    assert agent.post(f"{DOC}/ops", json={"append": TEXT}).status_code == 200
    alice = open_room(cast["alice"], text=TEXT)
    bob = open_room(cast["bob"], text=TEXT)
    for page in (alice, bob):
        expect(page.locator("#doc-comments")).to_have_text("Comments (0)")

    # Alice selects "grey" and comments on it from the dialog.
    select(alice, "grey")
    dialog = open_comments(alice)
    expect(dialog.locator("#comment-count")).to_have_text("No comments yet.")
    dialog.get_by_role("button", name="Comment on the selection").click()
    expect(dialog.locator("#comment-new-quote")).to_have_text("grey")
    dialog.get_by_label("Your comment").fill("Too dull? Say what kind of grey.")
    dialog.get_by_role("button", name="Comment", exact=True).click()
    expect(dialog.locator(".comment-thread")).to_have_count(1)
    first = next(iter(threads(rest, cast).values()))
    assert first["quote"] == "grey" and first["created_by"] == "alice"
    assert first["anchor"] == {"from": TEXT.index("grey"), "to": TEXT.index("grey") + 4}  # code points
    expect(thread_item(dialog, first["id"])).to_contain_text("Too dull? Say what kind of grey.")

    # Bob's open room shows the highlight and the thread, live.
    expect(mark(bob, first["id"])).to_have_text("grey")
    expect(mark(bob, first["id"])).to_have_attribute("title", "@alice: Too dull? Say what kind of grey.")
    expect(bob.locator("#doc-comments")).to_have_text("Comments (1)")
    bob_dialog = open_comments(bob)
    item = thread_item(bob_dialog, first["id"])
    expect(item.locator(".comment-quote")).to_have_text("grey")
    expect(item.locator(".comment-item")).to_have_text(["@aliceToo dull? Say what kind of grey."])

    # Bob replies; Alice's open dialog shows it.
    item.get_by_label(f"Reply to thread {first['id']}").fill("Slate, then.")
    item.get_by_role("button", name="Reply").click()
    for d in (dialog, bob_dialog):
        expect(thread_item(d, first["id"]).locator(".comment-body")).to_have_text(
            ["Too dull? Say what kind of grey.", "Slate, then."])
    expect(thread_item(dialog, first["id"]).locator(".comment-item").nth(1)).to_contain_text("@bob")
    expect(item.get_by_label(f"Reply to thread {first['id']}")).to_have_value("")

    # The narrator comments on "ship" over REST (characters): it appears in both rooms.
    second = comment(agent, TEXT, "ship", "Name the ship?")
    for page, d in ((alice, dialog), (bob, bob_dialog)):
        expect(mark(page, second["id"])).to_have_text("ship")
        expect(mark(page, second["id"])).to_have_attribute("title", "@narrator (agent): Name the ship?")
        expect(d.locator(".comment-thread")).to_have_count(2)
        # In the order of the text.
        expect(d.locator(".comment-thread .comment-quote")).to_have_text(["grey", "ship"])
        expect(thread_item(d, second["id"])).to_contain_text("@narrator (agent)")
        expect(page.locator("#doc-comments")).to_have_text("Comments (2)")

    # Bob types before the passages: the highlights stay on their text in both editors.
    close_comments(bob)
    close_comments(alice)
    bob.locator("#editor .cm-content").click()
    bob.keyboard.press("Control+Home")
    bob.keyboard.type("Dawn. ")
    for page in (alice, bob):
        wait_until(lambda page=page: editor_text(page).startswith("Dawn. 🌊"), message="Bob's typing")
        expect(mark(page, first["id"])).to_have_text("grey")
        expect(mark(page, second["id"])).to_have_text("ship")
    wait_until(lambda: threads(rest, cast)[first["id"]]["anchor"]["from"] == TEXT.index("grey") + 6,
               message="the server's anchor moved with the text")

    # Bob deletes "ship": its thread is orphaned, its highlight gone, in both rooms.
    select(bob, "ship")
    bob.keyboard.press("Backspace")
    for page in (alice, bob):
        wait_until(lambda page=page: "The  was old" in editor_text(page), message="the deletion")
        expect(mark(page, second["id"])).to_have_count(0)
        expect(mark(page, first["id"])).to_have_text("grey")
    dialog = open_comments(alice)
    orphan = thread_item(dialog, second["id"])
    expect(orphan).to_have_attribute("data-state", "orphaned")
    expect(orphan).to_contain_text("orphaned: its text was deleted")
    expect(orphan.locator(".comment-quote")).to_have_text("ship")
    assert threads(rest, cast)[second["id"]]["orphaned"] is True

    # Alice resolves the first thread: its highlight goes everywhere; it can be reopened.
    resolve_and_reopen(thread_item(dialog, first["id"]), first["id"], "grey", (alice, bob), rest, cast)
    assert not alice.errors and not bob.errors, (alice.errors, bob.errors)


def test_a_viewer_reads_the_threads_but_cannot_comment_and_the_dialog_is_accessible(open_room, rest, cast):
    from tests.browser.test_accessibility import assert_accessible

    owner = rest(cast["alice_token"])
    assert owner.post(f"{DOC}/ops", json={"append": TEXT}).status_code == 200
    thread = comment(owner, TEXT, "morning", "Which season?")
    assert owner.post(f"{DOC}/comments/{thread['id']}/replies", json={"body": "Late autumn."}).status_code == 201

    vera = open_room(cast["vera"], text=TEXT)
    expect(mark(vera, thread["id"])).to_have_text("morning")
    dialog = open_comments(vera)
    item = thread_item(dialog, thread["id"])
    expect(item.locator(".comment-body")).to_have_text(["Which season?", "Late autumn."])
    expect(dialog.locator("#comment-new")).to_be_hidden()
    expect(dialog.locator("textarea:visible")).to_have_count(0)
    for name in ("Reply", "Resolve", "Reopen", "Comment on the selection"):
        expect(dialog.get_by_role("button", name=name)).to_have_count(0)
    assert_accessible(vera, "the comments dialog, read only")
    close_comments(vera)
    expect(vera.locator("#doc-comments")).to_be_focused()
    # The server refuses her too.
    status = vera.evaluate("""async (url) => {
        const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
        const res = await fetch(url, {method: "POST", credentials: "same-origin",
          headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: JSON.stringify({body: "Me too"})});
        return res.status;
    }""", f"{DOC}/comments/{thread['id']}/replies")
    assert status == 403
    assert threads(rest, cast)[thread["id"]]["comment_count"] == 2

    # A writer's dialog (with its forms) passes axe too, and fits a phone.
    bob = open_room(cast["bob"], text=TEXT)
    expect(mark(bob, thread["id"])).to_have_text("morning")
    assert_accessible(bob, "the highlighted text")
    dialog = open_comments(bob)
    expect(thread_item(dialog, thread["id"]).get_by_label(f"Reply to thread {thread['id']}")).to_be_visible()
    select_hint = dialog.get_by_role("button", name="Comment on the selection")
    select_hint.click()  # nothing selected: said in words
    expect(dialog.locator("#comment-error")).to_contain_text("Select the passage")
    assert_accessible(bob, "the comments dialog with its forms")
    phone = open_room(cast["bob"], text=TEXT, viewport={"width": 390, "height": 844})
    phone.locator("#room-tabs").get_by_role("button", name="Text").click()
    expect(mark(phone, thread["id"])).to_be_visible()
    dialog = open_comments(phone)
    expect(thread_item(dialog, thread["id"])).to_be_visible()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert dialog.evaluate("(d) => d.scrollWidth <= d.clientWidth"), "the dialog scrolls sideways"
    vera_errors = [e for e in vera.errors if "403" not in e]  # the refusal asked for above
    assert not vera_errors and not bob.errors and not phone.errors, (vera_errors, bob.errors, phone.errors)


# A longer text for the margin: the passages on lines of their own, far enough apart to tell.
LOG = "".join(f"Day {n}: the wind held.\n" for n in range(1, 7))
MARGIN_TEXT = f"{LOG}🌊 The ship was old and slow.\n{LOG}The gulls followed the wake.\n{LOG}{LOG}"


def card(page, thread_id):
    return page.locator(f'#comment-margin .comment-card[data-id="{thread_id}"]')


def level_with_its_passage(page, thread_id):
    """The card stands beside its highlight: to its right, its top level with the passage's line."""
    box, passage = card(page, thread_id).bounding_box(), mark(page, thread_id).bounding_box()
    if not box or not passage:
        return False
    return box["x"] >= passage["x"] + passage["width"] and abs(box["y"] - passage["y"]) <= 12


def test_the_margin_shows_each_thread_beside_its_line_live_with_reply_resolve_and_orphans(open_room, rest, cast):
    agent = rest(cast["narrator_token"])
    assert agent.post(f"{DOC}/ops", json={"append": MARGIN_TEXT}).status_code == 200
    alice = open_room(cast["alice"], text=MARGIN_TEXT)
    bob = open_room(cast["bob"], text=MARGIN_TEXT)
    expect(bob.locator("#comment-margin")).to_be_hidden()  # no threads, no column

    # The narrator comments over REST (characters): a card appears in both rooms, beside its line.
    thread = comment(agent, MARGIN_TEXT, "ship", "Name the ship?")
    other = comment(agent, MARGIN_TEXT, "gulls", "Which gulls?")
    for page in (alice, bob):
        item = card(page, thread["id"])
        expect(item).to_be_visible()
        expect(item.locator(".comment-card-author")).to_have_text("@narrator (agent)")
        expect(item.locator(".comment-card-quote")).to_have_text("ship")
        expect(item.locator(".comment-card-first")).to_have_text("Name the ship?")
        expect(item.locator(".comment-card-replies")).to_have_text("No replies")
        expect(item).to_have_attribute("data-state", "open")
        wait_until(lambda page=page: level_with_its_passage(page, thread["id"]), message="the card beside its line")
    assert card(bob, other["id"]).bounding_box()["y"] > card(bob, thread["id"]).bounding_box()["y"]

    # Clicking the highlight makes its card the active one; clicking a card selects its passage.
    mark(bob, thread["id"]).click()
    expect(card(bob, thread["id"])).to_have_class(re.compile(r"\bactive\b"))
    expect(card(bob, thread["id"])).to_have_attribute("aria-current", "true")
    expect(card(bob, other["id"])).not_to_have_attribute("aria-current", "true")
    # The second passage is further down: scrolled to, its card comes along.
    mark(bob, other["id"]).evaluate("(el) => el.scrollIntoView({block: 'center'})")
    wait_until(lambda: level_with_its_passage(bob, other["id"]), message="the card scrolled with its line")
    card(bob, other["id"]).locator(".comment-card-quote").click()
    expect(card(bob, other["id"])).to_have_attribute("aria-current", "true")
    assert bob.evaluate("""() => { const s = window.mythlineEditor.view.state;
        return s.sliceDoc(s.selection.main.from, s.selection.main.to); }""") == "gulls"
    expect(bob.locator("#editor .cm-comment-active")).to_have_text("gulls")

    # Bob replies from the card; Alice's card counts the reply, live.
    item = card(bob, thread["id"])
    item.get_by_role("button", name="Reply", exact=True).click()
    item.get_by_label(f"Reply to thread {thread['id']}").fill("The Albatross.")
    item.get_by_role("button", name="Send").click()
    for page in (alice, bob):
        expect(card(page, thread["id"]).locator(".comment-card-replies")).to_have_text("1 reply")
    expect(item.get_by_label(f"Reply to thread {thread['id']}")).to_be_hidden()
    assert threads(rest, cast)[thread["id"]]["comment_count"] == 2

    # Alice writes lines above the passage: in Bob's room the card moves down the text with it (on
    # the screen it may stay put: the editor keeps what Bob sees in place).
    def in_the_text(page, thread_id):
        return card(page, thread_id).bounding_box()["y"] - page.evaluate("() => window.mythlineEditor.view.documentTop")

    before = in_the_text(bob, thread["id"])
    alice.locator("#editor .cm-content").click()
    alice.keyboard.press("Control+Home")
    alice.keyboard.type("A storm came.\nThen a calm.\nThen fog.\n")
    wait_until(lambda: editor_text(bob).startswith("A storm came.\nThen a calm.\nThen fog.\n"), message="Alice's lines")
    wait_until(lambda: in_the_text(bob, thread["id"]) > before + 40
               and level_with_its_passage(bob, thread["id"]), message="the card followed its passage")

    # Deleting the passage's text orphans the thread: its card says so.
    revision = agent.get(DOC).json()["revision"]
    r = agent.post(f"{DOC}/ops", json={"find": "gulls", "replace": "", "base_revision": revision})
    assert r.status_code == 200, r.text
    for page in (alice, bob):
        expect(card(page, other["id"])).to_have_attribute("data-state", "orphaned")
        expect(card(page, other["id"])).to_contain_text("orphaned: its text was deleted")
        expect(mark(page, other["id"])).to_have_count(0)

    # Alice resolves from the card, and reopens.
    resolve_and_reopen(card(alice, thread["id"]), thread["id"], "ship", (alice, bob), rest, cast)
    assert not alice.errors and not bob.errors, (alice.errors, bob.errors)


def test_a_narrow_screen_folds_the_margin_away_and_the_dialog_stays_the_way_in(open_room, rest, cast):
    from tests.browser.test_accessibility import assert_accessible

    agent = rest(cast["narrator_token"])
    assert agent.post(f"{DOC}/ops", json={"append": TEXT}).status_code == 200
    thread = comment(agent, TEXT, "ship", "Name the ship?")
    # A viewer's wide room: the card, without controls.
    vera = open_room(cast["vera"], text=TEXT)
    expect(card(vera, thread["id"])).to_be_visible()
    for name in ("Reply", f"Resolve thread {thread['id']}"):
        expect(card(vera, thread["id"]).get_by_role("button", name=name)).to_have_count(0)
    assert_accessible(vera, "the margin, read only")

    tablet = open_room(cast["bob"], text=TEXT, viewport={"width": 820, "height": 1180})
    tablet.locator("#room-tabs").get_by_role("button", name="Text").click()
    expect(mark(tablet, thread["id"])).to_be_visible()
    expect(tablet.locator("#comment-margin")).to_be_hidden()
    expect(tablet.locator("#doc-comments")).to_have_text("Comments (1)")
    dialog = open_comments(tablet)
    item = thread_item(dialog, thread["id"])
    item.get_by_label(f"Reply to thread {thread['id']}").fill("The Albatross.")
    item.get_by_role("button", name="Reply").click()
    expect(item.locator(".comment-body")).to_have_text(["Name the ship?", "The Albatross."])
    close_comments(tablet)
    expect(tablet.locator("#comment-margin")).to_be_hidden()
    # Widened, the same room shows the margin.
    tablet.set_viewport_size({"width": 1280, "height": 800})
    expect(card(tablet, thread["id"])).to_be_visible()
    expect(card(tablet, thread["id"]).locator(".comment-card-replies")).to_have_text("1 reply")
    wait_until(lambda: level_with_its_passage(tablet, thread["id"]), message="the card beside its line")
    card(tablet, thread["id"]).get_by_role("button", name="Reply", exact=True).click()
    assert_accessible(tablet, "the margin with a reply form")
    assert not vera.errors and not tablet.errors, (vera.errors, tablet.errors)
