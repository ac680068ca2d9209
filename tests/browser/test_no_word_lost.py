"""A writer never loses a word in the editor: a huge paste, a reload with edits not yet saved, the
network gone for half a minute, the server killed mid-sentence. Each ends with every character on
the server."""
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

PASTE_CHARS = 200_000


def editor_text(page):
    return page.evaluate("() => window.mythlineEditor.view.state.doc.toString()")


def server_text(server, token):
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
        return api.get("/api/stories/tale/documents/main").json()["text"]




def chapter(n):
    """n characters of prose, with line breaks and a few non-ASCII letters (and an astral one)."""
    line = "Mara counted the turns of the lens; the sea answered — “not yet”. 🌊 "
    text = ""
    while len(text) < n:
        text += line + ("\n" if len(text) % 7 == 0 else "")
    return text[:n - 1] + "."


def paste(page, text):
    """A real paste event, with the text on its clipboard data (what Ctrl+V delivers)."""
    page.evaluate("""(text) => {
        const data = new DataTransfer();
        data.setData("text/plain", text);
        document.querySelector("#editor .cm-content").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
    }""", text)


def synced(page):
    return page.locator("#doc-status").get_attribute("data-status") == "synced"


def open_editor(open_as, user, **kwargs):
    page = open_as(user, "/stories/tale/", **kwargs)
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced", timeout=15000)
    page.locator("#editor .cm-content").click()
    return page


def test_a_huge_paste_and_the_typing_after_it_survive_a_reload_before_they_were_saved(open_as, server, tale):
    # The page's pushes are held back (its socket drops every doc.push), so that at the reload
    # nothing is saved yet: only the browser has the text.
    hold = {"pushes": True, "held": 0}

    def route(page):
        def handler(ws):
            upstream = ws.connect_to_server()

            def from_page(message):
                if hold["pushes"] and '"doc.push"' in str(message):
                    hold["held"] += 1
                    return
                upstream.send(message)
            ws.on_message(from_page)
            upstream.on_message(lambda message: ws.send(message))
        page.route_web_socket("**/ws/", handler)

    page = open_editor(open_as, tale["alice"], before=route)
    text = chapter(PASTE_CHARS)
    paste(page, text)
    page.keyboard.type(" And then she wrote on.")
    expected = text + " And then she wrote on."
    wait_until(lambda: editor_text(page) == expected, message="the paste and the typing in the editor")
    wait_until(lambda: hold["held"] >= 1, message="a push to be held back")
    expect(page.locator("#doc-status")).not_to_have_attribute("data-status", "synced")
    assert server_text(server, tale["alice_token"]) == ""

    # Leaving now asks first; the reload goes ahead, and the new page offers the kept edits back.
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))
    hold["pushes"] = False
    page.reload()
    assert dialogs == ["beforeunload"]
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced", timeout=15000)
    banner = page.locator("#doc-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("were not saved to the server")
    page.locator("#draft-restore").click()
    expect(banner).to_be_hidden()
    wait_until(lambda: synced(page) and editor_text(page) == expected, message="the restored text to be saved")
    assert server_text(server, tale["alice_token"]) == expected
    # Split into changes the server takes: nothing refused on the way.
    assert page.evaluate("() => window.mythlineEditor.sync.stats.refused") == 0


def test_a_paste_past_the_documents_limit_is_refused_before_anything_is_lost(open_as, server, tale):
    page = open_editor(open_as, tale["alice"])
    page.keyboard.type("Kept.")
    wait_until(lambda: synced(page), message="the first words saved")
    page.evaluate("() => { window.mythlineEditor.sync.limits.maxChars = 1000; }")  # as if the document were full
    paste(page, chapter(5000))
    banner = page.locator("#doc-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("holds at most 1,000")
    assert editor_text(page) == "Kept."
    page.keyboard.type(" Still typing.")  # and the editor goes on saving
    wait_until(lambda: synced(page) and server_text(server, tale["alice_token"]) == "Kept. Still typing.",
               message="later typing saved")


def test_thirty_seconds_offline_while_typing_then_everything_arrives(open_as, server, tale):
    page = open_editor(open_as, tale["alice"])
    page.keyboard.type("Before. ")
    wait_until(lambda: synced(page), message="the first words saved")
    page.context.set_offline(True)
    expect(page.locator("#connection")).to_have_text("Offline", timeout=3000)
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "offline", timeout=3000)
    expect(page.locator("#doc-banner")).to_contain_text("You are offline")
    words = []
    started = time.monotonic()
    while time.monotonic() - started < 30:  # the scenario: half a minute of writing with no network
        word = f"word{len(words)} "
        page.keyboard.type(word)
        words.append(word)
        time.sleep(2)
    expect(page.locator("#connection")).to_have_text("Offline")
    page.context.set_offline(False)
    expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=10000)
    expected = "Before. " + "".join(words)
    wait_until(lambda: synced(page) and editor_text(page) == expected, message="the offline words saved")
    assert server_text(server, tale["alice_token"]) == expected
    expect(page.locator("#doc-banner")).to_be_hidden()


def test_the_server_killed_mid_typing_loses_nothing(open_as, server, tale):
    page = open_editor(open_as, tale["alice"])
    page.keyboard.type("The lamp was lit. ")
    server.kill()
    page.keyboard.type("Then the power went. ")
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "offline", timeout=15000)
    page.keyboard.type("She kept writing by candle. ")
    server.start()
    expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=30000)
    expected = "The lamp was lit. Then the power went. She kept writing by candle. "
    wait_until(lambda: synced(page) and editor_text(page) == expected, message="everything saved after the restart")
    assert server_text(server, tale["alice_token"]) == expected
