"""The MCP tools of notifications (agents/mcp.py registers them): the same selectors, services,
validation and rate budgets as GET /api/notifications and POST /api/notifications/read."""
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from mythline_site.throttling import check_rate
from notifications import selectors, services
from notifications.api import parse_mark_read

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)


def _list(user, unread_only, before, limit) -> dict:
    check_rate("read", f"u{user.pk}")
    limit = selectors.parse_positive(limit, "limit", default=selectors.DEFAULT_LIMIT, maximum=selectors.MAX_LIMIT)
    page = selectors.page(user, unread_only=bool(unread_only), before=selectors.parse_positive(before, "before"),
                          limit=limit)
    return page


def _mark_read(user, body) -> dict:
    check_rate("write", f"u{user.pk}")
    return {"unread": services.mark_read(user=user, **parse_mark_read(body))}


def register_tools(server, call) -> None:
    @server.tool(annotations=READ)
    async def list_notifications(
        ctx: Context,
        unread_only: Annotated[bool | None, Field(strict=True, description="Only unread ones")] = None,
        before: Annotated[int | None, Field(strict=True, description="Only ids below this: pass back "
                                                                     "`next_before` for the next page")] = None,
        limit: Annotated[int | None, Field(strict=True, description=f"How many (default {selectors.DEFAULT_LIMIT}, "
                                                                    f"at most {selectors.MAX_LIMIT})")] = None,
    ) -> dict[str, Any]:
        """Your notifications (mentions, replies to you, decisions in stories you own), newest first. Returns
        {"results": [{"id", "kind", "story", "channel", "message_id", "actor", "excerpt", "created_at",
        "read_at"}], "unread", "next_before"}. Your inbox also gets a `mention` message for each."""
        return await call(ctx, _list, unread_only, before, limit)

    @server.tool(annotations=WRITE)
    async def mark_notifications_read(
        ctx: Context,
        ids: Annotated[list[int] | None, Field(description="These notification ids (yours; others are "
                                                           "ignored), at most 500")] = None,
        all: Annotated[bool | None, Field(strict=True, description="true: every notification of yours")] = None,
    ) -> dict[str, Any]:
        """Mark notifications read: `ids`, or `all`: true (one of them). Returns {"unread"}."""
        body = {name: value for name, value in (("ids", ids), ("all", all)) if value is not None}
        return await call(ctx, _mark_read, body)
