"""The writers' room in the story room: the owner adds the crew with the roles they pick (the required
ones always), the other participants' rooms follow at once, editors pause and resume it (whole or
agent by agent) with a "Crew paused" sign in every header, viewers only read it (and the API refuses
them), the owner removes it. And the context receipts of crew messages: "Based on: ..." under a card,
built from `payload.based_on`, safe whatever a sender puts there."""
import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

ROOM = "/stories/tale/?channel=general"


def open_crew(page):
    page.locator("#crew-button").click()
    dialog = page.locator("#crew-dialog")
    expect(dialog).to_be_visible()
    return dialog


def api_status(page, method, body=None):
    return page.evaluate("""async ([method, body]) => {
        const token = JSON.parse(document.getElementById('page-config').textContent).csrf_token;
        const init = {method, headers: {'Content-Type': 'application/json', 'X-CSRFToken': token}};
        if (body !== null) init.body = JSON.stringify(body);
        return (await fetch('/api/stories/tale/crew', init)).status;
    }""", [method, body])


def test_the_owner_adds_the_crew_editors_pause_it_and_every_room_follows(open_as, cast, rest):
    roles = rest(cast["alice_token"]).get("/api/stories/tale/crew").json()["available_roles"]
    required = [r["role"] for r in roles if r["required"]]
    optional = [r["role"] for r in roles if not r["required"]]
    assert required and optional
    dropped = [r for r in ("critic", "continuity") if r in optional] or optional[-1:]

    alice = open_as(cast["alice"], ROOM)
    bob = open_as(cast["bob"], ROOM)
    vera = open_as(cast["vera"], ROOM)
    bob_dialog = open_crew(bob)
    expect(bob_dialog.locator("#crew-status")).to_have_text("No crew in this story.")
    expect(bob_dialog.locator("#crew-add")).to_have_count(0)
    vera_dialog = open_crew(vera)
    expect(vera_dialog.locator("#crew-status")).to_have_text("No crew in this story.")
    expect(vera_dialog.locator("input, #crew-add")).to_have_count(0)

    dialog = open_crew(alice)
    expect(dialog.locator("input[name=role]")).to_have_count(len(roles))
    for role in required:
        box = dialog.locator(f"#crew-role-{role}")
        expect(box).to_be_checked()
        expect(box).to_be_disabled()
    for role in optional:
        expect(dialog.locator(f"#crew-role-{role}")).to_be_enabled()
    for role in dropped:
        dialog.locator(f"#crew-role-{role}").uncheck()
    dialog.locator("#crew-add").click()
    agents = dialog.locator("#crew-agents .crew-agent")
    expect(agents).to_have_count(len(roles) - len(dropped))
    expect(dialog.locator("#crew-agents .crew-role")).to_contain_text(required)
    for role in dropped:
        expect(dialog.locator("#crew-agents .crew-role", has_text=role)).to_have_count(0)
    expect(dialog.locator("#crew-remove")).to_be_visible()
    expect(dialog.locator("#crew-writes-to")).to_contain_text("main")

    # The owner sends the crew to its own draft, and back; only the owner may.
    dialog.locator("#crew-writes-toggle").click()
    expect(dialog.locator("#crew-writes-to")).to_contain_text("crew-draft")
    expect(bob_dialog.locator("#crew-writes-to")).to_contain_text("crew-draft", timeout=3000)
    expect(bob_dialog.locator("#crew-writes-toggle")).to_have_count(0)
    dialog.locator("#crew-writes-toggle").click()
    expect(dialog.locator("#crew-writes-to")).not_to_contain_text("crew-draft")

    # Bob's open panel has the crew at once, with the means to pause it but not to remove it.
    expect(bob_dialog.locator("#crew-agents .crew-agent")).to_have_count(len(roles) - len(dropped), timeout=3000)
    expect(bob_dialog.locator("#crew-remove")).to_have_count(0)
    expect(vera_dialog.locator("#crew-agents .crew-agent")).to_have_count(len(roles) - len(dropped), timeout=3000)
    expect(vera_dialog.locator("button:not([aria-label=Close])")).to_have_count(0)

    # Bob pauses the whole crew: a sign in every room's header, live.
    for page in (alice, bob, vera):
        expect(page.locator("#crew-paused")).to_be_hidden()
    bob_dialog.locator("#crew-pause").click()
    expect(bob_dialog.locator("#crew-pause")).to_have_text("Resume the crew")
    expect(bob_dialog.locator("#crew-pause")).to_be_focused()
    for page in (alice, bob, vera):
        expect(page.locator("#crew-paused")).to_be_visible(timeout=3000)
    expect(dialog.locator("#crew-pause")).to_have_text("Resume the crew")
    expect(dialog.locator("#crew-status")).to_contain_text("paused")
    expect(dialog.locator("#crew-agents [data-act=toggle]").first).to_be_disabled()
    bob_dialog.locator("#crew-pause").click()
    for page in (alice, bob, vera):
        expect(page.locator("#crew-paused")).to_be_hidden(timeout=3000)

    # One agent paused by bob: alice sees it paused, the crew works on (no header sign).
    narrator = bob_dialog.locator(".crew-agent", has=bob.locator(".crew-role", has_text="narrator"))
    narrator.locator("[data-act=toggle]").click()
    expect(narrator).to_have_attribute("data-paused", "true")
    expect(narrator.locator("[data-act=toggle]")).to_have_text("Resume")
    alice_narrator = dialog.locator(".crew-agent", has=alice.locator(".crew-role", has_text="narrator"))
    expect(alice_narrator).to_have_attribute("data-paused", "true", timeout=3000)
    expect(alice_narrator.locator(".crew-state")).to_have_text("paused")
    expect(alice.locator("#crew-paused")).to_be_hidden()

    # Refusals: a viewer may not pause, an editor may not add or remove.
    assert api_status(vera, "PATCH", {"paused": True}) == 403
    assert api_status(bob, "POST", {}) == 403
    assert api_status(bob, "DELETE") == 403

    # The owner removes it (after a confirm): every room is back to "No crew".
    alice.once("dialog", lambda d: d.accept())
    dialog.locator("#crew-remove").click()
    expect(dialog.locator("#crew-status")).to_have_text("No crew in this story.")
    expect(dialog.locator("#crew-add")).to_be_visible()
    expect(bob_dialog.locator("#crew-status")).to_have_text("No crew in this story.", timeout=3000)
    expect(bob_dialog.locator("#crew-agents")).to_have_count(0)
    assert not alice.errors, alice.errors
    assert len(bob.errors) == 2 and all("status of 403" in e for e in bob.errors), bob.errors
    assert len(vera.errors) == 1 and "status of 403" in vera.errors[0], vera.errors


def test_the_writers_room_passes_axe_and_fits_a_phone(open_as, cast):
    from tests.browser.test_accessibility import assert_accessible

    alice = open_as(cast["alice"], ROOM)
    dialog = open_crew(alice)
    expect(dialog.locator("#crew-add")).to_be_visible()
    assert_accessible(alice, "the writers' room, no crew yet")
    dialog.locator("#crew-add").click()
    expect(dialog.locator("#crew-agents .crew-agent").first).to_be_visible()
    dialog.locator("#crew-pause").click()
    expect(alice.locator("#crew-paused")).to_be_visible()
    assert_accessible(alice, "the writers' room with a paused crew")
    alice.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(alice.locator("#crew-button")).to_be_focused()

    phone = open_as(cast["alice"], ROOM, viewport={"width": 390, "height": 844})
    expect(phone.locator("#crew-paused")).to_be_visible()
    phone.locator("#room-tabs").get_by_role("button", name="Channels").click()
    dialog = open_crew(phone)
    expect(dialog.locator("#crew-agents .crew-agent").first).to_be_visible()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert dialog.evaluate("(d) => d.scrollWidth <= d.clientWidth"), "the dialog scrolls sideways"
    assert not alice.errors and not phone.errors, (alice.errors, phone.errors)


# --- context receipts ---------------------------------------------------------------------------

def post(client, payload, msg_type="narration"):
    r = client.post("/api/stories/tale/channels/general/messages", json={"msg_type": msg_type, "payload": payload})
    assert r.status_code == 201, r.text
    return r.json()


def card(page, text):
    return page.locator("#feed-list .msg", has_text=text)


def test_a_crew_message_says_what_it_was_based_on(open_as, cast, rest, db_call):
    def seed():
        from bible.services import entry_create

        entry_create(story=cast["story"], by=cast["alice"], kind="character", name="Mara Vell", description="Pilot.")
    db_call(seed)
    asked = post(rest(cast["alice_token"]), {"text": "Write the quay scene, please."}, msg_type="text")
    post(rest(cast["narrator_token"]), {"text": "The quay was wet.", "based_on": {
        "bible": [{"slug": "mara-vell", "name": "Mara Vell"}, {"slug": "the-quay", "name": "The Quay"}],
        "messages": [{"id": asked["id"], "sender": "alice"}],
        "document": {"document": "main", "from": 10, "to": 240, "revision": 3},
        "outline": {"id": 1, "position": 2, "title": "The quay"}}})
    post(rest(cast["narrator_token"]), {"text": "No receipt here."})
    alice = open_as(cast["alice"], ROOM)
    line = card(alice, "The quay was wet.").locator(".msg-based-on")
    expect(line).to_have_text("Based on: Mara Vell, The Quay · 1 message (@alice) · main chars 10–240 · outline scene 2")
    expect(card(alice, "No receipt here.").locator(".msg-based-on")).to_have_count(0)

    # A bible name opens the bible on its entry; a message reference shows the message.
    line.get_by_role("button", name="Mara Vell").click()
    bible = alice.locator("#bible-dialog")
    expect(bible).to_be_visible()
    expect(bible.locator("#bible-entry-name")).to_have_text("Mara Vell")
    alice.keyboard.press("Escape")
    expect(line.get_by_role("button", name="Mara Vell")).to_be_focused()
    line.get_by_role("button", name="@alice").click()
    expect(card(alice, "Write the quay scene, please.")).to_have_class(re.compile(r"\bflash\b"))
    assert not alice.errors, alice.errors


def test_a_hostile_based_on_renders_as_text_or_not_at_all(open_as, cast, rest):
    agent = rest(cast["narrator_token"])
    hostile = [
        ("One.", "<img src=x onerror=window.pwned=1>"),
        ("Two.", {"bible": "<b>x</b>", "messages": {"id": "x"}, "document": ["main"], "outline": "2"}),
        ("Three.", {"bible": [{"name": "<img src=x onerror=window.pwned=3>", "slug": "\"><svg onload=window.pwned=4>"},
                              5, None, {"name": 7}, {"name": "   "}, ["x"]],
                    "messages": [{"id": 5}, "x", None, {"id": "not-a-message", "sender": "<b>eve</b>"}],
                    "document": {"name": "<b>doc</b>", "from": "1", "to": -3, "revision": "r"},
                    "outline": {"position": "<i>2</i>", "title": 3}}),
        ("Four.", {"document": {"name": "main", "from": 5, "to": 2}, "outline": {"position": 0}}),
        ("Five.", []),
        ("Six.", {"bible": [{"name": f"E{i}"} for i in range(1, 16)], "messages": [], "document": None,
                  "outline": None, "__proto__": {"bible": [{"name": "polluted"}]}}),
        ("Seven.", {"document": {"name": "x" * 500, "from": 0, "to": 10 ** 30}}),
    ]
    for text, based_on in hostile:
        post(agent, {"text": text, "based_on": based_on})
    alice = open_as(cast["alice"], ROOM)
    expect(alice.locator("#feed-list .msg")).to_have_count(len(hostile))
    expect(card(alice, "One.").locator(".msg-based-on")).to_have_count(0)
    expect(card(alice, "Two.").locator(".msg-based-on")).to_have_count(0)
    expect(card(alice, "Three.").locator(".msg-based-on")).to_have_text(
        "Based on: <img src=x onerror=window.pwned=3> · 1 message · <b>doc</b>")
    expect(card(alice, "Four.").locator(".msg-based-on")).to_have_text("Based on: main")
    expect(card(alice, "Five.").locator(".msg-based-on")).to_have_count(0)
    expect(card(alice, "Six.").locator(".msg-based-on")).to_have_text(
        "Based on: E1, E2, E3, E4, E5, E6, E7, E8, E9, E10, E11, E12 and 3 more")
    seven = card(alice, "Seven.").locator(".msg-based-on")
    expect(seven).to_contain_text("Based on: xxx")
    expect(seven).to_contain_text("…")
    expect(seven).not_to_contain_text("chars")
    assert alice.locator("#feed-list .msg-based-on :is(img, svg, b, i, script)").count() == 0
    assert alice.evaluate("() => window.pwned === undefined")
    assert not alice.errors, alice.errors
