"""The outline in the room: a writer plans scenes in the panel (title, beats, status, order) and
another participant's open room follows at once; an edit made over someone else's is refused in
words and the scene read again; a viewer reads the outline without the means to change it (and the
API refuses them too); a scene's "Go to text" selects its range in the editor; axe and a phone."""
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

ROOM = "/stories/tale/?channel=general"


def seed_scenes(db_call, cast, *scenes):
    def build():
        from outline.services import scene_create

        return [scene_create(story=cast["story"], by=cast["alice"], data=data).pk for data in scenes]
    return db_call(build)


def open_outline(page, button="#outline-button"):
    page.locator(button).click()
    dialog = page.locator("#outline-dialog")
    expect(dialog).to_be_visible()
    return dialog


def scene(dialog, position):
    return dialog.locator(f'.outline-scene[data-position="{position}"]')


def titles(dialog):
    return dialog.locator(".outline-scene .outline-title-text")


def test_scenes_planned_in_the_panel_appear_live_in_another_room(open_as, cast):
    alice = open_as(cast["alice"], ROOM)
    bob = open_as(cast["bob"], ROOM)
    bob_dialog = open_outline(bob)
    expect(bob_dialog.locator("#outline-count")).to_have_text("No scenes yet: plan the first with “New scene”.")

    dialog = open_outline(alice)
    dialog.locator("#outline-new").click()
    expect(dialog.locator("#outline-new-title")).to_be_focused()
    dialog.locator("#outline-new-title").fill("The quay at dusk")
    dialog.locator("#outline-new-beats").fill("Mara waits for the ship\n\n  The ship is late  \nA stranger asks for her")
    dialog.locator("#outline-add").click()
    first = scene(dialog, 1)
    expect(first.locator(".outline-title-text")).to_have_text("The quay at dusk")
    expect(first.locator(".outline-beat")).to_have_text(["Mara waits for the ship", "The ship is late",
                                                         "A stranger asks for her"])
    expect(first.locator(".outline-status")).to_have_text("Planned")
    expect(first.locator("h3")).to_be_focused()

    # Bob's open panel has it at once, without a reload.
    expect(scene(bob_dialog, 1).locator(".outline-title-text")).to_have_text("The quay at dusk", timeout=3000)
    expect(scene(bob_dialog, 1).locator(".outline-beat")).to_have_count(3)
    expect(bob_dialog.locator("#outline-count")).to_have_text("1 scene")

    # A second scene, then alice edits the first: title, status and beats; bob sees each change.
    dialog.locator("#outline-new").click()
    dialog.locator("#outline-new-title").fill("The storm")
    dialog.locator("#outline-add").click()
    expect(titles(bob_dialog)).to_have_text(["The quay at dusk", "The storm"], timeout=3000)
    expect(scene(dialog, 2).locator(".outline-beats")).to_have_count(0)
    first.get_by_role("button", name="Edit scene 1").click()
    form = first.locator("form")
    expect(form.locator(".outline-edit-title")).to_be_focused()
    form.locator(".outline-edit-title").fill("Dusk on the quay")
    form.locator(".outline-edit-status").select_option("drafting")
    form.locator(".outline-edit-beats").fill("Mara waits\nThe stranger")
    form.get_by_role("button", name="Save").click()
    expect(first.locator("form")).to_have_count(0)
    expect(first.locator(".outline-title-text")).to_have_text("Dusk on the quay")
    expect(scene(bob_dialog, 1).locator(".outline-status")).to_have_text("Drafting", timeout=3000)
    expect(scene(bob_dialog, 1).locator(".outline-beat")).to_have_text(["Mara waits", "The stranger"])

    # Moved: the storm first, for both; the focus follows the moved scene's button.
    expect(scene(dialog, 1).get_by_role("button", name="Move up: scene 1")).to_be_disabled()
    expect(scene(dialog, 2).get_by_role("button", name="Move down: scene 2")).to_be_disabled()
    scene(dialog, 2).get_by_role("button", name="Move up: scene 2").click()
    expect(titles(dialog)).to_have_text(["The storm", "Dusk on the quay"])
    expect(titles(bob_dialog)).to_have_text(["The storm", "Dusk on the quay"], timeout=3000)
    expect(scene(bob_dialog, 1).locator(".outline-number")).to_have_text("1.")
    expect(dialog.locator('.outline-scene[data-position="1"] [data-act="down"]')).to_be_focused()

    # Bob deletes the storm (after a confirm): gone from alice's panel, the quay is scene 1 again.
    bob.once("dialog", lambda d: d.accept())
    scene(bob_dialog, 1).get_by_role("button", name="Delete scene 1").click()
    expect(titles(dialog)).to_have_text(["Dusk on the quay"], timeout=3000)
    expect(scene(dialog, 1).locator(".outline-number")).to_have_text("1.")
    expect(titles(bob_dialog)).to_have_text(["Dusk on the quay"])
    # A dismissed confirm deletes nothing.
    alice.once("dialog", lambda d: d.dismiss())
    scene(dialog, 1).get_by_role("button", name="Delete scene 1").click()
    expect(titles(dialog)).to_have_count(1)

    alice.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(alice.locator("#outline-button")).to_be_focused()
    assert not alice.errors and not bob.errors, (alice.errors, bob.errors)


def test_an_edit_over_someone_elses_is_refused_in_words_and_the_scene_read_again(open_as, cast, db_call):
    seed_scenes(db_call, cast, {"title": "The quay", "beats": ["Mara waits"]})
    alice = open_as(cast["alice"], ROOM)
    bob = open_as(cast["bob"], ROOM)
    dialog = open_outline(alice)
    bob_dialog = open_outline(bob)
    scene(dialog, 1).get_by_role("button", name="Edit scene 1").click()
    scene(bob_dialog, 1).get_by_role("button", name="Edit scene 1").click()
    bob_form = scene(bob_dialog, 1).locator("form")
    bob_form.locator(".outline-edit-title").fill("The quay, by night")
    bob_form.locator(".outline-edit-status").select_option("drafted")
    bob_form.get_by_role("button", name="Save").click()
    expect(scene(bob_dialog, 1).locator(".outline-title-text")).to_have_text("The quay, by night")

    # Alice's form, opened at version 1, stays open while bob's change arrives: nothing she typed is lost.
    form = scene(dialog, 1).locator("form")
    form.locator(".outline-edit-title").fill("The quay at noon")
    expect(scene(dialog, 1)).to_have_attribute("data-version", "2", timeout=3000)
    expect(form.locator(".outline-edit-title")).to_have_value("The quay at noon")
    form.get_by_role("button", name="Save").click()
    error = form.locator(".outline-form-error")
    expect(error).to_contain_text("Someone else changed this scene since you opened it")
    expect(error).to_contain_text("“The quay, by night”, drafted, version 2")
    expect(form.locator(".outline-edit-title")).to_have_value("The quay at noon")

    # Cancel shows bob's version; or, editing again, a save now replaces it knowingly.
    form.get_by_role("button", name="Cancel").click()
    expect(scene(dialog, 1).locator(".outline-title-text")).to_have_text("The quay, by night")
    expect(scene(dialog, 1).locator(".outline-status")).to_have_text("Drafted")
    scene(dialog, 1).get_by_role("button", name="Edit scene 1").click()
    form = scene(dialog, 1).locator("form")
    form.locator(".outline-edit-title").fill("The quay at noon")
    form.get_by_role("button", name="Save").click()
    expect(scene(bob_dialog, 1).locator(".outline-title-text")).to_have_text("The quay at noon", timeout=3000)

    # Deleted by bob while alice edits it: her form stays, with what she typed, until she cancels.
    scene(dialog, 1).get_by_role("button", name="Edit scene 1").click()
    form = dialog.locator(".outline-scene form")
    form.locator(".outline-edit-beats").fill("A line worth keeping")
    bob.once("dialog", lambda d: d.accept())
    scene(bob_dialog, 1).get_by_role("button", name="Delete scene 1").click()
    expect(dialog.locator("#outline-error")).to_contain_text("Someone deleted the scene you are editing", timeout=3000)
    expect(form.locator(".outline-edit-beats")).to_have_value("A line worth keeping")
    expect(dialog.locator("#outline-count")).to_have_text("No scenes yet: plan the first with “New scene”.")
    form.get_by_role("button", name="Cancel").click()
    expect(dialog.locator(".outline-scene")).to_have_count(0)
    expect(dialog.locator("#outline-new")).to_be_focused()

    assert [e for e in alice.errors if "status of 409" not in e] == [] and not bob.errors, (alice.errors, bob.errors)
    assert len(alice.errors) == 1, alice.errors


def test_a_stale_move_is_refused_and_the_outline_read_again(open_as, cast, db_call):
    ids = seed_scenes(db_call, cast, {"title": "One"}, {"title": "Two"})
    alice = open_as(cast["alice"], ROOM)
    dialog = open_outline(alice)
    expect(titles(dialog)).to_have_text(["One", "Two"])

    # Changed behind the panel's back: a write that sends no event, so the panel still has version 1.
    def bump():
        from outline.models import OutlineScene

        OutlineScene.objects.filter(pk=ids[1]).update(version=5)
    db_call(bump)
    scene(dialog, 2).get_by_role("button", name="Move up: scene 2").click()
    expect(dialog.locator("#outline-error")).to_contain_text("Someone else changed this scene meanwhile")
    expect(scene(dialog, 2)).to_have_attribute("data-version", "5")
    expect(titles(dialog)).to_have_text(["One", "Two"])
    scene(dialog, 2).get_by_role("button", name="Move up: scene 2").click()
    expect(titles(dialog)).to_have_text(["Two", "One"])
    expect(dialog.locator("#outline-error")).to_be_hidden()
    assert [e for e in alice.errors if "status of 409" not in e] == [], alice.errors


def test_a_viewer_reads_the_outline_but_cannot_change_it(open_as, cast, db_call):
    seed_scenes(db_call, cast, {"title": "The quay", "beats": ["Mara waits", "The ship is late"], "status": "drafted"})
    vera = open_as(cast["vera"], ROOM)
    dialog = open_outline(vera)
    expect(scene(dialog, 1).locator(".outline-title-text")).to_have_text("The quay")
    expect(scene(dialog, 1).locator(".outline-beat")).to_have_count(2)
    expect(scene(dialog, 1).locator(".outline-status")).to_have_text("Drafted")
    expect(dialog.locator("#outline-new")).to_be_hidden()
    expect(dialog.locator(".outline-scene button")).to_have_count(0)
    expect(dialog.locator("form")).to_have_count(0)

    # The API refuses her too, whatever the page shows.
    statuses = vera.evaluate("""async () => {
        const token = JSON.parse(document.getElementById('page-config').textContent).csrf_token;
        const headers = {'Content-Type': 'application/json', 'X-CSRFToken': token};
        const post = await fetch('/api/stories/tale/outline', {method: 'POST', headers, body: JSON.stringify({title: 'Mine'})});
        const list = await (await fetch('/api/stories/tale/outline')).json();
        const id = list.results[0].id;
        const patch = await fetch(`/api/stories/tale/outline/${id}`, {method: 'PATCH', headers, body: JSON.stringify({title: 'Mine'})});
        const del = await fetch(`/api/stories/tale/outline/${id}`, {method: 'DELETE', headers});
        return [post.status, patch.status, del.status];
    }""")
    assert statuses == [403, 403, 403]
    vera.keyboard.press("Escape")
    dialog = open_outline(vera)
    expect(titles(dialog)).to_have_text(["The quay"])
    vera.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert all("status of 403" in e for e in vera.errors) and len(vera.errors) == 3, vera.errors


def test_go_to_text_selects_the_scenes_range_in_the_editor(open_as, cast, db_call, rest):
    # A character outside the BMP before the range: the server counts code points, the editor UTF-16 units.
    text = "🌊 Prologue.\nThe quay at dusk was wet and grey.\nThe storm came later.\n"
    assert rest(cast["alice_token"]).post("/api/stories/tale/documents/main/ops", json={"append": text}).status_code == 200
    start = text.index("The quay")
    end = text.index("grey.") + len("grey.")
    seed_scenes(db_call, cast, {"title": "No text yet"},
                {"title": "The quay", "range": {"document": "main", "from": start, "to": end}})
    bob = open_as(cast["bob"], ROOM)
    expect(bob.locator("#editor .cm-content")).to_contain_text("The storm came later.")
    dialog = open_outline(bob, "#doc-outline")
    expect(scene(dialog, 1).get_by_role("button", name="Go to text")).to_have_count(0)
    scene(dialog, 2).get_by_role("button", name="Go to text").click()
    expect(dialog).to_be_hidden()
    selected = bob.evaluate("""() => {
        const state = window.mythlineEditor.view.state;
        const {from, to} = state.selection.main;
        return state.sliceDoc(from, to);
    }""")
    assert selected == "The quay at dusk was wet and grey."
    expect(bob.locator("#editor .cm-content")).to_be_focused()
    assert not bob.errors, bob.errors


def test_the_outline_passes_axe_and_fits_a_phone(open_as, cast, db_call):
    from tests.browser.test_accessibility import assert_accessible

    seed_scenes(db_call, cast,
                {"title": "The quay at dusk, where Mara waits for a ship that does not come", "status": "drafting",
                 "beats": ["Mara waits for the ship " * 8, "A stranger asks for her"]},
                {"title": "The storm", "beats": []})
    bob = open_as(cast["bob"], ROOM)
    # From the text's own head, by keyboard.
    bob.locator("#doc-outline").focus()
    bob.keyboard.press("Enter")
    dialog = bob.locator("#outline-dialog")
    expect(dialog).to_be_visible()
    expect(titles(dialog)).to_have_count(2)
    assert_accessible(bob, "the outline dialog")
    scene(dialog, 1).get_by_role("button", name="Edit scene 1").click()
    assert_accessible(bob, "a scene's form")
    bob.keyboard.press("Escape")  # leaves the form, not the dialog
    expect(dialog.locator("form")).to_have_count(0)
    expect(dialog).to_be_visible()
    expect(scene(dialog, 1).locator("h3")).to_be_focused()
    dialog.locator("#outline-new").click()
    assert_accessible(bob, "the new scene form")
    bob.keyboard.press("Escape")
    expect(dialog.locator("#outline-new-form")).to_have_count(0)
    expect(dialog.locator("#outline-new")).to_be_focused()
    bob.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(bob.locator("#doc-outline")).to_be_focused()

    phone = open_as(cast["bob"], ROOM, viewport={"width": 390, "height": 844})
    phone.locator("#room-tabs").get_by_role("button", name="Text").click()
    phone.locator("#doc-outline").click()
    dialog = phone.locator("#outline-dialog")
    expect(titles(dialog)).to_have_count(2)
    scene(dialog, 1).get_by_role("button", name="Edit scene 1").click()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert dialog.evaluate("(d) => d.scrollWidth <= d.clientWidth"), "the dialog scrolls sideways"
    assert not bob.errors and not phone.errors, (bob.errors, phone.errors)
