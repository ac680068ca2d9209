"""Edits, deletions and reactions in the room (docs/protocol.md 4.1): an agent fixes a line,
people react and a line is deleted over REST; every open room shows the change in place, live,
with no card for the relation itself, and a room opened afterwards shows the same from history."""
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

URL = "/api/stories/tale/channels/general/messages"


def post(client, msg_type, payload, **extra):
    r = client.post(URL, json={"msg_type": msg_type, "payload": payload, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_an_edit_a_reaction_and_a_deletion_show_in_place_live_and_from_history(open_as, rest, tale):
    agent, alice = rest(tale["narrator_token"]), rest(tale["alice_token"])
    line = post(agent, "narration", {"text": "The lamp went ot."})
    gone = post(agent, "text", {"text": "Posted by mistake."})
    page = open_as(tale["bob"], "/stories/tale/")
    card = page.locator(f'#feed-list .msg[data-id="{line["id"]}"]')
    expect(card).to_contain_text("The lamp went ot.")

    post(agent, "edit", {"payload": {"text": "The lamp went out."}}, relates_to=line["id"])
    expect(card.locator(".msg-body")).to_have_text("The lamp went out.")
    expect(card.locator(".msg-edited")).to_have_text("(edited)")
    mine = post(alice, "reaction", {"key": "👍"}, relates_to=line["id"])
    post(agent, "reaction", {"key": "👍"}, relates_to=line["id"])
    post(agent, "reaction", {"key": "🔥"}, relates_to=line["id"])
    expect(card.locator(".reaction")).to_have_text(["👍2", "🔥1"])
    post(alice, "delete", {}, relates_to=mine["id"])  # Alice takes hers back
    expect(card.locator(".reaction")).to_have_text(["👍1", "🔥1"])
    post(agent, "delete", {}, relates_to=gone["id"])
    gone_card = page.locator(f'#feed-list .msg[data-id="{gone["id"]}"]')
    expect(gone_card.locator(".msg-deleted")).to_have_text("This message was deleted.")
    expect(gone_card).not_to_contain_text("Posted by mistake.")
    # The relations are in the log, not in the feed: two cards, as before.
    expect(page.locator("#feed-list .msg")).to_have_count(2)
    expect(page.locator("#feed-list .msg-edit, #feed-list .msg-reaction, #feed-list .msg-delete")).to_have_count(0)

    # Opened afterwards, from history: the same view.
    later = open_as(tale["alice"], "/stories/tale/")
    card = later.locator(f'#feed-list .msg[data-id="{line["id"]}"]')
    expect(card.locator(".msg-body")).to_have_text("The lamp went out.")
    expect(card.locator(".msg-edited")).to_be_visible()
    expect(card.locator(".reaction")).to_have_text(["👍1", "🔥1"])
    expect(card.locator(".reaction.mine")).to_have_count(0)  # Alice took hers back
    expect(later.locator(f'#feed-list .msg[data-id="{gone["id"]}"] .msg-deleted')).to_be_visible()
    expect(later.locator("#feed-list .msg")).to_have_count(2)
    assert not page.errors and not later.errors, (page.errors, later.errors)
