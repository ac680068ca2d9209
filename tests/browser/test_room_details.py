"""The small things a writer notices in the room: the premise, long messages folded, statuses in
words, a decided proposal closed to votes, the lobby counting people and agents apart, and Send
saying why it is grey while offline."""
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]


def post(client, msg_type, payload, **extra):
    r = client.post("/api/stories/tale/channels/general/messages", json={"msg_type": msg_type, "payload": payload, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_premise_long_messages_statuses_and_closed_votes(open_as, rest, db_call, tale):
    def set_premise():
        story = tale["story"]
        story.premise = "A keeper, a stranger, and a light that will not turn."
        story.save(update_fields=["premise"])
    db_call(set_premise)
    agent, alice = rest(tale["narrator_token"]), rest(tale["alice_token"])
    post(agent, "narration", {"text": "The sea was loud. " * 800})
    post(agent, "task_update", {"task": "Scene 2", "status": "in_progress", "progress": 0.5})
    proposal = post(alice, "proposal", {"text": "Cut the lamp scene?"})
    page = open_as(tale["bob"], "/stories/tale/")
    expect(page.locator("#story-premise")).to_have_text("A keeper, a stranger, and a light that will not turn.")

    long_card = page.locator("#feed-list .msg-narration")
    body = long_card.locator(".msg-body")
    expect(body).to_have_class("msg-body folded")
    folded = body.bounding_box()["height"]
    more = long_card.locator(".show-more")
    expect(more).to_have_attribute("aria-expanded", "false")
    more.click()
    expect(more).to_have_text("Show less")
    assert body.bounding_box()["height"] > 3 * folded

    expect(page.locator("#feed-list .msg-task_update .status")).to_have_text("in progress")

    yes = page.locator(f'#feed-list .msg[data-id="{proposal["id"]}"] .tally-choice[data-choice="yes"]')
    expect(yes).to_be_enabled()
    yes.click()
    expect(yes).to_have_attribute("aria-pressed", "true")
    post(alice, "decision", {"text": "Kept.", "proposal": proposal["id"]})
    expect(yes).to_be_disabled()
    expect(page.locator(f'#feed-list .msg[data-id="{proposal["id"]}"] .tally-total')).to_contain_text("voting closed")


def test_the_lobby_counts_people_and_agents_apart(open_as, tale):
    page = open_as(tale["alice"], "/", wait_live=False)
    card = page.locator('#my-stories [data-story="tale"]')
    expect(card).to_contain_text("2 people · 1 agent")


def test_send_says_why_it_is_grey_while_offline(open_as, tale):
    page = open_as(tale["alice"], "/stories/tale/")
    hint = page.locator("#offline-hint")
    expect(hint).to_be_hidden()
    page.context.set_offline(True)
    expect(hint).to_be_visible(timeout=3000)
    expect(hint).to_contain_text("Send works again")
    page.context.set_offline(False)
    expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=10000)
    expect(hint).to_be_hidden()
