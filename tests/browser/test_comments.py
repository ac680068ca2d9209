"""Comments in the room: a person selects a passage and comments on it; the passage is highlighted
in every open editor and the thread shown live in the comments dialog; another person replies; an
agent comments over REST and it appears too; text typed before a passage keeps the highlight on it;
deleting a passage's text shows its thread orphaned; resolving a thread takes its highlight away. A
viewer reads the threads but has no control to comment, reply or resolve (and the server refuses)."""
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

ROOM = "/stories/tale/?channel=general"
DOC = "/api/stories/tale/documents/main"
# Astral characters before the passages: the editor counts UTF-16 units, the REST API code points.
TEXT = "🌊🌊 The sea was grey that morning. The ship was old and slow.\n"


def editor_text(page):
    return page.evaluate("() => window.mythlineEditor.view.state.doc.toString()")


def open_room(open_as, user, **kwargs):
    page = open_as(user, ROOM, **kwargs)
    expect(page.locator("#editor .cm-content")).to_be_attached()
    expect(page.locator("#doc-status")).to_have_attribute("data-status", re.compile("^(synced|readonly)$"))
    wait_until(lambda: editor_text(page) == TEXT, message="the seeded text")
    return page


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


def test_comment_reply_agent_typing_orphaned_and_resolved_live(open_as, rest, cast):
    agent = rest(cast["narrator_token"])
    assert agent.post(f"{DOC}/ops", json={"append": TEXT}).status_code == 200
    alice = open_room(open_as, cast["alice"])
    bob = open_room(open_as, cast["bob"])
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
    r = agent.post(f"{DOC}/comments", json={"from": TEXT.index("ship"), "to": TEXT.index("ship") + 4,
                                            "body": "Name the ship?"})
    assert r.status_code == 201, r.text
    second = r.json()
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
    thread_item(dialog, first["id"]).get_by_role("button", name=f"Resolve thread {first['id']}").click()
    for page in (alice, bob):
        expect(mark(page, first["id"])).to_have_count(0)
        expect(page.locator("#doc-comments")).to_have_text("Comments (1)")
    expect(thread_item(dialog, first["id"])).to_have_attribute("data-state", "resolved")
    expect(thread_item(dialog, first["id"])).to_contain_text("resolved by @alice")
    assert threads(rest, cast)[first["id"]]["resolved"] is True
    thread_item(dialog, first["id"]).get_by_role("button", name=f"Reopen thread {first['id']}").click()
    for page in (alice, bob):
        expect(mark(page, first["id"])).to_have_text("grey")
        expect(page.locator("#doc-comments")).to_have_text("Comments (2)")
    assert not alice.errors and not bob.errors, (alice.errors, bob.errors)


def test_a_viewer_reads_the_threads_but_cannot_comment_and_the_dialog_is_accessible(open_as, rest, cast):
    from tests.browser.test_accessibility import assert_accessible

    owner = rest(cast["alice_token"])
    assert owner.post(f"{DOC}/ops", json={"append": TEXT}).status_code == 200
    r = owner.post(f"{DOC}/comments", json={"from": TEXT.index("morning"), "to": TEXT.index("morning") + 7,
                                            "body": "Which season?"})
    assert r.status_code == 201, r.text
    thread = r.json()
    assert owner.post(f"{DOC}/comments/{thread['id']}/replies", json={"body": "Late autumn."}).status_code == 201

    vera = open_room(open_as, cast["vera"])
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
    bob = open_room(open_as, cast["bob"])
    expect(mark(bob, thread["id"])).to_have_text("morning")
    assert_accessible(bob, "the highlighted text")
    dialog = open_comments(bob)
    expect(thread_item(dialog, thread["id"]).get_by_label(f"Reply to thread {thread['id']}")).to_be_visible()
    select_hint = dialog.get_by_role("button", name="Comment on the selection")
    select_hint.click()  # nothing selected: said in words
    expect(dialog.locator("#comment-error")).to_contain_text("Select the passage")
    assert_accessible(bob, "the comments dialog with its forms")
    phone = open_room(open_as, cast["bob"], viewport={"width": 390, "height": 844})
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
