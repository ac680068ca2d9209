"""Versions in the room: an editor names the revision she wrote, writes on, compares the version with
the current text (the new words shown inserted), and restores it: both open editors come back to
the old text. A viewer reads the list and the comparison without the means to change anything."""
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_until
from tests.browser.test_accessibility import assert_accessible

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

ROOM = "/stories/tale/?channel=general"


def type_in_editor(page, text):
    page.locator("#editor .cm-content").click()
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.type(text)
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced", timeout=10000)


def editor_text(page):
    return page.evaluate("() => window.mythlineEditor.view.state.doc.toString()")


def shows(page, text):
    wait_until(lambda: editor_text(page) == text, timeout=10, message=f"the editor to show {text!r}")


def open_versions(page):
    page.locator("#doc-versions").click()
    dialog = page.locator("#versions-dialog")
    expect(dialog).to_be_visible()
    return dialog


def test_name_compare_and_restore_in_two_open_editors(open_as, cast):
    alice = open_as(cast["alice"], ROOM)
    bob = open_as(cast["bob"], ROOM)
    first = "The keeper climbed the stair."
    type_in_editor(alice, first)
    shows(bob, first)

    dialog = open_versions(alice)
    expect(dialog.locator("#versions-title")).to_have_text("Versions of “main”")
    expect(dialog.locator("#versions-count")).to_have_text("No named versions yet.")
    dialog.locator("#versions-name").fill("First draft")
    dialog.locator("#versions-save").click()
    item = dialog.locator(".versions-item")
    expect(item).to_have_count(1)
    expect(item.locator(".versions-name")).to_have_text("First draft")
    # A taken name (any case) is refused in words, in the form.
    dialog.locator("#versions-name").fill("FIRST DRAFT")
    dialog.locator("#versions-save").click()
    expect(dialog.locator("#versions-form .form-error")).to_contain_text("already has a version named")
    dialog.locator("button[aria-label=Close]").click()
    expect(dialog).to_be_hidden()
    expect(alice.locator("#doc-versions")).to_be_focused()

    # Alice writes on; Bob's editor gets the words.
    type_in_editor(alice, " Night fell fast on the rock.")
    shows(bob, f"{first} Night fell fast on the rock.")

    dialog = open_versions(alice)
    dialog.locator(".versions-item", has_text="First draft").locator(".versions-compare").click()
    diff = dialog.locator("#versions-diff-text")
    expect(diff).to_be_visible()
    expect(diff.locator("ins")).to_have_count(1)
    expect(diff.locator("ins")).to_contain_text("Night fell fast on the rock.")
    expect(diff.locator("del")).to_have_count(0)
    expect(dialog.locator("#versions-diff-stats")).to_contain_text("6 words inserted, 0 words deleted")
    assert_accessible(alice, "versions dialog with a comparison")

    alice.once("dialog", lambda confirm: confirm.accept())
    dialog.locator(".versions-item", has_text="First draft").locator(".versions-restore").click()
    for page in (alice, bob):  # both open editors receive the restore as a normal change
        shows(page, first)
    expect(alice.locator("#doc-status")).to_have_attribute("data-status", "synced")
    dialog.locator("button[aria-label=Close]").click()

    # Bob can type on after the restore: his editor is in step with the server.
    type_in_editor(bob, " Again.")
    shows(alice, f"{first} Again.")

    vera = open_as(cast["vera"], ROOM)
    dialog = open_versions(vera)
    expect(dialog.locator(".versions-item")).to_have_count(1)
    expect(dialog.locator("#versions-form")).to_have_count(0)
    expect(dialog.locator(".versions-restore")).to_have_count(0)
    dialog.locator(".versions-compare").click()
    expect(dialog.locator("#versions-diff-text ins")).to_have_text("[inserted:  Again.]")
    # The one refused request is the taken name (the browser logs its 409); nothing else went wrong.
    assert [e for e in alice.errors if "409 (Conflict)" not in e] == [] and len(alice.errors) <= 1
    assert bob.errors == [] and vera.errors == []


def test_a_fork_merged_back_as_suggestions_from_the_versions_dialog(open_as, cast, rest):
    """Bob tries an idea in a fork; from the fork's Versions dialog he merges it back: alice sees the
    fork's changed passage as a suggestion in `main`, and accepting it brings it in."""
    alice_api = rest(cast["alice_token"])
    alice_api.post("/api/stories/tale/documents/main/ops", json={"append": "The keeper climbed the stair."})
    fork = alice_api.post("/api/stories/tale/documents", json={"name": "idea", "fork_of": "main"})
    assert fork.status_code == 201, fork.json()
    alice_api.post("/api/stories/tale/documents/idea/ops",
                   json={"base_revision": 0, "find": "climbed", "replace": "ran up"})
    bob = open_as(cast["bob"], ROOM)
    bob.locator("#doc-select").select_option("idea")
    wait_until(lambda: bob.evaluate("() => window.mythlineEditor ? window.mythlineEditor.view.state.doc.toString()"
                                    " : null") == "The keeper ran up the stair.", timeout=10, message="the fork")
    dialog = open_versions(bob)
    dialog.locator("#versions-merge").click()
    expect(bob.locator(".toast", has_text="1 suggestion made in “main”")).to_be_visible()
    made = alice_api.get("/api/stories/tale/documents/main/suggestions").json()["results"]
    assert [(s["author"], s["edits"][0]["insert"], s["replaced"]) for s in made] == [("bob", "ran up", ["climbed"])]
    assert alice_api.post(f"/api/stories/tale/documents/main/suggestions/{made[0]['id']}/accept",
                          json={}).status_code == 200
    assert alice_api.get("/api/stories/tale/documents/main").json()["text"] == "The keeper ran up the stair."
    viewer = open_as(cast["vera"], ROOM)
    viewer.locator("#doc-select").select_option("idea")
    expect(open_versions(viewer).locator("#versions-merge")).to_have_count(0)  # viewers do not merge
