"""Document versions as MCP tools (docs/mcp.md, docs/versions.md), registered on the server
agents/mcp.py builds: the same policies, services and selectors as the REST views, with the same
error codes."""
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from mythline_site.errors import Invalid
from mythline_site.throttling import check_rate
from stories.selectors import get_document
from versions import selectors, services
from versions.policies import access_versions

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
# A restore replaces the current text (the log keeps every revision, so it can be undone).
RESTORE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)

StoryArg = Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")]
DocumentArg = Annotated[str, Field(description="The document's name, e.g. 'main'")]
RevisionArg = Annotated[int | None, Field(strict=True, description="A revision number of the document (0 to its "
                                                                   "current revision)")]
MAX_LIST = 200


def _list_versions(user, story, document) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_versions(user, story)
    doc = get_document(access.story, document, text=False)
    rows = list(selectors.versions_of(doc)[:MAX_LIST])
    return {"results": [selectors.version_json(v, document_name=doc.name) for v in rows],
            "current_revision": doc.revision}


def _name_version(user, story, document, name, revision, note) -> dict:
    check_rate("write", f"u{user.pk}")
    access = access_versions(user, story, write=True)
    doc = get_document(access.story, document, text=False)
    version = services.version_create(doc=doc, by=user, name=name, revision=revision, note=note)
    return selectors.version_json(version)


def _compare(user, story, document, from_revision, to_revision, parent) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_versions(user, story)
    doc = get_document(access.story, document)
    if parent:
        if from_revision is not None or to_revision is not None:
            raise Invalid("Send either parent=true or from_revision (and to_revision), not both.",
                          details={"parent": "with from/to"})
        return selectors.compare_with_parent(doc)
    if from_revision is None:
        raise Invalid("'from_revision' is required (or parent=true for a fork).", details={"from_revision": "required"})
    return selectors.compare_revisions(doc, from_revision, to_revision)


def _restore(user, story, document, revision, version) -> dict:
    check_rate("post", f"u{user.pk}")
    access = access_versions(user, story, write=True)
    doc = get_document(access.story, document, text=False)
    return services.restore(doc=doc, by=user, revision=revision, version=version, via="mcp")


def register_tools(server, call) -> None:
    @server.tool(annotations=READ)
    async def list_versions(ctx: Context, story: StoryArg, document: DocumentArg) -> dict[str, Any]:
        """The named versions of a document (at most 200), newest revision first. Returns
        {"results": [{"id", "document", "revision", "name", "note", "created_by", "created_at"}],
        "current_revision"}."""
        return await call(ctx, _list_versions, story, document)

    @server.tool(annotations=WRITE)
    async def name_version(
        ctx: Context, story: StoryArg, document: DocumentArg,
        name: Annotated[str, Field(description="1-100 characters, unique in the document (any case)")],
        revision: RevisionArg = None,
        note: Annotated[str | None, Field(description="Why this revision matters (up to 2,000 characters)")] = None,
    ) -> dict[str, Any]:
        """Name a revision of a document (default: its current revision), to compare with or restore
        later. Returns the version."""
        return await call(ctx, _name_version, story, document, name, revision, note)

    @server.tool(annotations=READ)
    async def compare_revisions(
        ctx: Context, story: StoryArg, document: DocumentArg,
        from_revision: RevisionArg = None,
        to_revision: Annotated[int | None, Field(strict=True, description="Default: the current revision")] = None,
        parent: Annotated[bool, Field(description="For a fork: compare its parent's current text with the fork's "
                                                  "current text (no revisions then)")] = False,
    ) -> dict[str, Any]:
        """A word-level diff of the document's text at from_revision and at to_revision (or of a fork
        with its parent). Returns {"from", "to", "diff": [{"op": "equal"|"insert"|"delete", "text"}],
        "stats": {"inserted", "deleted", "inserted_words", "deleted_words"}}."""
        return await call(ctx, _compare, story, document, from_revision, to_revision, parent)

    @server.tool(annotations=RESTORE)
    async def restore_revision(
        ctx: Context, story: StoryArg, document: DocumentArg,
        revision: RevisionArg = None,
        version: Annotated[int | None, Field(strict=True, description="Or: a version's id (from list_versions)")] = None,
    ) -> dict[str, Any]:
        """Make the text of an old revision (or of a named version) the current text again, as one new
        change: the log keeps every revision, and everyone editing sees it as a normal change.
        Returns {"document", "revision", "restored_revision", "version", "changed", "change"}
        ("changed": false when the text already was that text)."""
        return await call(ctx, _restore, story, document, revision, version)
