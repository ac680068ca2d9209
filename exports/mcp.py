"""The export's MCP tool (docs/export.md), registered on the server agents/mcp.py builds: the same
access rule and selectors as the REST views, with the same error codes.

EPUB is a binary file: over MCP the tool refuses it (`invalid`, naming `format`, with the REST URL
to download it from) rather than sending megabytes of base64 through a model's context.
"""
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from exports import selectors
from mythline_site.errors import Invalid
from mythline_site.throttling import check_rate
from stories.policies import access_story

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
MCP_FORMATS = ("md", "txt")


def _export_document(user, story, doc, format, revision) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_story(user, story)
    fmt = selectors.parse_format(format)
    if fmt not in MCP_FORMATS:
        url = f"/api/stories/{access.story.slug}/documents/{doc}/export?format={fmt}"
        raise Invalid(f"EPUB is not sent over MCP: download it over REST, GET {url} with your bearer token.",
                      details={"format": f"md or txt over MCP; epub at {url}"})
    export = selectors.document_export(access.story, doc, fmt, revision)
    return {"story": access.story.slug, "document": doc, "format": fmt, "revision": export.revision,
            "filename": export.filename, "content_type": export.content_type,
            "text": export.content.decode("utf-8")}


def register_tools(server, call) -> None:
    @server.tool(annotations=READ)
    async def export_document(
        ctx: Context,
        story: Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")],
        doc: Annotated[str, Field(description="The document's name, e.g. 'main'")] = "main",
        format: Annotated[str, Field(description="md (Markdown: scene headings as '## ') or txt (plain text); "
                                                 "epub only over REST", json_schema_extra={"enum": list(MCP_FORMATS)})] = "md",
        revision: Annotated[int | None, Field(strict=True, description="The text at this revision "
                                                                       "(default: the current one)")] = None,
    ) -> dict[str, Any]:
        """A document as a file's text: its title as a heading, then its text. Returns {"story",
        "document", "format", "revision", "filename", "content_type", "text"}."""
        return await call(ctx, _export_document, story, doc, format, revision)
