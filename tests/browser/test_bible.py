"""The story bible in the room: an editor adds an entry in the panel, another participant's open room
shows it at once, its name is marked in the story text with a card on hover, a conflicting edit is
refused in words, and a viewer reads the bible without the means to change it."""
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

ROOM = "/stories/tale/?channel=general"


def open_bible(page):
    page.locator("#bible-button").click()
    dialog = page.locator("#bible-dialog")
    expect(dialog).to_be_visible()
    return dialog


def type_in_editor(page, text):
    page.locator("#editor .cm-content").click()
    page.keyboard.type(text)
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced", timeout=10000)


def test_an_entry_made_in_the_panel_appears_live_and_is_marked_in_the_text(open_as, cast):
    alice = open_as(cast["alice"], ROOM)
    bob = open_as(cast["bob"], ROOM)
    type_in_editor(alice, "At dusk The Captain met Mara Vell by the quay. ")
    expect(alice.locator("#editor .cm-bible-mention")).to_have_count(0)

    dialog = open_bible(alice)
    expect(dialog.locator("#bible-count")).to_have_text("No entries yet.")
    dialog.locator("#bible-new").click()
    dialog.locator("#bible-name").fill("Mara Vell")
    dialog.locator("#bible-kind").select_option("character")
    dialog.locator("#bible-aliases").fill("the Captain, Vell")
    dialog.locator("#bible-description").fill("Harbour pilot, forty, scarred hands.\nSpeaks little.")
    dialog.locator("#bible-add-field").click()
    dialog.locator(".bible-field-key").fill("voice")
    dialog.locator(".bible-field-value").fill("dry, short sentences")
    dialog.locator("#bible-save").click()
    entry = dialog.locator('.bible-entry[data-slug="mara-vell"]')
    expect(entry.locator("h3")).to_have_text("Mara Vell")
    expect(entry.locator(".bible-fields")).to_contain_text("voice")
    expect(entry.locator(".bible-fields")).to_contain_text("dry, short sentences")
    expect(dialog.locator('.bible-group[data-kind="character"] .bible-item')).to_contain_text("the Captain, Vell")

    # A taken name is refused in words, in the form.
    dialog.locator("#bible-new").click()
    dialog.locator("#bible-name").fill("mara vell")
    dialog.locator("#bible-save").click()
    error = dialog.locator("#bible-form .form-error")
    expect(error).to_be_visible()
    expect(error).not_to_contain_text("{")
    dialog.locator("#bible-cancel").click()
    dialog.locator("button[aria-label=Close]").click()
    expect(dialog).to_be_hidden()
    expect(alice.locator("#bible-button")).to_be_focused()

    # Bob's open room has it at once: in his panel, and marked in his copy of the text.
    marks = bob.locator("#editor .cm-bible-mention")
    expect(marks).to_have_count(2, timeout=3000)
    expect(marks.nth(0)).to_have_text("The Captain")  # the alias "the Captain", in any case
    expect(marks.nth(1)).to_have_text("Mara Vell")
    expect(marks.nth(1)).to_have_attribute("data-bible", "mara-vell")
    bob_dialog = open_bible(bob)
    expect(bob_dialog.locator(".bible-item[data-slug=mara-vell]")).to_be_visible()
    bob_dialog.locator("button[aria-label=Close]").click()

    # Hovering the name shows its card: name, kind and the first lines of the description.
    marks.nth(1).hover()
    card = bob.locator(".cm-tooltip .bible-card")
    expect(card).to_be_visible(timeout=3000)
    expect(card).to_contain_text("Mara Vell")
    expect(card).to_contain_text("Character")
    expect(card).to_contain_text("Harbour pilot, forty, scarred hands.")

    # Typing next to a mark still types and syncs: the marks follow the text, whole words only.
    bob.locator("#editor .cm-content").press("Control+End")
    bob.keyboard.type("Vellum is not Vell. ")
    expect(bob.locator("#doc-status")).to_have_attribute("data-status", "synced", timeout=10000)
    expect(alice.locator("#editor .cm-content")).to_contain_text("Vellum is not Vell.", timeout=5000)
    expect(alice.locator("#editor .cm-bible-mention")).to_have_count(3)

    # An edit made from a stale copy is refused with the server's version, not written over.
    alice_dialog = open_bible(alice)
    alice_dialog.locator(".bible-item[data-slug=mara-vell]").click()
    alice_dialog.locator("#bible-edit").click()
    bob_dialog = open_bible(bob)
    bob_dialog.locator(".bible-item[data-slug=mara-vell]").click()
    bob_dialog.locator("#bible-edit").click()
    bob_dialog.locator("#bible-description").fill("Harbour pilot, retired.")
    bob_dialog.locator("#bible-save").click()
    expect(bob_dialog.locator(".bible-entry .bible-description")).to_have_text("Harbour pilot, retired.")
    alice_dialog.locator("#bible-description").fill("Harbour pilot, fifty.")
    alice_dialog.locator("#bible-save").click()
    expect(alice_dialog.locator("#bible-form .form-error")).to_contain_text("Someone changed this entry")

    # Deleted by bob: the marks go from alice's text at once.
    bob.once("dialog", lambda d: d.accept())
    bob_dialog.locator("#bible-delete").click()
    expect(bob_dialog.locator(".bible-item")).to_have_count(0)
    expect(alice.locator("#editor .cm-bible-mention")).to_have_count(0, timeout=3000)
    # The two refusals above (a taken name, a stale version) are the only failed requests.
    assert [e for e in alice.errors if "status of 409" not in e] == [] and not bob.errors, (alice.errors, bob.errors)
    assert len(alice.errors) == 2, alice.errors


def test_a_viewer_reads_the_bible_but_cannot_change_it(open_as, cast, db_call):
    def seed():
        from bible.services import entry_create

        return entry_create(story=cast["story"], by=cast["alice"], kind="place", name="The Quay",
                            aliases=["quay"], description="Wet stone and rope.")
    db_call(seed)
    vera = open_as(cast["vera"], ROOM)
    dialog = open_bible(vera)
    expect(dialog.locator(".bible-item[data-slug=the-quay]")).to_be_visible()
    expect(dialog.locator("#bible-new")).to_be_hidden()
    dialog.locator("#bible-search").fill("rope")
    expect(dialog.locator(".bible-item")).to_have_count(1)
    dialog.locator("#bible-search").fill("nothing like it")
    expect(dialog.locator(".bible-item")).to_have_count(0)
    dialog.locator("#bible-search").fill("")
    dialog.locator(".bible-item[data-slug=the-quay]").click()
    expect(dialog.locator(".bible-entry .bible-description")).to_have_text("Wet stone and rope.")
    expect(dialog.locator("#bible-edit")).to_have_count(0)
    expect(dialog.locator("#bible-delete")).to_have_count(0)
    vera.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert not vera.errors, vera.errors


def test_the_bible_and_the_marks_pass_axe_and_fit_a_phone(open_as, cast, db_call):
    from tests.browser.test_accessibility import assert_accessible

    def seed():
        from bible.services import entry_create

        entry_create(story=cast["story"], by=cast["alice"], kind="character", name="Mara Vell", aliases=["Vell"],
                     description="Harbour pilot.", fields={"voice": "dry"})
    db_call(seed)
    bob = open_as(cast["bob"], ROOM)
    type_in_editor(bob, "Vell looked at the sea. ")
    mark = bob.locator("#editor .cm-bible-mention")
    expect(mark).to_have_count(1)
    mark.hover()
    expect(bob.locator(".cm-tooltip .bible-card")).to_contain_text("Harbour pilot.")
    assert_accessible(bob, "the marked text and its card")

    # From the text's own head, by keyboard: the dialog, an entry, the form.
    bob.locator("#doc-bible").focus()
    bob.keyboard.press("Enter")
    dialog = bob.locator("#bible-dialog")
    expect(dialog).to_be_visible()
    dialog.locator(".bible-item[data-slug=mara-vell]").click()
    assert_accessible(bob, "the bible dialog with an entry")
    dialog.locator("#bible-edit").click()
    expect(dialog.locator("#bible-name")).to_be_focused()
    assert_accessible(bob, "the bible's form")
    bob.keyboard.press("Escape")  # leaves the form, not the dialog
    expect(dialog.locator("#bible-form")).to_have_count(0)
    expect(dialog).to_be_visible()
    bob.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(bob.locator("#doc-bible")).to_be_focused()

    # A phone: the dialog fits the screen, from the Text tab.
    phone = open_as(cast["bob"], ROOM, viewport={"width": 390, "height": 844})
    phone.locator("#room-tabs").get_by_role("button", name="Text").click()
    phone.locator("#doc-bible").click()
    dialog = phone.locator("#bible-dialog")
    expect(dialog.locator(".bible-item[data-slug=mara-vell]")).to_be_visible()
    dialog.locator(".bible-item[data-slug=mara-vell]").click()
    dialog.locator("#bible-edit").click()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert dialog.evaluate("(d) => d.scrollWidth <= d.clientWidth"), "the dialog scrolls sideways"
    assert not bob.errors and not phone.errors, (bob.errors, phone.errors)
