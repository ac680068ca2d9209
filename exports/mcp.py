"""The export's MCP tools (docs/export.md), registered on the server agents/mcp.py builds: the same
access rule and selectors as the REST views, with the same error codes.

Markdown and plain text come back as `text`. EPUB is a binary file: it comes back base64-encoded
in `base64` (the MCP way to carry a blob in JSON), so an agent can save it as it is; a client that
would rather not carry the bytes downloads the same file over REST (`url`, with the same token).
"""
import base64
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from exports import selectors
from exports.formats import FORMATS
from mythline_site.throttling import check_rate
from stories.policies import access_story

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
FORMAT_DESCRIPTION = ("md (Markdown: scene headings as '## '), txt (plain text) or epub (an EPUB 3 book, "
                      "returned base64-encoded in 'base64')")


def _answer(story, document, export: selectors.Export, url: str) -> dict:
    body = {"story": story.slug, "document": document, "format": export.format, "revision": export.revision,
            "filename": export.filename, "content_type": export.content_type, "url": url}
    if export.format == "epub":
        body["base64"] = base64.b64encode(export.content).decode("ascii")
    else:
        body["text"] = export.content.decode("utf-8")
    return body


def _export_document(user, story, doc, format, revision) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_story(user, story)
    export = selectors.document_export(access.story, doc, format, revision)
    url = f"/api/stories/{access.story.slug}/documents/{doc}/export?format={export.format}"
    if revision is not None:
        url += f"&revision={export.revision}"
    return _answer(access.story, doc, export, url)


def _export_story(user, story, format) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_story(user, story)
    export = selectors.book_export(access.story, format)
    return _answer(access.story, None, export, f"/api/stories/{access.story.slug}/export/book?format={export.format}")


FormatArg = Annotated[str, Field(description=FORMAT_DESCRIPTION, json_schema_extra={"enum": list(FORMATS)})]


def register_tools(server, call) -> None:
    @server.tool(annotations=READ)
    async def export_document(
        ctx: Context,
        story: Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")],
        doc: Annotated[str, Field(description="The document's name, e.g. 'main'")] = "main",
        format: FormatArg = "md",
        revision: Annotated[int | None, Field(strict=True, description="The text at this revision "
                                                                       "(default: the current one)")] = None,
    ) -> dict[str, Any]:
        """A document as a file: its title as a heading, then its text. Returns {"story", "document",
        "format", "revision", "filename", "content_type", "url", and "text" (md, txt) or "base64" (epub)}."""
        return await call(ctx, _export_document, story, doc, format, revision)

    @server.tool(annotations=READ)
    async def export_story(
        ctx: Context,
        story: Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")],
        format: FormatArg = "md",
    ) -> dict[str, Any]:
        """The whole story as a book: its title, its premise, then the current text of 'main'. Returns
        {"story", "document": null, "format", "revision", "filename", "content_type", "url", and "text"
        (md, txt) or "base64" (epub)}."""
        return await call(ctx, _export_story, story, format)
