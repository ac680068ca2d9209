"""The story room in a real browser: the live feed, threads, presence, typing, and text-only rendering."""
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

ROOM = "/stories/tale/?channel=general"


def post(client, payload, *, msg_type="narration", channel="general", **extra):
    r = client.post(f"/api/stories/tale/channels/{channel}/messages", json={"msg_type": msg_type, "payload": payload, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def card(page, message_id):
    return page.locator(f'#feed-list .msg[data-id="{message_id}"]')


def test_an_agent_message_reaches_both_users_within_a_second_and_replies_show_in_the_thread(open_as, rest, tale):
    alice = open_as(tale["alice"], ROOM)
    bob = open_as(tale["bob"], ROOM)
    agent = rest(tale["narrator_token"])

    root = post(agent, {"text": "The lamp guttered in the gallery."})
    for page in (alice, bob):
        expect(card(page, root["id"])).to_be_visible(timeout=1000)
        expect(card(page, root["id"]).locator(".narration")).to_have_text("The lamp guttered in the gallery.")
        expect(card(page, root["id"]).locator(".kind")).to_have_text("agent")
        expect(card(page, root["id"]).locator(".type-badge")).to_have_text("Narration")

    reply = post(agent, {"text": "Below, the sea began to breathe."}, reply_to=root["id"])
    expect(card(alice, reply["id"]).locator(".reply-ref")).to_contain_text("The lamp guttered")
    replies = card(alice, root["id"]).locator(".replies-link")
    expect(replies).to_have_text("1 reply")
    replies.click()
    thread = alice.locator("#thread")
    expect(thread).to_be_visible()
    expect(thread.locator(f'.msg.thread-root[data-id="{root["id"]}"]')).to_be_visible()
    expect(thread.locator(f'.msg[data-id="{reply["id"]}"]')).to_contain_text("Below, the sea began to breathe.")

    # The open thread is live: a further reply by the agent and one by bob (from his thread panel).
    later = post(agent, {"text": "Then the chain slipped."}, reply_to=reply["id"])
    expect(thread.locator(f'.msg[data-id="{later["id"]}"]')).to_be_visible(timeout=1000)
    card(bob, root["id"]).locator(".replies-link").click()
    bob_thread = bob.locator("#thread")
    expect(bob_thread.locator(f'.msg[data-id="{later["id"]}"]')).to_be_visible()
    bob_thread.locator("textarea").fill("Keep the chain, cut the lamp.")
    bob_thread.locator("textarea").press("Enter")
    expect(thread.locator(".msg", has_text="Keep the chain, cut the lamp.")).to_be_visible(timeout=2000)
    expect(alice.locator("#feed-list .msg", has_text="Keep the chain, cut the lamp.")).to_have_count(1)
    assert not alice.errors and not bob.errors, (alice.errors, bob.errors)


def test_presence_and_typing_follow_the_other_page(open_as, tale):
    alice = open_as(tale["alice"], ROOM)
    me = alice.locator('#people-body .person[data-user="alice"]')
    expect(me).to_have_attribute("data-state", "active")
    bob_row = alice.locator('#people-body .person[data-user="bob"]')
    expect(bob_row).to_have_count(0)

    bob = open_as(tale["bob"], ROOM)
    expect(bob_row).to_have_attribute("data-state", "active", timeout=3000)
    expect(bob.locator('#people-body .person[data-user="alice"]')).to_be_visible()

    bob.locator("#compose-host textarea").press_sequentially("Hello th", delay=20)
    expect(alice.locator("#typing")).to_have_text("Bob @bob is typing…", timeout=3000)
    expect(bob_row.locator(".typing-label")).to_be_visible()
    bob.locator("#compose-host textarea").press_sequentially("ere", delay=20)
    bob.locator("#compose-host textarea").press("Enter")
    expect(alice.locator("#feed-list .msg", has_text="Hello there")).to_be_visible()
    expect(alice.locator("#typing")).to_have_text("", timeout=3000)

    # Bob's tab goes to the background (Page Visibility API): he shows as away.
    bob.evaluate("""() => {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
        Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    expect(bob_row).to_have_attribute("data-state", "away", timeout=3000)
    expect(bob_row.locator(".state")).to_have_text("away")
    bob.evaluate("""() => {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "visible"});
        Object.defineProperty(document, "hidden", {configurable: true, get: () => false});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    expect(bob_row).to_have_attribute("data-state", "active", timeout=3000)

    bob.close()
    expect(bob_row).to_have_count(0, timeout=5000)
    expect(me).to_be_visible()
    assert not alice.errors, alice.errors


def test_content_is_rendered_as_text_and_never_runs(open_as, rest, tale, server):
    alice = open_as(tale["alice"], ROOM)
    dialogs = []
    alice.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    agent = rest(tale["narrator_token"])
    evil = "<img src=x onerror=alert(1)>"
    text = post(agent, {"text": evil}, msg_type="text")
    narration = post(agent, {"text": "<script>window.__pwned = 1</script><b>bold?</b>"})
    dialogue = post(agent, {"character": "<i onmouseover=alert(2)>Mara</i>", "line": evil,
                            "direction": "</span><img src=y onerror=alert(3)>"}, msg_type="dialogue")
    custom = post(agent, {"<svg onload=alert(4)>": evil}, msg_type="x-custom")

    expect(card(alice, text["id"]).locator(".msg-text")).to_have_text(evil)
    expect(card(alice, narration["id"]).locator(".narration")).to_have_text("<script>window.__pwned = 1</script><b>bold?</b>")
    expect(card(alice, dialogue["id"]).locator(".character")).to_have_text("<i onmouseover=alert(2)>Mara</i>")
    expect(card(alice, dialogue["id"]).locator(".line")).to_have_text(evil)
    expect(card(alice, custom["id"]).locator("dt")).to_have_text("<svg onload=alert(4)>")
    # Nothing became an element: no <img>, <script>, <b>, <i> or <svg> from the payloads.
    feed = alice.locator("#feed-list")
    for tag in ("img", "script", "b", "i", "svg"):
        assert feed.locator(f".msg-body {tag}").count() == 0, tag
    # The thread view and reply headers render it as text too.
    reply = post(agent, {"text": "quoted"}, msg_type="text", reply_to=text["id"])
    expect(card(alice, reply["id"]).locator(".reply-ref")).to_contain_text(evil)
    assert alice.evaluate("() => window.__pwned") is None
    assert dialogs == []

    # And the page itself forbids inline scripts.
    response = alice.request.get(ROOM)
    policy = response.headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert "'self'" in script_src and "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
    assert not alice.errors, alice.errors
