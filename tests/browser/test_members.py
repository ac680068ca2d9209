"""Inviting people into a private story from the browser: by username and by link, a role changed
while the invitee has the room open, a removal, and the styled page for those without access."""
import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]


@pytest.fixture
def hush(db_call, make_user, make_story):
    def build():
        olga = make_user("olga", display_name="Olga")
        carol = make_user("carol", display_name="Carol")
        dave = make_user("dave", display_name="Dave")
        make_story(olga, slug="hush", title="Hush", visibility="private")
        return {"olga": olga, "carol": carol, "dave": dave}
    return db_call(build)


def open_members(page):
    page.locator("#members-button").click()
    dialog = page.locator("#members-dialog")
    expect(dialog).to_be_visible()
    return dialog


def test_invite_by_username_then_change_the_role_and_remove_while_the_room_is_open(open_as, hush):
    # Before: carol finds a page that says nothing about whether the story exists.
    carol = open_as(hush["carol"], "/stories/hush/", wait_live=False)
    expect(carol.locator("#no-access h1")).to_have_text("No story here for you")
    expect(carol.locator("#no-access")).to_contain_text("@carol")

    olga = open_as(hush["olga"], "/stories/hush/")
    dialog = open_members(olga)
    dialog.locator("#add-username").fill("@carol")
    dialog.locator("#add-member select").select_option("editor")
    dialog.locator("#add-member button[type=submit]").click()
    expect(dialog.locator('.member[data-user="carol"]')).to_have_attribute("data-role", "editor")
    # A wrong username is said in words, in the dialog.
    dialog.locator("#add-username").fill("nobody-here")
    dialog.locator("#add-member button[type=submit]").click()
    expect(dialog.locator(".form-error")).to_contain_text("No user 'nobody-here'")
    expect(dialog.locator(".form-error")).not_to_contain_text("{")

    carol.goto("/stories/hush/")
    expect(carol.locator("#connection")).to_have_attribute("data-state", "open", timeout=15000)
    expect(carol.locator("#compose-host .compose")).to_be_visible()
    expect(carol.locator("#doc-status")).to_have_attribute("data-status", "synced")
    expect(carol.locator("#editor .cm-content")).to_have_attribute("contenteditable", "true")

    # Olga makes her a viewer: carol's open room follows without a reload.
    dialog.locator('.member[data-user="carol"] select').select_option("viewer")
    expect(dialog.locator('.member[data-user="carol"]')).to_have_attribute("data-role", "viewer")
    expect(carol.locator("#compose-host .compose")).to_be_hidden(timeout=3000)
    expect(carol.locator(".compose-notice")).to_contain_text("Viewers read along")
    expect(carol.locator("#editor .cm-content")).to_have_attribute("contenteditable", "false", timeout=3000)

    # And removes her: the room says so at once.
    olga.once("dialog", lambda d: d.accept())
    dialog.locator('.member[data-user="carol"] [data-remove="carol"]').click()
    expect(dialog.locator('.member[data-user="carol"]')).to_have_count(0)
    expect(carol.locator("#access-lost")).to_be_visible(timeout=3000)
    expect(carol.locator("#access-lost")).to_contain_text("You no longer have access to this story")


def test_invite_by_link_with_a_role_and_revoke_it(open_as, hush):
    olga = open_as(hush["olga"], "/stories/hush/")
    dialog = open_members(olga)
    dialog.locator("#invite-form select").first.select_option("viewer")
    dialog.locator("#invite-form button[type=submit]").click()
    link = dialog.locator("#invite-url")
    expect(link).to_be_visible()
    url = link.input_value()
    assert "/invite/" in url
    expect(dialog.locator("#invite-list .invite")).to_have_count(1)

    dave = open_as(hush["dave"], url, wait_live=False)
    expect(dave.locator("#invite-story")).to_have_text("Hush")
    expect(dave.locator("#invite-role")).to_have_text("viewer")
    dave.locator("#invite-join").click()
    expect(dave).to_have_url(re.compile(r"/stories/hush/"))
    expect(dave.locator("#connection")).to_have_attribute("data-state", "open", timeout=15000)
    expect(dave.locator(".compose-notice")).to_contain_text("Viewers read along")
    expect(dialog.locator('.member[data-user="dave"]')).to_have_attribute("data-role", "viewer", timeout=5000)

    # Revoked: the same link now lets nobody in.
    dialog.locator("#invite-list .invite button").click()
    expect(dialog.locator("#invite-list .invite")).to_have_count(0)
    carol = open_as(hush["carol"], url, wait_live=False)
    expect(carol.locator("#invite")).to_have_attribute("data-state", "invalid")
    expect(carol.locator("#invite-join")).to_have_count(0)
