"""The export over MCP on a real server (streamable HTTP): export_document and export_story return
Markdown or plain text as text and EPUB base64-encoded (opened here by ebooklib, a reader library),
with the story's access rules."""
import asyncio
import base64

import httpx
import pytest

from accounts.services import token_issue
from stories.documents import document_edit
from stories.models import Document
from stories.services import participant_add
from tests.agents.test_mcp import http_session
from tests.exports.test_api import chapter_texts, read_epub
from tests.live import LiveServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def tale(make_user, make_story, make_agent):
    owner, outsider = make_user("owner", display_name="Alice"), make_user("olga")
    story = make_story(owner, slug="tale", title="The Lighthouse", premise="A keeper and the sea.")
    hush = make_story(owner, slug="hush", visibility="private")
    main = Document.objects.get(story=story, name="main")
    document_edit(doc=main, author=owner, body={"append": "First words.\nI. Night\nThe <lamp> & the sea."})
    document_edit(doc=main, author=owner, body={"append": "\nMore."})
    document_edit(doc=Document.objects.get(story=hush, name="main"), author=owner, body={"append": "Secret."})
    watcher = make_agent("watcher")
    participant_add(story=story, user=watcher, role="viewer")
    return {name: token_issue(user=user) for name, user in (("watcher", watcher), ("olga", outsider))}


def chapters(data: bytes, tmp_path) -> dict[str, str]:
    """The book's chapters, {toc title: its paragraphs as text}, as a reader library opens them."""
    return {title: text for title, _, text in chapter_texts(read_epub(data, tmp_path))}


async def call_ok(mcp, tool, **args):
    result = await mcp.call_tool(tool, args)
    assert not result.isError, (tool, args, result.structuredContent)
    return result.structuredContent


@pytest.fixture
def server():
    with LiveServer() as live:
        yield live


def test_export_document_and_story_over_mcp(server, tale, tmp_path):
    async def go():
        async with http_session(server, tale["watcher"]) as mcp:  # an agent with the viewer role
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            tool = tools["export_document"]
            assert tool.annotations.readOnlyHint is True
            assert set(tool.inputSchema["properties"]) == {"story", "doc", "format", "revision"}
            assert tool.inputSchema["properties"]["format"]["enum"] == ["md", "txt", "epub"]
            assert set(tools["export_story"].inputSchema["properties"]) == {"story", "format"}
            assert tools["export_story"].annotations.readOnlyHint is True

            async def ok(**args):
                result = await mcp.call_tool("export_document", args)
                assert not result.isError, (args, result.structuredContent)
                return result.structuredContent

            async def refused(**args):
                result = await mcp.call_tool("export_document", args)
                assert result.isError, args
                return result.structuredContent["error"]

            md = await ok(story="tale")  # main, Markdown
            assert md == {"story": "tale", "document": "main", "format": "md", "revision": 2,
                          "filename": "tale-main.md", "content_type": "text/markdown; charset=utf-8",
                          "url": "/api/stories/tale/documents/main/export?format=md",
                          "text": "# The Lighthouse\n\nFirst words.\n## I. Night\nThe <lamp> & the sea.\nMore.\n"}
            txt = await ok(story="tale", doc="main", format="txt", revision=1)
            assert txt["revision"] == 1 and txt["filename"] == "tale-main-r1.txt"
            assert txt["url"] == "/api/stories/tale/documents/main/export?format=txt&revision=1"
            assert txt["text"] == "The Lighthouse\n==============\n\nFirst words.\nI. Night\nThe <lamp> & the sea.\n"

            book = await ok(story="tale", format="epub")  # the document as an EPUB, read by ebooklib
            assert "text" not in book and book["content_type"] == "application/epub+zip"
            assert book["filename"] == "tale-main.epub"
            opened = chapters(base64.b64decode(book["base64"]), tmp_path)
            assert opened["I. Night"].startswith("The <lamp> & the sea.")  # escaped in the XHTML, read back as written

            story_md = await call_ok(mcp, "export_story", story="tale")
            assert story_md["document"] is None and story_md["filename"] == "tale.md"
            assert story_md["url"] == "/api/stories/tale/export/book?format=md"
            assert story_md["text"].startswith("# The Lighthouse\n\n*A keeper and the sea.*\n")
            story_epub = await call_ok(mcp, "export_story", story="tale", format="epub")
            assert chapters(base64.b64decode(story_epub["base64"]), tmp_path)["I. Night"] == opened["I. Night"]
            assert (await refused(story="tale", format="pdf"))["details"] == {"format": "must be one of: md, txt, epub"}
            bad = await mcp.call_tool("export_story", {"story": "tale", "format": "pdf"})
            assert bad.isError and bad.structuredContent["error"]["details"] == {"format": "must be one of: md, txt, epub"}
            assert "revision" in (await refused(story="tale", revision=3))["details"]
            assert (await refused(story="tale", doc="nope"))["code"] == "not_found"
            assert (await refused(story="tale", sender="someone"))["code"] == "invalid"  # no such argument

        # The URL in the answer serves the same file over REST to the same agent.
        async with httpx.AsyncClient(base_url=server.base, timeout=10,
                                     headers={"Authorization": f"Bearer {tale['watcher']}"}) as http:
            r = await http.get(book["url"])
            assert r.status_code == 200 and r.headers["content-type"] == "application/epub+zip"
            assert chapters(r.content, tmp_path) == opened

        async with http_session(server, tale["olga"]) as mcp:  # an outsider
            assert not (await mcp.call_tool("export_document", {"story": "tale"})).isError  # public
            for tool, args in (("export_document", {"story": "hush"}), ("export_document", {"story": "hush", "format": "epub"}),
                               ("export_story", {"story": "hush"}), ("export_story", {"story": "hush", "format": "epub"})):
                result = await mcp.call_tool(tool, args)  # private: not known of
                assert result.isError and result.structuredContent["error"]["code"] == "not_found", (tool, args)
                assert "Secret" not in str(result.structuredContent)
    asyncio.run(go())
