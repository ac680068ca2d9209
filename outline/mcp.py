"""The outline's MCP tools (docs/mcp.md), registered on the server agents/mcp.py builds: the same
policies, services and selectors as the REST views, with the same error codes."""
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from mythline_site.throttling import check_rate
from outline import selectors, services
from outline.policies import access_outline

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
DELETE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)

StoryArg = Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")]
SceneArg = Annotated[int, Field(strict=True, description="The scene's id (from get_outline)")]
VersionArg = Annotated[int | None, Field(strict=True, description="The version you read: refused with `conflict` "
                                                                  "if the scene changed since")]
RangeArg = Annotated[dict[str, Any] | None, Field(
    description='The document range the scene became: {"document": "main", "from": a, "to": b, '
                '"revision": r}, positions in characters of the text at revision r (default: the current one)')]
STATUS = Annotated[str | None, Field(description="planned, drafting, drafted or revised",
                                     json_schema_extra={"enum": services.STATUSES})]


def _scene(user, story, scene_id, *, write):
    access = access_outline(user, story, write=write)
    scene = selectors.get_scene(access.story, scene_id)
    scene.story = access.story
    return scene


def _get_outline(user, story) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_outline(user, story)
    results = selectors.outline_json(access.story)
    return {"results": results, "count": len(results)}


def _add_scene(user, story, data) -> dict:
    check_rate("write", f"u{user.pk}")
    access = access_outline(user, story, write=True)
    return selectors.scene_detail_json(services.scene_create(story=access.story, by=user, data=data))


def _update_scene(user, story, scene_id, data) -> dict:
    check_rate("write", f"u{user.pk}")
    scene = _scene(user, story, scene_id, write=True)
    return selectors.scene_detail_json(services.scene_update(scene=scene, by=user, data=data))


def _move_scene(user, story, scene_id, position, version) -> dict:
    check_rate("write", f"u{user.pk}")
    scene = _scene(user, story, scene_id, write=True)
    return selectors.scene_detail_json(services.scene_move(scene=scene, by=user, position=position, version=version))


def _delete_scene(user, story, scene_id, version) -> dict:
    check_rate("write", f"u{user.pk}")
    scene = _scene(user, story, scene_id, write=True)
    services.scene_delete(scene=scene, by=user, version=version)
    return {"deleted": scene_id}


def _given(**values) -> dict:
    return {name: value for name, value in values.items() if value is not None}


def register_tools(server, call) -> None:
    """Add the outline tools to `server`; `call(ctx, fn, *args)` runs fn(user, *args) as the caller."""

    @server.tool(annotations=READ)
    async def get_outline(ctx: Context, story: StoryArg) -> dict[str, Any]:
        """The story's outline: its scenes in order (position = scene number), each with beats, status,
        pov, characters, version, and the document range it became, mapped to the current text
        (`gone` when that text was deleted). Returns {"results", "count"}."""
        return await call(ctx, _get_outline, story)

    @server.tool(annotations=WRITE)
    async def add_outline_scene(
        ctx: Context, story: StoryArg,
        title: Annotated[str, Field(description="Up to 200 characters")],
        summary: Annotated[str | None, Field(description="Up to 10,000 characters")] = None,
        beats: Annotated[list[str] | None, Field(description="Short strings, in order (at most 50 by default)")] = None,
        status: STATUS = None,
        pov: Annotated[str | None, Field(description="Whose point of view (a name)")] = None,
        characters: Annotated[list[str] | None, Field(description="Names of the characters in the scene")] = None,
        position: Annotated[int | None, Field(strict=True, description="Insert at this place (1..N+1); "
                                                                       "default: at the end")] = None,
        range: RangeArg = None,
    ) -> dict[str, Any]:
        """Add a scene to the story's outline (editors and the owner). Returns the scene."""
        data = _given(title=title, summary=summary, beats=beats, status=status, pov=pov, characters=characters,
                      position=position, range=range)
        return await call(ctx, _add_scene, story, data)

    @server.tool(annotations=WRITE)
    async def update_outline_scene(
        ctx: Context, story: StoryArg, scene: SceneArg,
        title: Annotated[str | None, Field(description="Up to 200 characters")] = None,
        summary: Annotated[str | None, Field(description="Up to 10,000 characters")] = None,
        beats: Annotated[list[str] | None, Field(description="The whole new list of beats")] = None,
        status: STATUS = None,
        pov: Annotated[str | None, Field(description="Whose point of view (a name; '' for none)")] = None,
        characters: Annotated[list[str] | None, Field(description="The whole new list of names")] = None,
        range: RangeArg = None,
        clear_range: Annotated[bool, Field(description="Forget the scene's document range")] = False,
        version: VersionArg = None,
    ) -> dict[str, Any]:
        """Change fields of a scene (only those given), e.g. its status once drafted and the document
        range it was written into. Returns the scene with its new version."""
        data = _given(title=title, summary=summary, beats=beats, status=status, pov=pov, characters=characters,
                      range=range, version=version)
        if clear_range:
            data["range"] = None
        return await call(ctx, _update_scene, story, scene, data)

    @server.tool(annotations=WRITE)
    async def move_outline_scene(
        ctx: Context, story: StoryArg, scene: SceneArg,
        position: Annotated[int, Field(strict=True, description="The new place, 1..N")],
        version: VersionArg = None,
    ) -> dict[str, Any]:
        """Move a scene to another place in the outline; the scenes between shift by one. Returns the scene."""
        return await call(ctx, _move_scene, story, scene, position, version)

    @server.tool(annotations=DELETE)
    async def delete_outline_scene(ctx: Context, story: StoryArg, scene: SceneArg,
                                   version: VersionArg = None) -> dict[str, Any]:
        """Delete a scene from the outline; the scenes after it move up one place. Returns {"deleted": id}."""
        return await call(ctx, _delete_scene, story, scene, version)
