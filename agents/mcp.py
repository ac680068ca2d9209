"""MCP (Model Context Protocol, SPEC 12): the same services as REST, as tools for agents whose
runtime speaks MCP. See docs/mcp.md.

Two transports share one tool set (`build_server`):

- streamable HTTP at `/mcp` (`mcp_http_app`, mounted beside Django in mythline_site/asgi.py):
  `Authorization: Bearer <token>` on every request, checked here before the MCP transport sees
  it (401 JSON otherwise). The transport runs stateless with JSON responses: every POST stands
  alone, so any server process behind a load balancer can answer it and nothing is kept per
  client between requests.
- stdio (`python manage.py mcp_stdio --agent NAME`): one local agent process, acting as that agent.

The caller is always the authenticated user (the token's, or the stdio command's agent), never
an argument: a tool call naming an argument the tool does not take (`sender`, say) is refused
with `invalid`. Tools call the same policies, services and selectors as the REST views, in a
worker thread (`database_sync_to_async`), with the same per-sender rate limits. Results are
structured content (JSON objects); errors are results with `isError: true` whose structured
content is the REST error body `{"error": {"code", "message", "details"}}`, with the REST codes.
"""
import asyncio
import json
import logging
from typing import Annotated, Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http.request import split_domain_port, validate_host
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from accounts.authentication import bearer_from_header, user_for_token
from agents.models import AgentProfile
from agents.services import agent_json, agent_set_status
from messaging import selectors, services
from messaging.policies import access_channel
from messaging.schemas import BUILT_IN_TYPES, payload_reference
from messaging.serializers import channel_json
from mythline_site import metrics
from mythline_site.errors import Invalid, MythlineError, NotFound, Unauthenticated, error_body
from mythline_site.throttling import check_rate
from stories import documents
from stories.policies import access_story
from stories.selectors import get_document

logger = logging.getLogger("mythline.mcp")
User = get_user_model()

INSTRUCTIONS = """\
Mythline: humans and AI agents writing stories together. Stories have channels (public, private,
presence, and an inbox per agent, `inbox.<agent>`); everyone posts structured messages (msg_type +
JSON payload: text, scene_plan, narration, dialogue, feedback, query, task_update, proposal, vote,
decision, or your own) and co-edits the story's documents. You act as the user of your token.
Read your inbox with read_messages(story, "inbox.<you>", after=N) and pass back `next_after`;
reply with post_message(..., reply_to=<message id>). Give every post an `id` (a UUID you choose)
so a retry after a lost answer returns the original instead of posting twice. Posting the same
payload again, or replying back and forth with other agents without a human, is refused with
`loop_detected`."""

# post_message's description: every built-in msg_type with its payload fields, from messaging/schemas.py.
POST_MESSAGE_DESCRIPTION = f"""\
Post a message to a channel as yourself. Returns {{"created", "message"}}; "created" is false
when an earlier post with the same id was returned instead.

Built-in msg_types and their payload fields (`?`: optional; extra keys are kept):
{payload_reference()}
Any other msg_type (your own, 1-64 of a-z 0-9 _ . -, starting with a letter) is accepted too,
with any JSON object as its payload, except the relation types, which need `relates_to` (the
id of a message of the same channel): edit {{payload (the new payload, your own message)}},
delete {{reason?}} (yours; the story owner deletes any), reaction {{key (1-32 characters)}}; taking
back a reaction is a delete relating to it. edit_message, delete_message and react do the same."""

# The values an agent reports (idle, working, waiting, error, offline), listed in the tool's schema;
# `agent_set_status` checks them, with the same answer as over REST.
STATUSES = Annotated[str, Field(description="What you are doing now",
                                json_schema_extra={"enum": list(AgentProfile.Status.values)})]
READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)

# Argument descriptions, shown to the model in each tool's input schema.
StoryArg = Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")]
ChannelArg = Annotated[str, Field(description="The channel's name, e.g. 'general' or 'inbox.<agent>'")]
MessageIdArg = Annotated[str, Field(description="The id of a message of this channel")]
RelationIdArg = Annotated[str | None, Field(description="A UUID you choose, for safe retries")]
LimitArg = Annotated[int | None, Field(description="At most this many messages (default 100, at most 500)")]
# An edit's body, as edit_document takes it (suggest_edit, in suggestions/mcp.py, takes the same).
BaseRevisionArg = Annotated[int | None, Field(description="The revision your edit was made against "
                                                          "(required with edits and find)")]
EditsArg = Annotated[list[dict[str, Any]] | None, Field(description='[{"from": a, "to": b, "insert": "..."}], '
                                                                   "positions in characters")]
FindArg = Annotated[str | None, Field(description="Exact text to replace; must match exactly once")]
ReplaceArg = Annotated[str | None, Field(description="The new text for `find`")]
AppendArg = Annotated[str | None, Field(description="Text to add at the end")]


def given(**arguments) -> dict:
    """The arguments the caller gave, as a body (a tool's None stands for left out)."""
    return {name: value for name, value in arguments.items() if value is not None}


def _text_result(data: dict, *, is_error: bool) -> CallToolResult:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structuredContent=data, isError=is_error)


def error_result(error: MythlineError) -> CallToolResult:
    """A tool error in the REST envelope and codes."""
    metrics.ERRORS.labels(error.code, "mcp").inc()
    return _text_result(error_body(error.code, error.message, error.details), is_error=True)


def _validation_details(exc: ValidationError) -> dict:
    details = {}
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "arguments"
        details.setdefault(field, err["msg"])
    return details


class MythlineMCP(FastMCP):
    """FastMCP whose tool errors carry the REST error codes, and which refuses unknown arguments
    (FastMCP would drop them silently: `sender` must not look as if it were accepted)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._arguments: dict[str, set[str]] | None = None

    async def list_tools(self):
        tools = await super().list_tools()
        for tool in tools:
            tool.inputSchema.setdefault("additionalProperties", False)
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]):
        if self._arguments is None:
            self._arguments = {t.name: set(t.inputSchema.get("properties", {})) for t in await super().list_tools()}
        if name not in self._arguments:
            return error_result(NotFound(f"No tool named '{name}'.", details={"tool": name}))
        unknown = sorted(set(arguments or {}) - self._arguments[name])
        if unknown:
            details = {arg: "unknown argument" for arg in unknown}
            if "sender" in unknown:
                details["sender"] = "the sender is always the authenticated user; it is not an argument"
            return error_result(Invalid(f"'{name}' takes no argument {', '.join(repr(a) for a in unknown)}.",
                                        details=details))
        try:
            _, structured = await super().call_tool(name, arguments or {})
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, MythlineError):
                return error_result(cause)
            if isinstance(cause, ValidationError):
                return error_result(Invalid("The arguments are invalid.", details=_validation_details(cause)))
            logger.error("MCP tool %s failed", name, exc_info=cause or exc)
            metrics.ERRORS.labels("internal", "mcp").inc()
            return _text_result(error_body("internal", "The tool failed unexpectedly; the server log has the details."),
                                is_error=True)
        return _text_result(structured, is_error=False)


# --- the tools' bodies: plain sync functions of (user, arguments), as the REST views are -------

def _post_message(user, story, channel, data) -> dict:
    result = services.message_publish(sender=user, story=story, channel=channel, data=data, via="mcp")
    return {"created": result.created, "message": result.data}


def _post_messages(user, story, channel, messages) -> dict:
    items = services.message_publish_batch(sender=user, story=story, channel=channel, items=messages, via="mcp")
    return {"results": [item.as_json() for item in items]}


def _read_messages(user, story, channel, after, msg_type, limit) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_channel(user, story, channel)
    types = [t for t in (msg_type or "").split(",") if t] or None
    return selectors.messages_page(access, user, after=selectors.parse_int(after, "after"),
                                   limit=selectors.parse_limit(limit), msg_types=types)


def _channel_history(user, story, channel, limit) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_channel(user, story, channel)
    limit = selectors.parse_limit(50 if limit is None else limit)
    page = selectors.messages_page(access, user, before=access.channel.last_seq + 1, limit=limit)
    return {"results": page["results"][::-1], "last_seq": page["last_seq"],
            "has_more": page["next_before"] is not None}


def _thread(user, message_id) -> dict:
    check_rate("read", f"u{user.pk}")
    return selectors.thread_for_reader(user, message_id)


def _activity(user, story, after, limit) -> dict:
    check_rate("read", f"u{user.pk}")
    story_obj = access_story(user, story).story if story else None
    return selectors.activity_page(user, story=story_obj, after=after, limit=selectors.parse_limit(limit))


def _list_channels(user, story) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_story(user, story)
    return {"results": [channel_json(c, story_slug=access.story.slug)
                        for c in selectors.channels_for_reader(user, access.story)]}


def _get_document(user, story, document, revision) -> dict:
    check_rate("read", f"u{user.pk}")
    access = access_story(user, story)
    doc = get_document(access.story, document)
    if revision is None:
        return documents.document_json(doc)
    revision = selectors.parse_int(revision, "revision")
    return documents.document_json(doc, text=documents.text_at(doc, revision), revision=revision)


def _edit_document(user, story, document, body) -> dict:
    check_rate("post", f"u{user.pk}")
    access = access_story(user, story, write=True)
    doc = get_document(access.story, document)
    from suggestions.services import edit_or_suggest, suggestion_json  # suggestions build on documents

    change, suggestion = edit_or_suggest(doc=doc, author=user, body=body, via="mcp")
    if suggestion is not None:  # agents suggest in this story: a person decides
        return {"revision": None, "change": None, "suggestion": suggestion_json(suggestion)}
    return {"revision": change.revision, "change": documents.change_json(change, user)}


def _set_status(user, status, task, progress) -> dict:
    check_rate("write", f"u{user.pk}")
    # The service checks the caller and every value; a task left out (null) is no task.
    agent_set_status(agent=user, status=status, task="" if task is None else task, progress=progress)
    return agent_json(user)


# --- the server -----------------------------------------------------------------------------------

def build_server(*, agent=None) -> MythlineMCP:
    """The MCP server with every tool. With `agent` (stdio) every call acts as that agent;
    otherwise (HTTP) as the user `mcp_http_app` authenticated for the request."""
    server = MythlineMCP(
        name="mythline", instructions=INSTRUCTIONS, stateless_http=True, json_response=True,
        log_level="WARNING", max_request_body_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        # Hosts are checked by mcp_http_app against ALLOWED_HOSTS, as Django does for every other path.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    agent_id = agent.pk if agent is not None else None

    def load_agent():
        user = User.objects.select_related("agent_profile").filter(pk=agent_id, is_active=True).first()
        if user is None:
            raise Unauthenticated("The agent this MCP server runs as no longer exists or was deactivated.")
        return user

    async def call(ctx: Context, fn, *args) -> dict:
        """Run `fn(user, *args)` as the caller, in a worker thread (the ORM is synchronous)."""
        if agent_id is not None:
            return await database_sync_to_async(lambda: fn(load_agent(), *args))()
        request = ctx.request_context.request
        user = request.scope.get("mythline.user") if request is not None else None
        if user is None:  # only mcp_http_app serves this server over HTTP, and it authenticates
            raise Unauthenticated()
        return await database_sync_to_async(fn)(user, *args)

    @server.tool(annotations=WRITE, description=POST_MESSAGE_DESCRIPTION)
    async def post_message(
        ctx: Context, story: StoryArg, channel: ChannelArg,
        msg_type: Annotated[str, Field(description=f"{', '.join(BUILT_IN_TYPES)}, or your own type")],
        payload: Annotated[dict[str, Any], Field(description="A JSON object; each built-in type's fields are in "
                                                             "the tool description, any other type takes any object")],
        id: Annotated[str | None, Field(description="A UUID you choose: posting again with the same id and "
                                                    "content returns the original (safe retries)")] = None,
        reply_to: Annotated[str | None, Field(description="The id of the message this answers")] = None,
        correlation_id: Annotated[str | None, Field(description="Up to 128 characters, to tie messages together")] = None,
        audience: Annotated[str | list[str] | None, Field(
            description="'all' (default), 'agents', 'humans', or a list of up to 100 usernames of participants "
                        "of this story; any other username refuses the post with one generic error "
                        "(audience: 'must be participants of this story'), naming none")] = None,
        relates_to: Annotated[str | None, Field(description="With msg_type edit, delete or reaction: the id of the "
                                                            "message (same channel) it relates to")] = None,
        mentions: Annotated[list[str] | None, Field(
            description="Usernames of participants to notify (at most 50), besides the @names in your text; "
                        "any other username refuses the post (mentions: 'must be participants of this "
                        "story')")] = None,
    ) -> dict[str, Any]:
        """Post a message to a channel as yourself (the description is POST_MESSAGE_DESCRIPTION)."""
        data = {"msg_type": msg_type, "payload": payload}
        for name, value in (("id", id), ("reply_to", reply_to), ("correlation_id", correlation_id),
                            ("audience", audience), ("relates_to", relates_to), ("mentions", mentions)):
            if value is not None:
                data[name] = value
        return await call(ctx, _post_message, story, channel, data)

    @server.tool(annotations=WRITE)
    async def post_messages(
        ctx: Context, story: StoryArg, channel: ChannelArg,
        # list[Any], not list[dict]: an item that is not an object is that item's own 400, as over REST.
        messages: Annotated[list[Any], Field(
            description="1 to MYTHLINE_BATCH_MAX_MESSAGES (100 by default) message objects, each with the fields "
                        "of post_message (msg_type, payload, and any of id, reply_to, correlation_id, audience, "
                        "relates_to, mentions); give each an id to make a retry safe; an item that is not an "
                        "object is refused on its own (status 400)")],
    ) -> dict[str, Any]:
        """Post several messages to one channel at once: one transaction, consecutive seqs in their order.
        Each is checked as if posted alone and answered on its own: {"results": [{"status": 201 or 200,
        "message": ...} or {"status": 4xx, "error": {code, message, details}}, ...]}, one per message in
        order; a refused message does not refuse the others. What a message names (reply_to, relates_to)
        must be stored before the batch."""
        return await call(ctx, _post_messages, story, channel, messages)

    # Relations (docs/protocol.md 4.4): each is post_message with a reserved msg_type and `relates_to`.
    @server.tool(annotations=WRITE)
    async def edit_message(
        ctx: Context, story: StoryArg, channel: ChannelArg, message_id: MessageIdArg,
        payload: Annotated[dict[str, Any], Field(description="The new payload, valid for the message's msg_type")],
        id: RelationIdArg = None,
    ) -> dict[str, Any]:
        """Edit one of your own messages: a new `edit` message in the log; reads show the new payload and
        `edited_at`. Returns {"created", "message"} (message.target: the edited message as it is now)."""
        data = {"msg_type": "edit", "payload": {"payload": payload}, "relates_to": message_id, **given(id=id)}
        return await call(ctx, _post_message, story, channel, data)

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False))
    async def delete_message(
        ctx: Context, story: StoryArg, channel: ChannelArg, message_id: MessageIdArg,
        reason: Annotated[str | None, Field(description="Why, at most 500 characters")] = None,
        id: RelationIdArg = None,
    ) -> dict[str, Any]:
        """Delete your own message (the story owner deletes any), or take back your reaction (its id): a new
        `delete` message in the log; reads show the message with `deleted` true and a null payload.
        Returns {"created", "message"}; "created" is false when it was deleted already."""
        data = {"msg_type": "delete", "payload": given(reason=reason), "relates_to": message_id, **given(id=id)}
        return await call(ctx, _post_message, story, channel, data)

    @server.tool(annotations=WRITE)
    async def react(
        ctx: Context, story: StoryArg, channel: ChannelArg, message_id: MessageIdArg,
        key: Annotated[str, Field(description="An emoji or short text, 1-32 characters")],
        id: RelationIdArg = None,
    ) -> dict[str, Any]:
        """React to a message: a new `reaction` message in the log; reads count reactions by key. Once per
        key: reacting again returns the earlier one ("created": false). Take it back with delete_message."""
        data = {"msg_type": "reaction", "payload": {"key": key}, "relates_to": message_id, **given(id=id)}
        return await call(ctx, _post_message, story, channel, data)

    @server.tool(annotations=READ)
    async def read_messages(
        ctx: Context, story: StoryArg, channel: ChannelArg,
        after: Annotated[int | None, Field(description="Only messages with seq > after (default 0); pass back "
                                                       "`next_after` to continue")] = None,
        msg_type: Annotated[str | None, Field(description="Only this msg_type (or a comma-separated list)")] = None,
        limit: LimitArg = None,
    ) -> dict[str, Any]:
        """Read a channel's log in order, from seq > after. Returns {"results", "next_after", "last_seq"}."""
        return await call(ctx, _read_messages, story, channel, after, msg_type, limit)

    @server.tool(annotations=READ)
    async def get_channel_history(
        ctx: Context, story: StoryArg, channel: ChannelArg,
        limit: Annotated[int | None, Field(description="How many of the latest messages (default 50, at most 500)")] = None,
    ) -> dict[str, Any]:
        """The latest messages of a channel, oldest first. Returns {"results", "last_seq", "has_more"}."""
        return await call(ctx, _channel_history, story, channel, limit)

    @server.tool(annotations=READ)
    async def get_conversation_thread(
        ctx: Context, message_id: Annotated[str, Field(description="Any message of the thread")],
    ) -> dict[str, Any]:
        """The whole reply tree of a message, from its root, oldest first. Returns {"root", "results"}."""
        return await call(ctx, _thread, message_id)

    @server.tool(annotations=READ)
    async def get_all_activity(
        ctx: Context,
        story: Annotated[str | None, Field(description="One story's slug; default: every story you take part in")] = None,
        after: Annotated[str | None, Field(description="The `next_after` cursor of the previous call")] = None,
        limit: LimitArg = None,
    ) -> dict[str, Any]:
        """Every message you may read across channels, oldest first. Returns {"results", "next_after"}."""
        return await call(ctx, _activity, story, after, limit)

    @server.tool(annotations=READ)
    async def list_channels(ctx: Context, story: StoryArg) -> dict[str, Any]:
        """The channels of a story that you may read. Returns {"results": [channel, ...]}."""
        return await call(ctx, _list_channels, story)

    @server.tool(annotations=READ)
    async def get_document(
        ctx: Context, story: StoryArg,
        document: Annotated[str, Field(description="The document's name (default 'main')")] = "main",
        revision: Annotated[int | None, Field(description="The text at this revision (default: the current one)")] = None,
    ) -> dict[str, Any]:
        """A co-edited document: its text and revision (positions in edits count characters)."""
        return await call(ctx, _get_document, story, document, revision)

    @server.tool(annotations=WRITE, description=(
        "Edit a document with one of: edits (+ base_revision), find/replace (+ base_revision), or append. An "
        "edit against an older revision is mapped through later changes; if they touched its range the answer "
        "is `conflict` with the current revision. Bounds: at most "
        f"{settings.MYTHLINE_DOC_MAX_EDITS} edits per call (more: `payload_too_large`, split them into several "
        f"calls), and base_revision at most {settings.MYTHLINE_DOC_MAX_LAG} revisions behind the current one "
        "(older: `conflict`; read the document again and redo the edit). Returns {\"revision\", \"change\"}."))
    async def edit_document(
        ctx: Context, story: StoryArg,
        document: Annotated[str, Field(description="The document's name, e.g. 'main'")],
        base_revision: BaseRevisionArg = None, edits: EditsArg = None, find: FindArg = None,
        replace: ReplaceArg = None, append: AppendArg = None,
    ) -> dict[str, Any]:
        # The description (above) states the bounds from the settings.
        body = given(base_revision=base_revision, edits=edits, find=find, replace=replace, append=append)
        return await call(ctx, _edit_document, story, document, body)

    @server.tool(annotations=WRITE)
    async def set_status(
        ctx: Context, status: STATUSES,
        task: Annotated[str | None, Field(description="What you are working on (up to 500 characters)")] = None,
        # strict: a boolean is not a fraction (a lax float would take `true` as 1.0), as over REST.
        progress: Annotated[float | None, Field(strict=True, description="From 0 to 1")] = None,
    ) -> dict[str, Any]:
        """Report your status, shown in every story room you are in. Returns your agent profile."""
        return await call(ctx, _set_status, status, task, progress)

    from outline.mcp import register_tools as register_outline_tools  # the outline's tools (outline/mcp.py)

    register_outline_tools(server, call)
    from bible.mcp import register_tools as register_bible_tools  # the story bible's tools (bible/mcp.py)

    register_bible_tools(server, call)
    from versions.mcp import register_tools as register_version_tools  # document versions (versions/mcp.py)

    register_version_tools(server, call)
    from suggestions.mcp import register_tools as register_suggestion_tools  # suggest_edit (suggestions/mcp.py)

    register_suggestion_tools(server, call)
    from comments.mcp import register_tools as register_comment_tools  # add_comment ... (comments/mcp.py)

    register_comment_tools(server, call)
    from exports.mcp import register_tools as register_export_tools  # export_document (exports/mcp.py)

    register_export_tools(server, call)
    from search.mcp import register_tools as register_search_tools  # search_messages (search/mcp.py)

    register_search_tools(server, call)
    from notifications.mcp import register_tools as register_notification_tools  # (notifications/mcp.py)

    register_notification_tools(server, call)
    from streaming.mcp import register_tools as register_stream_tools  # (streaming/mcp.py)

    register_stream_tools(server, call)
    return server


# --- streamable HTTP at /mcp ------------------------------------------------------------------------

def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _json_response(send, status: int, body: dict, headers=()):
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": raw})


class MCPHttpApp:
    """ASGI app for `/mcp`: the host and the bearer token first, then the MCP transport.

    The MCP session manager needs a running task group (normally from the ASGI lifespan, which
    Daphne does not send): one is started on the first request in each event loop and lives as
    long as the loop.
    """

    def __init__(self):
        self._managers: dict = {}  # event loop -> (future of its session manager, the task running it)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return None
        domain, _ = split_domain_port(_header(scope, b"host") or "")
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return await _json_response(send, 400, error_body("invalid", "This host is not allowed."))
        raw = bearer_from_header(_header(scope, b"authorization"))
        user = await database_sync_to_async(user_for_token)(raw) if raw else None
        if user is None:
            message = "Unknown or revoked token." if raw else "Send 'Authorization: Bearer <token>'."
            return await _json_response(send, 401, error_body("unauthenticated", message),
                                        headers=[(b"www-authenticate", b'Bearer realm="mcp"')])
        manager = await self._manager()
        await manager.handle_request({**scope, "mythline.user": user}, receive, send)

    async def _manager(self):
        loop = asyncio.get_running_loop()
        if loop not in self._managers:
            for old in [old for old in self._managers if old.is_closed()]:
                del self._managers[old]  # tests run an event loop each
            ready = loop.create_future()
            self._managers[loop] = (ready, loop.create_task(self._run(loop, ready)))  # a strong reference
        return await asyncio.shield(self._managers[loop][0])

    async def _run(self, loop, ready):
        try:
            server = build_server()
            server.streamable_http_app()  # creates the session manager
            manager = server.session_manager
            async with manager.run():
                ready.set_result(manager)
                await asyncio.Event().wait()  # as long as the loop runs
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
                self._managers.pop(loop, None)  # the next request tries again
            raise


mcp_http_app = MCPHttpApp()
