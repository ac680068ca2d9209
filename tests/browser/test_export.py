"""Export in the room: the Export menu of the document panel downloads the open document (and the
whole story) as files, with the text just written in it."""
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

ROOM = "/stories/tale/?channel=general"


def test_the_export_link_downloads_the_open_document(open_as, tale, db_call):
    def notes():
        from stories.documents import document_create

        document_create(story=tale["story"], creator=tale["alice"], name="notes", title="Notes",
                        text="Notes <b>& asides</b>.")
    db_call(notes)
    page = open_as(tale["bob"], ROOM)
    page.locator("#editor .cm-content").click()
    page.keyboard.type("The lamp guttered & the sea rose.")
    expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced", timeout=10000)

    menu = page.locator("#doc-export")
    link = menu.get_by_text("This document (Markdown)")
    expect(link).to_be_hidden()
    menu.locator("summary").click()
    expect(link).to_be_visible()
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "tale-main.md"
    assert Path(download.path()).read_text(encoding="utf-8") == "# A Tale\n\nThe lamp guttered & the sea rose.\n"
    expect(link).to_be_hidden()  # the menu closes once a file is chosen

    # The links follow the open document.
    page.locator("#doc-select").select_option("notes")
    expect(page.locator("#editor .cm-content")).to_contain_text("Notes <b>& asides</b>.")
    menu.locator("summary").click()
    with page.expect_download() as info:
        menu.get_by_text("This document (plain text)").click()
    assert info.value.suggested_filename == "tale-notes.txt"
    assert Path(info.value.path()).read_text(encoding="utf-8") == "Notes\n=====\n\nNotes <b>& asides</b>.\n"
    expect(menu.get_by_text("The whole story (EPUB)")).to_have_attribute(
        "href", "/api/stories/tale/export/book?format=epub")
    # Escape closes the menu, back on its button; so does a click elsewhere.
    menu.locator("summary").click()
    expect(link).to_be_visible()
    page.keyboard.press("Escape")
    expect(link).to_be_hidden()
    expect(menu.locator("summary")).to_be_focused()
    menu.locator("summary").click()
    expect(link).to_be_visible()
    page.locator("#editor .cm-content").click()
    expect(link).to_be_hidden()
    assert page.errors == []
