"""Editing, deleting and reacting from the room (issue #17, docs/browser.md): each is a relation
posted from a card (docs/protocol.md 4.1), and every open room shows it in place, live. Authors edit
and delete their own messages, the owner deletes any, whoever writes reacts; a viewer sees none of
the controls. Keyboard paths, axe on the editor and the picker, and a phone's width."""
import pytest
from playwright.sync_api import expect

from tests.browser.test_accessibility import assert_accessible

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]


def post(db_call, user, text, msg_type="text", channel="general", **extra):
    """A message posted as `user` on the server side (no rate budget spent), answered by its id."""
    def run():
        from messaging.policies import access_channel
        from messaging.services import message_post

        access = access_channel(user, "tale", channel, for_write=True)
        payload = text if isinstance(text, dict) else {"text": text}
        return str(message_post(sender=user, access=access,
                                data={"msg_type": msg_type, "payload": payload, **extra}).message.pk)
    return db_call(run)


def card(page, message_id):
    return page.locator(f'#feed-list .msg[data-id="{message_id}"]')


def test_an_author_edits_a_message_and_another_room_sees_the_new_text(open_room, db_call, tale):
    line = post(db_call, tale["bob"], "The lamp went ot.")
    bob, alice = open_room(tale["bob"]), open_room(tale["alice"])
    mine = card(bob, line)
    expect(mine).to_contain_text("The lamp went ot.")

    # Esc leaves the editor: nothing posted, the text as it was, the focus back on Edit.
    mine.hover()
    mine.locator('[data-act="edit"]').click()
    box = mine.locator(".msg-edit-form textarea")
    expect(box).to_be_focused()
    expect(box).to_have_value("The lamp went ot.")
    box.fill("Something else entirely.")
    bob.keyboard.press("Escape")
    expect(mine.locator(".msg-edit-form")).to_have_count(0)
    expect(mine.locator(".msg-body")).to_have_text("The lamp went ot.")
    expect(mine.locator('[data-act="edit"]')).to_be_focused()

    # Enter saves: both rooms show the new text and "(edited)".
    bob.keyboard.press("Enter")
    box = mine.locator(".msg-edit-form textarea")
    expect(box).to_be_focused()
    box.fill("The lamp went out.")
    box.press("Enter")
    for page in (bob, alice):
        expect(card(page, line).locator(".msg-body")).to_have_text("The lamp went out.")
        expect(card(page, line).locator(".msg-edited")).to_have_text("(edited)")
    expect(card(bob, line).locator('[data-act="edit"]')).to_be_focused()
    # Only the author edits: the owner may delete Bob's message but not edit it.
    expect(card(alice, line).locator('[data-act="edit"]')).to_have_count(0)
    expect(card(alice, line).locator('[data-act="delete"]')).to_have_count(1)

    # A refusal is the server's words in the form, and what was typed stays.
    mine = card(bob, line)
    mine.hover()
    mine.locator('[data-act="edit"]').click()
    box = mine.locator(".msg-edit-form textarea")
    box.fill("   ")
    box.press("Enter")
    expect(mine.locator(".msg-edit-error")).to_have_text("Write something first.")
    assert not bob.errors and not alice.errors, (bob.errors, alice.errors)


def test_an_author_and_the_owner_delete_and_every_room_sees_it(open_room, db_call, tale):
    own = post(db_call, tale["bob"], "Posted by mistake.")
    agents = post(db_call, tale["narrator"], "A line the owner removes.", msg_type="narration")
    bob, alice = open_room(tale["bob"]), open_room(tale["alice"])
    expect(card(alice, own)).to_contain_text("Posted by mistake.")
    # Bob may not delete the agent's message; the owner may.
    expect(card(bob, agents).locator('[data-act="delete"]')).to_have_count(0)

    # It asks first: dismissed, nothing happens.
    asked = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    bob.once("dialog", dismiss)
    card(bob, own).hover()
    card(bob, own).locator('[data-act="delete"]').click()
    expect(card(bob, own).locator(".msg-body")).to_have_text("Posted by mistake.")
    assert asked and "Delete this message?" in asked[0]

    bob.once("dialog", lambda d: d.accept())
    card(bob, own).hover()
    card(bob, own).locator('[data-act="delete"]').click()
    for page in (bob, alice):
        expect(card(page, own).locator(".msg-deleted")).to_have_text("This message was deleted.")
        expect(card(page, own)).not_to_contain_text("Posted by mistake.")
        expect(card(page, own).locator(".act")).to_have_count(0)

    alice.once("dialog", lambda d: d.accept())
    card(alice, agents).hover()
    card(alice, agents).locator('[data-act="delete"]').click()
    expect(card(bob, agents).locator(".msg-deleted")).to_have_text("This message was deleted.")
    expect(bob.locator("#feed-list .msg")).to_have_count(2)  # the relations draw no cards
    assert not alice.errors, alice.errors


def test_reactions_from_the_picker_and_the_chips_live_in_another_room(open_room, db_call, tale):
    line = post(db_call, tale["narrator"], "The fog came in.", msg_type="narration")
    bob, alice = open_room(tale["bob"]), open_room(tale["alice"])

    # By keyboard: React opens the picker with the focus on its first key; → moves; Enter reacts.
    react = card(bob, line).locator('[data-act="react"]')
    react.focus()
    bob.keyboard.press("Enter")
    picker = card(bob, line).locator(".reaction-picker")
    expect(picker).to_be_visible()
    expect(picker.locator(".reaction-pick").first).to_be_focused()
    assert_accessible(bob, "the reaction picker")
    bob.keyboard.press("ArrowRight")
    expect(picker.get_by_role("button", name="React with heart")).to_be_focused()
    bob.keyboard.press("Escape")
    expect(picker).to_have_count(0)
    expect(card(bob, line).locator('[data-act="react"]')).to_be_focused()

    card(bob, line).hover()
    card(bob, line).locator('[data-act="react"]').click()
    card(bob, line).get_by_role("button", name="React with thumbs up").click()
    expect(card(alice, line).locator(".reaction")).to_have_text(["👍1"])
    expect(card(alice, line).locator(".reaction.mine")).to_have_count(0)
    expect(card(bob, line).locator(".reaction.mine")).to_have_text(["👍1"])

    # Alice adds hers from Bob's chip; Bob takes his back from his.
    card(alice, line).locator('.reaction-toggle[data-key="👍"]').click()
    expect(card(bob, line).locator(".reaction")).to_have_text(["👍2"])
    chip = card(bob, line).locator('.reaction-toggle[data-key="👍"]')
    expect(chip).to_have_attribute("aria-pressed", "true")
    chip.click()
    expect(card(alice, line).locator(".reaction")).to_have_text(["👍1"])
    expect(card(alice, line).locator(".reaction.mine")).to_have_text(["👍1"])
    expect(card(bob, line).locator(".reaction.mine")).to_have_count(0)
    expect(card(bob, line).locator('.reaction-toggle[data-key="👍"]')).to_have_attribute("aria-pressed", "false")

    # Alice takes hers back though her room no longer holds her reaction message (as for a thread
    # of another channel): the server's answer to a repeat of the reaction names it.
    alice.evaluate("""() => { const s = window.mythline.room.state;
      for (const [id, m] of s.byId) if (m.msg_type === 'reaction') s.byId.delete(id); }""")
    card(alice, line).locator('.reaction-toggle[data-key="👍"]').click()
    expect(card(bob, line).locator(".reaction")).to_have_count(0)
    expect(card(alice, line).locator(".reaction")).to_have_count(0)
    assert not bob.errors and not alice.errors, (bob.errors, alice.errors)


def test_a_viewer_sees_no_controls_and_the_editor_is_accessible(open_room, db_call, cast):
    line = post(db_call, cast["bob"], "Hello from Bob.")
    other = post(db_call, cast["narrator"], "The tide turned.", msg_type="narration")

    def react(user):
        from messaging.policies import access_channel
        from messaging.services import message_post

        access = access_channel(user, "tale", "general", for_write=True)
        message_post(sender=user, access=access, data={"msg_type": "reaction", "relates_to": other, "payload": {"key": "🎉"}})
    db_call(react, cast["bob"])

    vera = open_room(cast["vera"])
    expect(card(vera, other).locator(".reaction")).to_have_text(["🎉1"])
    for message_id in (line, other):
        expect(card(vera, message_id).locator('[data-act="react"], [data-act="edit"], [data-act="delete"]')).to_have_count(0)
    expect(card(vera, other).locator(".reaction-toggle")).to_have_count(0)
    assert_accessible(vera, "a viewer's room with reactions")

    bob = open_room(cast["bob"])
    card(bob, line).hover()
    card(bob, line).locator('[data-act="edit"]').click()
    expect(card(bob, line).locator(".msg-edit-form textarea")).to_be_focused()
    assert_accessible(bob, "the inline editor")


def test_edit_and_react_on_a_phone(open_room, db_call, tale):
    line = post(db_call, tale["bob"], "Small screens too.")
    bob = open_room(tale["bob"], viewport={"width": 390, "height": 844})
    mine = card(bob, line)
    # No hover on a phone: the actions show in the card.
    for act in ("react", "edit", "delete"):
        expect(mine.locator(f'[data-act="{act}"]')).to_be_visible()
    mine.locator('[data-act="edit"]').click()
    box = mine.locator(".msg-edit-form textarea")
    assert box.bounding_box()["width"] >= 250
    box.fill("Small screens too, edited.")
    mine.get_by_role("button", name="Save").click()
    expect(card(bob, line).locator(".msg-body")).to_have_text("Small screens too, edited.")
    card(bob, line).locator('[data-act="react"]').click()
    card(bob, line).get_by_role("button", name="React with party").click()
    expect(card(bob, line).locator(".reaction.mine")).to_have_text(["🎉1"])
    assert bob.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
