"""A replace-all over more occurrences than the server takes in one push (MYTHLINE_DOC_MAX_PUSH_CHANGES,
5 on this module's server) is saved whole: doc.state tells the editor the cap, and the editor sends
the edit as several pushes within it, none refused, instead of one the server would refuse for ever
("Not saved yet")."""

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_until
from tests.live import LiveServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

CAP = 5


@pytest.fixture(scope="module")
def server(django_db_setup, browser):
    """This module's own server, with a small cap on changed ranges per push."""
    live = LiveServer(env={"MYTHLINE_DOC_MAX_PUSH_CHANGES": str(CAP)})
    live.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    with live:  # started; stopped, its log removed, after the module
        yield live


def server_text(server, token):
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
        return api.get("/api/stories/tale/documents/main").json()["text"]


def test_a_replace_all_over_more_occurrences_than_a_push_may_change_is_saved_whole(open_as, server, tale, rest):
    text = "".join(f"Line {n}: the sea, and again the sea.\n" for n in range(23))  # 46 occurrences
    seeded = rest(tale["alice_token"]).post("/api/stories/tale/documents/main/ops", json={"append": text})
    assert seeded.status_code == 200, seeded.text

    frames = {"pushes": 0, "refused": 0}

    def route(page):
        def handler(ws):
            upstream = ws.connect_to_server()

            def from_page(message):
                if '"doc.push"' in str(message):
                    frames["pushes"] += 1
                upstream.send(message)

            def from_server(message):
                if '"payload_too_large"' in str(message):
                    frames["refused"] += 1
                ws.send(message)
            ws.on_message(from_page)
            upstream.on_message(from_server)
        page.route_web_socket("**/ws/", handler)

    page = open_as(tale["alice"], "/stories/tale/", before=route)
    status = page.locator("#doc-status")
    expect(status).to_have_attribute("data-status", "synced", timeout=15000)
    assert page.evaluate("() => window.mythlineEditor.sync.limits.maxChanges") == CAP  # from doc.state
    assert page.evaluate("() => window.mythlineEditor.view.state.doc.toString()") == text

    # What a search panel's "replace all" dispatches: one transaction changing every occurrence.
    page.evaluate("""() => {
        const view = window.mythlineEditor.view;
        const text = view.state.doc.toString();
        const changes = [];
        for (let i = text.indexOf("sea"); i >= 0; i = text.indexOf("sea", i + 3)) {
            changes.push({from: i, to: i + 3, insert: "ocean"});
        }
        view.dispatch({changes, userEvent: "input.replace.all"});
    }""")
    expected = text.replace("sea", "ocean")
    wait_until(lambda: status.get_attribute("data-status") == "synced"
               and server_text(server, tale["alice_token"]) == expected, message="the replace-all saved")
    assert page.evaluate("() => window.mythlineEditor.view.state.doc.toString()") == expected
    assert frames["refused"] == 0 and page.evaluate("() => window.mythlineEditor.sync.stats.refused") == 0
    assert frames["pushes"] >= -(-46 // CAP)
    expect(page.locator("#doc-banner")).to_be_hidden()
    assert page.errors == []
