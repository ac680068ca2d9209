"""Suggestions in the room: an agent proposes a change over REST; it is marked in every open editor
(struck through what goes, the insertion after it); a person accepts it while another types
elsewhere and both editors converge with the server, the marks gone; another person rejects one and
the text stays as it was, the suggestion kept in the history; a viewer sees the marks but cannot
decide, and an agent cannot decide over REST either."""
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DOC, editor_text, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

TEXT = "The sea was grey that morning. The ship was old and slow.\n"


def seed(rest, cast):
    agent = rest(cast["narrator_token"])
    r = agent.post(f"{DOC}/ops", json={"append": TEXT})
    assert r.status_code == 200, r.text
    return agent


def suggest(agent, find, replace, note):
    revision = agent.get(DOC).json()["revision"]
    r = agent.post(f"{DOC}/suggestions", json={"find": find, "replace": replace, "note": note,
                                               "base_revision": revision})
    assert r.status_code == 201, r.text
    return r.json()


def marks(page, suggestion_id):
    sel = f'[data-suggestion="{suggestion_id}"]'
    return (page.locator(f"#editor .cm-suggest-delete{sel}"), page.locator(f"#editor .cm-suggest-insert{sel}"))


def open_suggestions(page):
    page.locator("#doc-suggestions").click()
    dialog = page.locator("#suggest-dialog")
    expect(dialog).to_be_visible()
    return dialog


def test_a_suggestion_is_marked_live_accepted_while_another_types_and_rejected_into_the_history(
        open_room, rest, cast):
    agent = seed(rest, cast)
    alice = open_room(cast["alice"])
    bob = open_room(cast["bob"])
    for page in (alice, bob):
        wait_until(lambda page=page: editor_text(page) == TEXT, message="the seeded text")
        expect(page.locator("#doc-suggestions")).to_have_text("Suggestions (0)")

    first = suggest(agent, "grey", "slate-blue", "More colour here.")
    assert first["author_kind"] == "agent" and first["replaced"] == ["grey"]
    for page in (alice, bob):
        struck, inserted = marks(page, first["id"])
        expect(struck).to_have_text("grey")
        expect(inserted).to_have_text("slate-blue")
        expect(struck).to_have_attribute("title", "Suggested by @narrator (agent): More colour here.")
        expect(page.locator("#doc-suggestions")).to_have_text("Suggestions (1)")
        assert editor_text(page) == TEXT  # a suggestion changes nothing by itself

    # Bob types before the marks and at the end while Alice accepts: the marks stay on their text
    # as it moves, in both editors, then go.
    bob.locator("#editor .cm-content").click()
    bob.keyboard.press("Control+Home")
    bob.keyboard.type("Dawn. ")
    bob.keyboard.press("Control+End")
    bob.keyboard.type("Gulls cried")
    for page in (alice, bob):
        wait_until(lambda page=page: editor_text(page).startswith("Dawn. The sea"), message="Bob's typing")
        expect(marks(page, first["id"])[0]).to_have_text("grey")
        expect(marks(page, first["id"])[1]).to_have_text("slate-blue")
    dialog = open_suggestions(alice)
    item = dialog.locator(f'.suggest-item[data-id="{first["id"]}"]')
    expect(item).to_contain_text("More colour here.")
    expect(item.locator("del")).to_have_text("grey")
    expect(item.locator("ins")).to_have_text("slate-blue")
    item.get_by_role("button", name=f"Accept suggestion {first['id']}").click()
    bob.keyboard.type(" over the mast.")

    def converged():
        server = rest(cast["alice_token"]).get(DOC).json()["text"]
        statuses = {p.locator("#doc-status").get_attribute("data-status") for p in (alice, bob)}
        return statuses == {"synced"} and editor_text(alice) == editor_text(bob) == server and server
    text = wait_until(converged, message="both editors converge with the server")
    assert text.startswith("Dawn. The sea was slate-blue that morning.") and "grey" not in text
    assert text.endswith("Gulls cried over the mast.")
    for page in (alice, bob):
        for mark in marks(page, first["id"]):
            expect(mark).to_have_count(0)
        expect(page.locator("#doc-suggestions")).to_have_text("Suggestions (0)")
    expect(dialog.locator("#suggest-count")).to_have_text("No open suggestions.")
    expect(dialog.locator(".suggest-decided")).to_contain_text("accepted by @alice")
    alice.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # A second one, rejected by Bob: the text stays, the suggestion is kept as rejected.
    second = suggest(agent, "old and slow", "swift", "Faster?")
    for page in (alice, bob):
        expect(marks(page, second["id"])[0]).to_have_text("old and slow")
        expect(marks(page, second["id"])[1]).to_have_text("swift")
    dialog = open_suggestions(bob)
    dialog.locator(f'.suggest-item[data-id="{second["id"]}"]').get_by_role(
        "button", name=f"Reject suggestion {second['id']}").click()
    for page in (alice, bob):
        for mark in marks(page, second["id"]):
            expect(mark).to_have_count(0)
    expect(dialog.locator(f'.suggest-decided .suggest-item[data-id="{second["id"]}"]')).to_have_attribute(
        "data-status", "rejected")
    assert rest(cast["alice_token"]).get(DOC).json()["text"] == text
    assert editor_text(alice) == editor_text(bob) == text
    history = rest(cast["alice_token"]).get(f"{DOC}/suggestions", params={"status": "rejected"}).json()["results"]
    assert [(s["id"], s["decided_by"]) for s in history] == [(second["id"], "bob")]

    # Deciding it again is refused by the server, and said in words in the dialog.
    bob.evaluate("(s) => window.mythline.room.suggestions.decide(s, 'accept')", {"id": second["id"]})
    expect(dialog.locator("#suggest-error")).to_contain_text("rejected")
    expect(dialog.locator("#suggest-error")).to_be_visible()
    bob_errors = [e for e in bob.errors if "409 (Conflict)" not in e]  # the refusal asked for above
    assert not alice.errors and not bob_errors, (alice.errors, bob_errors)


def test_all_of_an_author_at_once_and_a_stale_one_is_shown_and_cannot_be_accepted(open_room, rest, cast):
    agent = seed(rest, cast)
    alice = open_room(cast["alice"])
    wait_until(lambda: editor_text(alice) == TEXT, message="the seeded text")
    one = suggest(agent, "sea", "ocean", "")
    two = suggest(agent, "morning", "evening", "Later in the day.")
    stale = suggest(agent, "ship", "boat", "")
    expect(alice.locator("#doc-suggestions")).to_have_text("Suggestions (3)")
    # Someone edits the word a suggestion is about: it becomes stale, and its marks go.
    owner = rest(cast["alice_token"])
    revision = owner.get(DOC).json()["revision"]
    r = owner.post(f"{DOC}/ops", json={"find": "ship", "replace": "sloop", "base_revision": revision})
    assert r.status_code == 200, r.text
    for mark in marks(alice, stale["id"]):
        expect(mark).to_have_count(0)
    expect(alice.locator("#doc-suggestions")).to_have_text("Suggestions (2)")
    dialog = open_suggestions(alice)
    stale_item = dialog.locator(f'.suggest-item[data-id="{stale["id"]}"]')
    expect(stale_item).to_have_attribute("data-status", "stale")
    expect(stale_item).to_contain_text("stale")
    expect(stale_item.get_by_role("button", name=f"Accept suggestion {stale['id']}")).to_have_count(0)
    expect(stale_item.get_by_role("button", name=f"Reject suggestion {stale['id']}")).to_be_visible()

    dialog.locator('[data-action="accept-all"][data-author="narrator"]').click()
    expect(alice.locator("#doc-suggestions")).to_have_text("Suggestions (0)")
    wait_until(lambda: editor_text(alice) == rest(cast["alice_token"]).get(DOC).json()["text"]
               == "The ocean was grey that evening. The sloop was old and slow.\n", message="both accepted")
    decided = dialog.locator(".suggest-decided")
    for s in (one, two):
        expect(decided.locator(f'.suggest-item[data-id="{s["id"]}"]')).to_have_attribute("data-status", "accepted")
    stale_item.get_by_role("button", name=f"Reject suggestion {stale['id']}").click()
    expect(decided.locator(f'.suggest-item[data-id="{stale["id"]}"]')).to_have_attribute("data-status", "rejected")
    assert not alice.errors, alice.errors


def test_a_viewer_sees_the_marks_but_cannot_decide_nor_can_an_agent(open_room, rest, cast):
    from tests.browser.test_accessibility import assert_accessible

    agent = seed(rest, cast)
    first = suggest(agent, "grey", "silver", "Brighter.")
    vera = open_room(cast["vera"])
    struck, inserted = marks(vera, first["id"])
    expect(struck).to_have_text("grey")
    expect(inserted).to_have_text("silver")
    dialog = open_suggestions(vera)
    item = dialog.locator(f'.suggest-item[data-id="{first["id"]}"]')
    expect(item).to_contain_text("Brighter.")
    expect(dialog.locator("button", has_text="Accept")).to_have_count(0)
    expect(dialog.locator("button", has_text="Reject")).to_have_count(0)
    assert_accessible(vera, "the suggestions dialog, read only")
    vera.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(vera.locator("#doc-suggestions")).to_be_focused()

    # Agents propose, people decide: the server refuses the agent.
    r = agent.post(f"{DOC}/suggestions/{first['id']}/accept", json={})
    assert r.status_code == 403, r.text
    assert rest(cast["alice_token"]).get(f"{DOC}/suggestions/{first['id']}").json()["status"] == "open"

    # An editor's view passes axe too (marks and dialog with its buttons), and fits a phone.
    bob = open_room(cast["bob"])
    expect(marks(bob, first["id"])[0]).to_have_text("grey")
    assert_accessible(bob, "the marked text")
    open_suggestions(bob)
    assert_accessible(bob, "the suggestions dialog with its buttons")
    phone = open_room(cast["bob"], viewport={"width": 390, "height": 844})
    phone.locator("#room-tabs").get_by_role("button", name="Text").click()
    expect(marks(phone, first["id"])[0]).to_be_visible()
    dialog = open_suggestions(phone)
    expect(dialog.locator(f'.suggest-item[data-id="{first["id"]}"]')).to_be_visible()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert dialog.evaluate("(d) => d.scrollWidth <= d.clientWidth"), "the dialog scrolls sideways"
    assert not vera.errors and not bob.errors and not phone.errors, (vera.errors, bob.errors, phone.errors)
