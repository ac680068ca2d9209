"""Suggestions as MCP tools (docs/mcp.md): an agent suggests an edit and reads the suggestions of a
document; deciding is for people, in the room or over REST. Same services, same errors as REST."""
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from mythline_site.errors import Invalid, NotFound
from mythline_site.throttling import check_rate
from stories.models import Document
from stories.policies import access_story
from suggestions import services
from suggestions.models import Suggestion

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
StoryArg = Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")]
DocArg = Annotated[str, Field(description="The document's name, e.g. 'main'")]


def _document(story, name) -> Document:
    doc = Document.objects.select_related("story").filter(story=story, name=name).first()
    if doc is None:
        raise NotFound(f"No document '{name}' in story '{story.slug}'.")
    return doc


def _suggest(user, story, document, body) -> dict:
    check_rate("post", f"u{user.pk}")
    access = access_story(user, story, write=True)
    return services.suggestion_json(services.suggestion_create(doc=_document(access.story, document), author=user,
                                                               body=body))


def _list(user, story, document, status) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_story(user, story)
    doc = _document(access.story, document)
    if status is not None and status not in Suggestion.Status.values:
        raise Invalid(f"status must be one of: {', '.join(Suggestion.Status.values)}.", details={"status": "invalid"})
    rows = list(Suggestion.objects.filter(document=doc).select_related("author", "decided_by").order_by("pk")[:1000])
    services.refresh(doc, rows)
    for s in rows:
        s.document = doc
    return {"results": [services.suggestion_json(s) for s in rows if status in (None, s.status)],
            "revision": doc.revision}


def _merge(user, story, document, note) -> dict:
    check_rate("post", f"u{user.pk}")
    access = access_story(user, story, write=True)
    result = services.fork_merge(fork=_document(access.story, document), by=user, note=note or "")
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
        base_revision: Annotated[int | None, Field(description="The revision your edit was made against "
                                                               "(required with edits and find)")] = None,
        edits: Annotated[list[dict[str, Any]] | None, Field(description='[{"from": a, "to": b, "insert": "..."}], '
                                                                        "positions in characters")] = None,
        find: Annotated[str | None, Field(description="Exact text to replace; must match exactly once")] = None,
        replace: Annotated[str | None, Field(description="The new text for `find`")] = None,
        append: Annotated[str | None, Field(description="Text to add at the end")] = None,
        note: Annotated[str | None, Field(description="Why (up to 2000 characters), shown with the suggestion")] = None,
    ) -> dict[str, Any]:
        """Suggest an edit to a document instead of making it: the same body as edit_document, plus a
        note. Nothing changes until a person accepts it. Returns the suggestion (status `open`)."""
        body = {name: value for name, value in (("base_revision", base_revision), ("edits", edits), ("find", find),
                                                ("replace", replace), ("append", append), ("note", note))
                if value is not None}
        return await call(ctx, _suggest, story, document, body)

    @server.tool(annotations=READ)
    async def list_suggestions(
        ctx: Context, story: StoryArg, document: DocArg,
        status: Annotated[str | None, Field(description="open, accepted, rejected or stale")] = None,
    ) -> dict[str, Any]:
        """A document's suggestions, open ones moved to the current revision. Returns {"results", "revision"}."""
        return await call(ctx, _list, story, document, status)
