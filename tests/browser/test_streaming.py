"""Streaming messages in the room (issue #17, docs/browser.md "Streaming messages"): an agent writes
a message in chunks over REST; every open room shows its card growing chunk by chunk ("writing…",
aria-busy), a room opened mid-stream shows the text so far and then the rest, and the final
message takes the card's place: one card, not two. A cancelled stream says so and goes."""
import pytest
from playwright.sync_api import expect

from tests.browser.test_accessibility import assert_accessible

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

STREAMS = "/api/stories/tale/channels/general/streams"


def open_stream(client, **body):
    r = client.post(STREAMS, json={"msg_type": "narration", **body})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def append(client, sid, text, offset):
    r = client.post(f"/api/streams/{sid}/append", json={"text": text, "offset": offset})
    assert r.status_code == 200, r.text
    return r.json()["length"]


def test_a_streamed_message_grows_chunk_by_chunk_and_becomes_one_message(open_room, rest, tale):
    agent = rest(tale["narrator_token"])
    alice = open_room(tale["alice"])
    sid = open_stream(agent)
    card = alice.locator(f'#feed-list .msg[data-id="{sid}"]')
    expect(card).to_have_count(1)
    expect(card).to_have_class("msg msg-narration from-agent streaming")
    expect(card).to_have_attribute("aria-busy", "true")
    expect(card.locator(".stream-status")).to_have_text("writing…")
    expect(card.locator(".msg-author")).to_contain_text("@narrator")
    body = card.locator(".msg-body")

    length = append(agent, sid, "The tide ", 0)
    expect(body).to_have_text("The tide")
    length = append(agent, sid, "turned 🌊", length)  # an emoji: one character on the server
    expect(body).to_have_text("The tide turned 🌊")
    assert_accessible(alice, "a streaming card")

    # Opened mid-stream: the text so far, then the rest.
    bob = open_room(tale["bob"])
    late = bob.locator(f'#feed-list .msg[data-id="{sid}"]')
    expect(late.locator(".msg-body")).to_have_text("The tide turned 🌊")
    expect(late).to_have_class("msg msg-narration from-agent streaming")
    length = append(agent, sid, " and the gulls", length)
    for page in (alice, bob):
        expect(page.locator(f'#feed-list .msg[data-id="{sid}"] .msg-body')).to_have_text("The tide turned 🌊 and the gulls")
    # A retry of a chunk already written changes nothing.
    append(agent, sid, " and the gulls", length - len(" and the gulls"))
    length = append(agent, sid, " went quiet.", length)
    expect(late.locator(".msg-body")).to_have_text("The tide turned 🌊 and the gulls went quiet.")

    r = agent.post(f"/api/streams/{sid}/complete", json={})
    assert r.status_code == 201, r.text
    seq = r.json()["seq"]
    for page in (alice, bob):
        final = page.locator(f'#feed-list .msg[data-id="{sid}"]')
        expect(final).to_have_attribute("data-seq", str(seq))
        expect(final).to_have_count(1)
        expect(final).not_to_have_class("streaming")
        expect(final).not_to_have_attribute("aria-busy", "true")
        expect(final.locator(".msg-body")).to_have_text("The tide turned 🌊 and the gulls went quiet.")
        expect(final.locator(".stream-status")).to_have_count(0)
    # A message posted after it goes below it, and nothing of the stream comes back.
    after = agent.post("/api/stories/tale/channels/general/messages",
                       json={"msg_type": "narration", "payload": {"text": "Night fell."}})
    assert after.status_code == 201, after.text
    for page in (alice, bob):
        expect(page.locator("#feed-list .msg")).to_have_count(2)
        assert page.locator("#feed-list .msg").evaluate_all("(cards) => cards.map((c) => c.dataset.id)") == [
            sid, after.json()["id"]]
        assert not page.errors, page.errors


def test_messages_posted_while_a_stream_is_written_go_above_it(open_room, rest, tale):
    agent = rest(tale["narrator_token"])
    alice = open_room(tale["alice"])
    sid = open_stream(agent, payload={"character": "Mara"}, msg_type="dialogue", field="line")
    card = alice.locator(f'#feed-list .msg[data-id="{sid}"]')
    expect(card.locator(".character")).to_have_text("Mara")
    append(agent, sid, "Not yet", 0)
    expect(card.locator(".line")).to_have_text("Not yet")
    other = rest(tale["alice_token"]).post("/api/stories/tale/channels/general/messages",
                                           json={"msg_type": "text", "payload": {"text": "Meanwhile."}})
    assert other.status_code == 201, other.text
    ids = alice.locator("#feed-list .msg")
    expect(ids).to_have_count(2)
    assert ids.evaluate_all("(cards) => cards.map((c) => c.dataset.id)") == [other.json()["id"], sid]
    # Switching channels and back draws it again, with its text.
    alice.evaluate("() => window.mythline.room.select('room')")
    expect(card).to_have_count(0)
    alice.evaluate("() => window.mythline.room.select('general')")
    expect(card.locator(".line")).to_have_text("Not yet")


def test_a_cancelled_stream_says_so_and_goes(open_room, rest, tale):
    agent = rest(tale["narrator_token"])
    alice = open_room(tale["alice"])
    sid = open_stream(agent)
    append(agent, sid, "Half a thought", 0)
    card = alice.locator(f'#feed-list .msg[data-id="{sid}"]')
    expect(card.locator(".msg-body")).to_have_text("Half a thought")
    r = agent.post(f"/api/streams/{sid}/cancel")
    assert r.status_code == 200, r.text
    expect(card.locator(".stream-status")).to_have_text("cancelled")
    expect(card).to_have_count(0)
    expect(alice.locator("#feed-list .msg")).to_have_count(0)


def test_a_lost_chunk_is_caught_up_from_the_server(open_room, rest, tale):
    """A chunk that never reached the page (dropped here on its way): the next one starts past the
    end of the text, so the room reads the text so far again and shows it whole."""
    import json

    dropped = []

    def route(page):
        def handler(ws):
            upstream = ws.connect_to_server()

            def from_server(message):
                try:
                    frame = json.loads(message)
                except (TypeError, ValueError):
                    frame = {}
                if frame.get("type") == "stream.chunk" and frame.get("text") == "lost ":
                    dropped.append(frame)
                    return
                ws.send(message)
            ws.on_message(lambda message: upstream.send(message))
            upstream.on_message(from_server)
        page.route_web_socket("**/ws/", handler)

    agent = rest(tale["narrator_token"])
    alice = open_room(tale["alice"], before=route)
    sid = open_stream(agent)
    body = alice.locator(f'#feed-list .msg[data-id="{sid}"] .msg-body')
    length = append(agent, sid, "Nothing ", 0)
    expect(body).to_have_text("Nothing")
    length = append(agent, sid, "lost ", length)
    length = append(agent, sid, "at all.", length)
    expect(body).to_have_text("Nothing lost at all.")
    assert len(dropped) == 1
    expect(alice.locator(f'#feed-list .msg[data-id="{sid}"] .stream-status')).to_have_text("writing…")
