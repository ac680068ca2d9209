"""The bell in the top bar (issue #17, docs/browser.md "Notifications"): a mention counts on the
bell live, the panel lists it (who, what, the excerpt), and following it opens the message in its
channel and marks it read; a mention in a private channel the user is not in shows nothing; a
notification followed inside the room of its story opens in place; "Mark all read"; axe on the
open panel; a 390 px screen."""
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_until
from tests.browser.test_accessibility import assert_accessible

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

GENERAL = "/api/stories/tale/channels/general/messages"


def post(client, text, *, channel="general", **extra):
    r = client.post(f"/api/stories/tale/channels/{channel}/messages",
                    json={"msg_type": "text", "payload": {"text": text}, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def wait_subscribed(page):
    """The bell hears live frames once its topic is subscribed (what a person sees in a moment)."""
    page.wait_for_function("() => window.mythlineNotifications && window.mythlineNotifications.sub.subscribed",
                           timeout=15000)


def unread_of(db_call, user):
    from notifications.models import Notification

    return db_call(lambda: Notification.objects.filter(user=user, read_at__isnull=True).count())


def test_a_mention_rings_the_bell_live_and_following_it_opens_the_message_read(open_as, rest, db_call, tale):
    lobby = open_as(tale["bob"], "/", wait_live=False)
    bell = lobby.locator("#notif-bell")
    expect(bell).to_have_attribute("aria-label", "Notifications, 0 unread")
    expect(lobby.locator("#notif-count")).to_be_hidden()
    wait_subscribed(lobby)

    mention = post(rest(tale["alice_token"]), "@bob, the lamp at the top of the stairs is out.")
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread")
    expect(lobby.locator("#notif-count")).to_have_text("1")

    bell.click()
    expect(bell).to_have_attribute("aria-expanded", "true")
    items = lobby.locator("#notif-list .notif-item")
    expect(items).to_have_count(1)
    item = items.first
    expect(item.locator(".notif-line")).to_have_text("Alice @alice mentioned you in #general")
    expect(item.locator(".notif-excerpt")).to_have_text("@bob, the lamp at the top of the stairs is out.")
    expect(item.locator(".notif-time")).to_have_text("just now")
    expect(item).to_have_class("notif-item unread")
    assert_accessible(lobby, "the notifications panel")
    # Esc closes it, the focus back on the bell.
    lobby.keyboard.press("Escape")
    expect(lobby.locator("#notif-panel")).to_be_hidden()
    expect(bell).to_be_focused()

    bell.click()
    item.click()
    lobby.wait_for_url(f"**/stories/tale/?channel=general&message={mention['id']}")
    card = lobby.locator(f'#feed-list .msg[data-id="{mention["id"]}"]')
    expect(card).to_be_focused(timeout=15000)
    room_bell = lobby.locator("#notif-bell")
    expect(room_bell).to_have_attribute("aria-label", "Notifications, 0 unread")
    expect(lobby.locator("#notif-count")).to_be_hidden()
    wait_until(lambda: unread_of(db_call, tale["bob"]) == 0, message="the notification read on the server")
    room_bell.click()
    expect(lobby.locator("#notif-list .notif-item")).to_have_class("notif-item")  # read now
    assert not lobby.errors, lobby.errors


def test_a_mention_in_a_private_channel_the_user_is_not_in_shows_nothing(open_room, rest, db_call, tale):
    def build():
        from messaging.services import channel_create

        channel_create(story=tale["story"], creator=tale["alice"], name="cabal", kind="private")
    db_call(build)
    page = open_room(tale["bob"])
    wait_subscribed(page)
    alice = rest(tale["alice_token"])
    post(alice, "@bob must never hear of this.", channel="cabal")
    # A later, visible one: when it shows, the private one would have shown before it.
    post(alice, "@bob, breakfast is at eight.")
    bell = page.locator("#notif-bell")
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread")
    bell.click()
    items = page.locator("#notif-list .notif-item")
    expect(items).to_have_count(1)
    expect(items.first.locator(".notif-excerpt")).to_have_text("@bob, breakfast is at eight.")
    expect(page.locator("#notif-panel")).not_to_contain_text("never hear")
    assert unread_of(db_call, tale["bob"]) == 1


def test_in_the_room_a_notification_opens_in_place_and_mark_all_read(open_room, rest, db_call, tale):
    def build():
        from messaging.services import channel_create

        channel_create(story=tale["story"], creator=tale["alice"], name="scene-2", kind="public")
    db_call(build)
    mine = post(rest(tale["alice_token"]), "Who keeps the lamp?")  # alice owns the story
    page = open_room(tale["alice"])
    wait_subscribed(page)
    narrator = rest(tale["narrator_token"])
    in_scene = post(narrator, "@alice, the keeper is asleep.", channel="scene-2")
    post(narrator, "The keeper's daughter does.", reply_to=mine["id"])
    bell = page.locator("#notif-bell")
    expect(bell).to_have_attribute("aria-label", "Notifications, 2 unread")
    bell.click()
    items = page.locator("#notif-list .notif-item")
    # Newest first.
    expect(items.locator(".notif-line")).to_have_text(["Narrator @narrator replied to you",
                                                       "Narrator @narrator mentioned you in #scene-2"])
    before = page.evaluate("() => performance.timeOrigin")
    items.nth(1).click()
    # The same room: scene-2 opens at the message, without a reload.
    card = page.locator(f'#feed-list .msg[data-id="{in_scene["id"]}"]')
    expect(card).to_be_focused(timeout=15000)
    expect(page.locator("#channel-name")).to_contain_text("scene-2")
    assert page.evaluate("() => performance.timeOrigin") == before
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread")

    bell.click()
    page.locator("#notif-mark-all").click()
    expect(bell).to_have_attribute("aria-label", "Notifications, 0 unread")
    expect(page.locator("#notif-list .notif-item.unread")).to_have_count(0)
    expect(page.locator("#notif-mark-all")).to_be_disabled()
    # (the bell says so at once; the server hears of it a moment later)
    wait_until(lambda: unread_of(db_call, tale["alice"]) == 0, message="all marked read on the server")
    assert not page.errors, page.errors


def test_read_in_another_tab_and_on_a_phone(open_as, open_room, rest, tale):
    phone = open_room(tale["bob"], viewport={"width": 390, "height": 844})
    wait_subscribed(phone)
    other = open_as(tale["bob"], "/", wait_live=False)
    wait_subscribed(other)
    post(rest(tale["alice_token"]), "@bob, the tide is in.")
    for page in (phone, other):
        expect(page.locator("#notif-bell")).to_have_attribute("aria-label", "Notifications, 1 unread")
    phone.locator("#notif-bell").click()
    panel = phone.locator("#notif-panel")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    # Marked read on the phone: the other tab hears of it.
    phone.locator("#notif-mark-all").click()
    expect(other.locator("#notif-bell")).to_have_attribute("aria-label", "Notifications, 0 unread")
