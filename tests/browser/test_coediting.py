"""Two people type into the `main` document at the same time, in two browsers."""
import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]


def editor_text(page):
    return page.evaluate("() => window.mythlineEditor.view.state.doc.toString()")




def test_two_people_type_at_once_and_converge_with_each_others_cursors(open_as, server, tale):
    alice = open_as(tale["alice"], "/stories/tale/")
    bob = open_as(tale["bob"], "/stories/tale/")
    for page in (alice, bob):
        expect(page.locator("#editor .cm-content")).to_be_visible()
        expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced")

    # Both put the caret at the (empty) document's start and type in turns, a few keys at a time,
    # without waiting for the other's edits to arrive: the pushes race and get rebased. Two carets
    # at one spot may interleave keystrokes (as in any OT editor: a rebased insert at the same
    # position goes after the confirmed one), but no keystroke is lost or doubled.
    alice.locator("#editor .cm-content").click()
    bob.locator("#editor .cm-content").click()
    alice_words = ["Mara ", "wound ", "the ", "clock. "]
    bob_words = ["Elias ", "climbed ", "the ", "stairs. "]
    for a, b in zip(alice_words, bob_words):
        alice.keyboard.type(a)
        bob.keyboard.type(b)

    def converged():
        a, b = editor_text(alice), editor_text(bob)
        statuses = {p.locator("#doc-status").get_attribute("data-status") for p in (alice, bob)}
        return a == b and statuses == {"synced"} and a

    text = wait_until(converged, message="both editors to hold the same text")
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['alice_token']}"}) as api:
        server_doc = api.get("/api/stories/tale/documents/main").json()
    assert server_doc["text"] == text
    assert sorted(text) == sorted("".join(alice_words + bob_words))

    # Now in two places at once: alice at the start, bob at the end. Each one's words arrive whole
    # and in order around what was there: a rebased insert never splits or drops another's.
    alice.keyboard.press("Control+Home")
    bob.keyboard.press("Control+End")
    alice_line = ["Rain ", "fell ", "on ", "Harrow. "]
    bob_line = [" Nobody ", "slept ", "that ", "night."]
    for a, b in zip(alice_line, bob_line):
        alice.keyboard.type(a)
        bob.keyboard.type(b)
    expected = "".join(alice_line) + text + "".join(bob_line)
    text = wait_until(lambda: converged() == expected and expected, message="both lines to arrive whole")
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['alice_token']}"}) as api:
        assert api.get("/api/stories/tale/documents/main").json()["text"] == expected

    # Each sees the other's named cursor.
    expect(alice.locator("#editor .cm-remoteCursorName", has_text="Bob")).to_be_visible(timeout=5000)
    expect(bob.locator("#editor .cm-remoteCursorName", has_text="Alice")).to_be_visible(timeout=5000)

    # A later edit by one shows up for the other.
    alice.keyboard.press("End")
    alice.keyboard.type("!")
    wait_until(lambda: editor_text(bob) == editor_text(alice) and editor_text(alice).count("!") == 1,
               message="bob to see alice's edit")

    # Alice forks the document to explore a branch; bob's switcher learns of it live and opens it.
    text = editor_text(alice)
    alice.locator("#fork-doc").click()
    alice.locator("#doc-form input[name=name]").fill("main-alt")
    alice.locator("#doc-form button[type=submit]").click()
    expect(alice.locator("#doc-select")).to_have_value("main-alt")
    expect(alice.locator("#editor")).to_have_attribute("data-doc", "main-alt")
    wait_until(lambda: editor_text(alice) == text, message="the fork to open with main's text")
    expect(bob.locator('#doc-select option[value="main-alt"]')).to_be_attached(timeout=3000)
    bob.locator("#doc-select").select_option("main-alt")
    expect(bob.locator("#editor")).to_have_attribute("data-doc", "main-alt")
    wait_until(lambda: editor_text(bob) == text, message="bob to open the fork")
    bob.locator("#editor .cm-content").click()
    bob.keyboard.press("Control+End")
    bob.keyboard.type(" A branch.")
    wait_until(lambda: editor_text(alice) == text + " A branch.", message="the fork's edit to reach alice")
    assert not alice.errors and not bob.errors, (alice.errors, bob.errors)
