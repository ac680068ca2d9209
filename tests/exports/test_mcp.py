"""The export over MCP on a real server (streamable HTTP): export_document returns Markdown or
plain text with the story's access rules; EPUB is refused with the REST URL to download it from."""
import asyncio

import httpx
import pytest

from accounts.services import token_issue
from stories.documents import document_edit
from stories.models import Document
from stories.services import participant_add
from tests.agents.test_mcp import http_session
from tests.live import LiveServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def tale(make_user, make_story, make_agent):
    owner, outsider = make_user("owner", display_name="Alice"), make_user("olga")
    story = make_story(owner, slug="tale", title="The Lighthouse")
    hush = make_story(owner, slug="hush", visibility="private")
    main = Document.objects.get(story=story, name="main")
    document_edit(doc=main, author=owner, body={"append": "First words.\nI. Night\nThe <lamp> & the sea."})
    document_edit(doc=main, author=owner, body={"append": "\nMore."})
    document_edit(doc=Document.objects.get(story=hush, name="main"), author=owner, body={"append": "Secret."})
    watcher = make_agent("watcher")
    participant_add(story=story, user=watcher, role="viewer")
    return {name: token_issue(user=user) for name, user in (("watcher", watcher), ("olga", outsider))}


@pytest.fixture
def server():
    with LiveServer() as live:
        yield live


def test_export_document_over_mcp(server, tale):
    async def go():
        async with http_session(server, tale["watcher"]) as mcp:  # an agent with the viewer role
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            tool = tools["export_document"]
            assert tool.annotations.readOnlyHint is True
            assert set(tool.inputSchema["properties"]) == {"story", "doc", "format", "revision"}
            assert tool.inputSchema["properties"]["format"]["enum"] == ["md", "txt"]

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
                          "text": "# The Lighthouse\n\nFirst words.\n## I. Night\nThe <lamp> & the sea.\nMore.\n"}
            txt = await ok(story="tale", doc="main", format="txt", revision=1)
            assert txt["revision"] == 1 and txt["filename"] == "tale-main-r1.txt"
            assert txt["text"] == "The Lighthouse\n==============\n\nFirst words.\nI. Night\nThe <lamp> & the sea.\n"

            epub = await refused(story="tale", format="epub")
            assert epub["code"] == "invalid" and "format" in epub["details"]
            assert "/api/stories/tale/documents/main/export?format=epub" in epub["message"]
            assert (await refused(story="tale", format="pdf"))["details"] == {"format": "must be one of: md, txt, epub"}
            assert "revision" in (await refused(story="tale", revision=3))["details"]
            assert (await refused(story="tale", doc="nope"))["code"] == "not_found"
            assert (await refused(story="tale", sender="someone"))["code"] == "invalid"  # no such argument

        # The REST URL the refusal names serves the EPUB to the same agent.
        async with httpx.AsyncClient(base_url=server.base, timeout=10,
                                     headers={"Authorization": f"Bearer {tale['watcher']}"}) as http:
            r = await http.get("/api/stories/tale/documents/main/export?format=epub")
            assert r.status_code == 200 and r.headers["content-type"] == "application/epub+zip"

        async with http_session(server, tale["olga"]) as mcp:  # an outsider
            assert not (await mcp.call_tool("export_document", {"story": "tale"})).isError  # public
            for args in ({"story": "hush"}, {"story": "hush", "format": "epub"}):  # private: not known of
                result = await mcp.call_tool("export_document", args)
                assert result.isError and result.structuredContent["error"]["code"] == "not_found", args
                assert "Secret" not in str(result.structuredContent)
    asyncio.run(go())
