"""The story bible's MCP tools (docs/mcp.md), registered on the server agents/mcp.py builds: the
same policies, services and selectors as the REST views, with the same error codes."""
from typing import Annotated, Any

from django.conf import settings
from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from bible import selectors, services
from bible.models import BibleEntry
from bible.policies import access_bible
from mythline_site.errors import Invalid
from mythline_site.throttling import check_rate

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
DELETE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)

StoryArg = Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")]
EntryArg = Annotated[str, Field(description="The entry's slug (from list_bible)")]
SceneArg = Annotated[int | None, Field(strict=True, description="The entry as of this scene (1-based, outline "
                                                                "order): its progressions up to it applied")]
KindArg = Annotated[str | None, Field(description="character, place, object, lore or style",
                                      json_schema_extra={"enum": list(BibleEntry.Kind.values)})]
VersionArg = Annotated[int | None, Field(strict=True, description="The version you read: refused with `conflict` "
                                                                  "if the entry changed since")]
MAX_LIST = 500


def _list_bible(user, story, kind, query, scene, limit, offset) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_bible(user, story)
    scene = selectors.parse_scene(scene)
    limit = 100 if limit is None else limit
    offset = 0 if offset is None else offset
    if not 1 <= limit <= MAX_LIST:
        raise Invalid(f"'limit' is 1 to {MAX_LIST}.", details={"limit": f"1 to {MAX_LIST}"})
    max_offset = settings.MYTHLINE_BIBLE_MAX_ENTRIES  # no page starts past the most entries a story holds
    if not 0 <= offset <= max_offset:
        raise Invalid(f"'offset' is 0 to {max_offset}.", details={"offset": f"0 to {max_offset}"})
    qs = selectors.filtered(access.story, kind=kind, query=query).order_by("name_key", "id")
    page = list(qs[offset:offset + limit + 1])
    more = len(page) > limit
    return {"results": [selectors.entry_json(e, story_slug=access.story.slug, scene=scene) for e in page[:limit]],
            "next_offset": offset + limit if more else None}


def _get_entry(user, story, entry, scene) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_bible(user, story)
    return selectors.entry_json(selectors.entry_get(access.story, entry), scene=selectors.parse_scene(scene))


def _upsert_entry(user, story, slug, name, changes, version) -> dict:
    check_rate("write", f"u{user.pk}")
    access = access_bible(user, story, write=True)
    entry, created = services.entry_upsert(story=access.story, by=user, slug=slug, name=name, version=version,
                                           **changes)
    return {"created": created, "entry": selectors.entry_json(selectors.entry_get(access.story, entry.slug))}


def _delete_entry(user, story, entry, version) -> dict:
    check_rate("write", f"u{user.pk}")
    access = access_bible(user, story, write=True)
    services.entry_delete(entry=selectors.entry_get(access.story, entry), by=user, version=version)
    return {"deleted": entry}


def _find_mentions(user, story, text, scene) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_bible(user, story)
    scene = selectors.parse_scene(scene)
    mentions = selectors.entries_mentioned(access.story, text, scene=scene)
    return {"results": [m.json() for m in mentions]}


def register_tools(server, call) -> None:
    @server.tool(annotations=READ)
    async def list_bible(
        ctx: Context, story: StoryArg, kind: KindArg = None,
        query: Annotated[str | None, Field(description="Name, an alias or the description holds this text")] = None,
        scene: SceneArg = None,
        limit: Annotated[int | None, Field(strict=True, description="At most this many (default 100, at most 500)")] = None,
        offset: Annotated[int | None, Field(strict=True, description="Skip this many (the `next_offset` of the "
                                                                     "previous call)")] = None,
    ) -> dict[str, Any]:
        """The story bible's entries (characters, places, objects, lore, style), by name. Returns
        {"results": [entry, ...], "next_offset"}."""
        return await call(ctx, _list_bible, story, kind, query, scene, limit, offset)

    @server.tool(annotations=READ)
    async def get_bible_entry(ctx: Context, story: StoryArg, entry: EntryArg, scene: SceneArg = None) -> dict[str, Any]:
        """One story bible entry: name, aliases, description, fields, progressions, version."""
        return await call(ctx, _get_entry, story, entry, scene)

    @server.tool(annotations=WRITE)
    async def upsert_bible_entry(
        ctx: Context, story: StoryArg,
        name: Annotated[str | None, Field(description="The entry's name (up to 120 characters); finds the entry "
                                                      "to update when no slug is given, any case")] = None,
        slug: Annotated[str | None, Field(description="The entry to update (it must exist); with `name`, renames it")] = None,
        kind: KindArg = None,
        aliases: Annotated[list[str] | None, Field(description="Other names it goes by (replaces the list)")] = None,
        description: Annotated[str | None, Field(description="Who or what it is (replaces the description)")] = None,
        fields: Annotated[dict[str, str] | None, Field(description='Short named values, e.g. {"voice": "clipped"} '
                                                                   "(replaces the fields)")] = None,
        version: VersionArg = None,
    ) -> dict[str, Any]:
        """Create a story bible entry (name and kind required), or update the one with this slug,
        or else with this name: only the arguments given change. Returns {"created", "entry"}."""
        changes = {k: v for k, v in (("kind", kind), ("aliases", aliases), ("description", description),
                                     ("fields", fields)) if v is not None}
        return await call(ctx, _upsert_entry, story, slug, name, changes, version)

    @server.tool(annotations=DELETE)
    async def delete_bible_entry(ctx: Context, story: StoryArg, entry: EntryArg,
                                 version: VersionArg = None) -> dict[str, Any]:
        """Delete a story bible entry and its progressions. Returns {"deleted": slug}."""
        return await call(ctx, _delete_entry, story, entry, version)

    @server.tool(annotations=READ)
    async def find_bible_mentions(
        ctx: Context, story: StoryArg,
        text: Annotated[str, Field(description="Any text (up to 200,000 characters), e.g. a scene or its beats")],
        scene: SceneArg = None,
    ) -> dict[str, Any]:
        """The story bible entries whose name or an alias occurs in `text` as a whole word (any
        case), each with its spans [start, end) in characters. Returns {"results": [{"entry",
        "spans"}, ...]} in the order of first mention."""
        return await call(ctx, _find_mentions, story, text, scene)
