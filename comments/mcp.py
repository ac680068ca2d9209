"""Comments as MCP tools (docs/mcp.md): an agent opens a thread on a passage, replies, and reads a
document's threads. Same services, same errors as REST."""
import functools
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from comments import selectors, services
from mythline_site.throttling import check_rate
from stories.policies import access_story
from stories.selectors import get_document

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
StoryArg = Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")]
DocArg = Annotated[str, Field(description="The document's name, e.g. 'main'")]
BodyArg = Annotated[str, Field(description=f"The comment (1-{services.BODY_MAX} characters)")]


def _add(user, story, document, body) -> dict:
    check_rate("post", f"u{user.pk}")
    access = access_story(user, story, write=True)
    doc = get_document(access.story, document)
    return services.thread_json(services.thread_create(doc=doc, author=user, body=body))


def _reply(user, story, document, thread, body) -> dict:
    check_rate("post", f"u{user.pk}")
    access = access_story(user, story, write=True)
    doc = get_document(access.story, document)
    t = selectors.get_thread(doc, thread)
    services.comment_reply(thread=t, author=user, body={"body": body})
    return selectors.thread_detail_json(doc, t.pk)


def _list(user, story, document, thread, resolved) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_story(user, story)
    doc = get_document(access.story, document)
    if thread is not None:
        return selectors.thread_detail_json(doc, thread)
    return selectors.threads_json(doc, selectors.parse_resolved(resolved))


def _from_by_alias(tool):
    """`from` is a Python keyword: the tool's parameter is `from_`, aliased `from` in the schema, and
    FastMCP calls a tool with each alias as the keyword, so the call is mapped back here. The schema,
    name and description stay the tool's own (functools.wraps: FastMCP reads the wrapped signature)."""
    @functools.wraps(tool)
    async def by_alias(**kwargs):
        kwargs["from_"] = kwargs.pop("from")
        return await tool(**kwargs)

    return by_alias


def register_tools(server, call) -> None:
    @server.tool(annotations=WRITE)
    @_from_by_alias
    async def add_comment(
        ctx: Context, story: StoryArg, document: DocArg,
        from_: Annotated[int, Field(alias="from", description="Start of the passage, in characters")],
        to: Annotated[int, Field(description="End of the passage, in characters (from <= to)")],
        body: BodyArg,
        revision: Annotated[int | None, Field(description="The revision from/to count in (default: current)")] = None,
    ) -> dict[str, Any]:
        """Open a comment thread on a passage of a document (positions in characters of the text at
        `revision`). The anchor follows the text as people edit it. Returns the thread."""
        data = {"from": from_, "to": to, "body": body}
        if revision is not None:
            data["revision"] = revision
        return await call(ctx, _add, story, document, data)

    @server.tool(annotations=WRITE)
    async def reply_to_comment(
        ctx: Context, story: StoryArg, document: DocArg,
        thread: Annotated[int, Field(description="The thread's id")], body: BodyArg,
    ) -> dict[str, Any]:
        """Reply in a comment thread. Returns the thread with every comment."""
        return await call(ctx, _reply, story, document, thread, body)

    @server.tool(annotations=READ)
    async def list_comments(
        ctx: Context, story: StoryArg, document: DocArg,
        thread: Annotated[int | None, Field(description="One thread's id: that thread with every comment")] = None,
        resolved: Annotated[bool | None, Field(description="Only resolved (true) or open (false) threads")] = None,
    ) -> dict[str, Any]:
        """A document's comment threads, anchors moved to the current text, each with its opening
        comment: {"results", "revision"}. With `thread`, that thread with every comment."""
        return await call(ctx, _list, story, document, thread, resolved)
