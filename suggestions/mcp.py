"""Suggestions as MCP tools (docs/mcp.md): an agent suggests an edit and reads the suggestions of a
document; deciding is for people, in the room or over REST. Same services, same errors as REST."""
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from agents.mcp import AppendArg, BaseRevisionArg, EditsArg, FindArg, ReplaceArg, given
from mythline_site.throttling import check_rate
from stories.policies import access_story
from stories.selectors import get_document
from suggestions import selectors, services

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
StoryArg = Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")]
DocArg = Annotated[str, Field(description="The document's name, e.g. 'main'")]


def _suggest(user, story, document, body) -> dict:
    check_rate("post", f"u{user.pk}")
    access = access_story(user, story, write=True)
    return services.suggestion_json(services.suggestion_create(doc=get_document(access.story, document), author=user,
                                                               body=body))


def _list(user, story, document, status) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_story(user, story)
    return selectors.suggestions_json(get_document(access.story, document), status)


def _merge(user, story, document, note) -> dict:
    check_rate("post", f"u{user.pk}")
    access = access_story(user, story, write=True)
    result = services.fork_merge(fork=get_document(access.story, document), by=user, note=note or "")
    return {**result, "suggestions": [services.suggestion_json(s) for s in result["suggestions"]]}


def register_tools(server, call) -> None:
    @server.tool(annotations=WRITE)
    async def merge_fork(
        ctx: Context, story: StoryArg,
        document: Annotated[str, Field(description="The fork to merge back into the document it was forked from")],
        note: Annotated[str | None, Field(description="Shown with each suggestion (up to 2000 characters)")] = None,
    ) -> dict[str, Any]:
        """Merge a fork back into its parent as suggestions (one per changed passage) that people accept
        or reject. Passages the parent changed since the fork are listed in `conflicts`, not suggested.
        Returns {"into", "from", "base_revision", "suggestions", "conflicts"}."""
        return await call(ctx, _merge, story, document, note)

    @server.tool(annotations=WRITE)
    async def suggest_edit(
        ctx: Context, story: StoryArg, document: DocArg,
        base_revision: BaseRevisionArg = None, edits: EditsArg = None, find: FindArg = None,
        replace: ReplaceArg = None, append: AppendArg = None,
        note: Annotated[str | None, Field(description="Why (up to 2000 characters), shown with the suggestion")] = None,
    ) -> dict[str, Any]:
        """Suggest an edit to a document instead of making it: the same body as edit_document, plus a
        note. Nothing changes until a person accepts it. Returns the suggestion (status `open`)."""
        body = given(base_revision=base_revision, edits=edits, find=find, replace=replace, append=append, note=note)
        return await call(ctx, _suggest, story, document, body)

    @server.tool(annotations=READ)
    async def list_suggestions(
        ctx: Context, story: StoryArg, document: DocArg,
        status: Annotated[str | None, Field(description="open, accepted, rejected or stale")] = None,
    ) -> dict[str, Any]:
        """A document's suggestions, open ones moved to the current revision. Returns {"results", "revision"}."""
        return await call(ctx, _list, story, document, status)
