"""The search tool of the MCP server (agents/mcp.py registers it): the same selector, access rule,
validation and `read` rate budget as GET /api/search."""
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from mythline_site.throttling import check_rate
from search import selectors

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)


def _search(user, q, story, channel, sender, type, after, before, limit, offset) -> dict:
    check_rate("read", f"u{user.pk}")
    params = selectors.parse_params(q=q, story=story, channel=channel, sender=sender, type=type, after=after,
                                    before=before, limit=limit, offset=offset)
    return selectors.search_messages(user, params)


def register_tools(server, call) -> None:
    @server.tool(annotations=READ)
    async def search_messages(
        ctx: Context,
        q: Annotated[str, Field(description='1-200 characters: words (every one must occur, any order) and '
                                            '"quoted phrases"; no other operators')],
        story: Annotated[str | None, Field(description="Only this story's slug (default: every story you "
                                                       "take part in)")] = None,
        channel: Annotated[str | None, Field(description="Only this channel (needs story)")] = None,
        sender: Annotated[str | None, Field(description="Only messages sent by this username")] = None,
        type: Annotated[str | None, Field(description="Only this msg_type (or a comma-separated list)")] = None,
        after: Annotated[str | None, Field(description="Only messages created after this ISO-8601 time")] = None,
        before: Annotated[str | None, Field(description="Only messages created before this ISO-8601 time")] = None,
        limit: Annotated[int | None, Field(strict=True, description=f"How many (default {selectors.DEFAULT_LIMIT}, "
                                                                    f"at most {selectors.MAX_LIMIT})")] = None,
        offset: Annotated[int | None, Field(strict=True, description="Skip this many; pass back next_offset")] = None,
    ) -> dict[str, Any]:
        """Full-text search over the messages you may read, best match first. Returns {"results": [{"message",
        "story", "channel", "rank", "highlight"}], "next_offset"}; `highlight` is HTML (escaped text, hits in
        <mark></mark>)."""
        return await call(ctx, _search, q, story, channel, sender, type, after, before, limit, offset)
