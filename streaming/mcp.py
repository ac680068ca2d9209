"""The MCP tools of streaming (agents/mcp.py registers them): `stream_open`, `stream_append`,
`stream_complete`, `stream_cancel`, through the same services as REST and the socket."""
from typing import Annotated, Any

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from streaming import services

WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
StreamIdArg = Annotated[str, Field(description="The stream's id (stream_open's answer)")]


def _open(user, story, channel, data) -> dict:
    stream, created = services.stream_open(sender=user, story=story, channel=channel, data=data)
    return {"created": created, "stream": services.stream_json(stream)}


def _append(user, stream_id, text, offset) -> dict:
    stream = services.stream_append(user=user, stream_id=stream_id, text=text, offset=offset)
    return {"id": str(stream.id), "length": len(stream.text)}


def _complete(user, stream_id, payload) -> dict:
    result = services.stream_complete(user=user, stream_id=stream_id, payload=payload)
    return {"created": result.created, "message": result.data}


def _cancel(user, stream_id) -> dict:
    stream = services.stream_cancel(user=user, stream_id=stream_id)
    return {"id": str(stream.id), "status": stream.status}


def register_tools(server, call) -> None:
    @server.tool(annotations=WRITE)
    async def stream_open(
        ctx: Context,
        story: Annotated[str, Field(description="The story's slug, e.g. 'the-lighthouse'")],
        channel: Annotated[str, Field(description="The channel's name, e.g. 'general'")],
        msg_type: Annotated[str, Field(description="The final message's msg_type, e.g. 'narration'")],
        payload: Annotated[dict[str, Any] | None, Field(description="The payload without the streamed field")] = None,
        field: Annotated[str | None, Field(description="The payload field the text goes to (default 'text'; for a "
                                                       "built-in type one of its text fields)")] = None,
        id: Annotated[str | None, Field(description="A UUID you choose: the final message's id (safe retries)")] = None,
        reply_to: Annotated[str | None, Field(description="The id of the message this answers")] = None,
        correlation_id: Annotated[str | None, Field(description="Up to 128 characters")] = None,
        audience: Annotated[str | list[str] | None, Field(description="'all' (default), 'agents', 'humans', or "
                                                                      "usernames of participants")] = None,
    ) -> dict[str, Any]:
        """Open a streaming message in a channel where you may post: subscribers watch its text grow as you
        append, and the channel's log gets one message when you complete it. Returns {"created", "stream"}."""
        data = {"msg_type": msg_type}
        for name, value in (("payload", payload), ("field", field), ("id", id), ("reply_to", reply_to),
                            ("correlation_id", correlation_id), ("audience", audience)):
            if value is not None:
                data[name] = value
        return await call(ctx, _open, story, channel, data)

    @server.tool(annotations=WRITE)
    async def stream_append(
        ctx: Context, stream_id: StreamIdArg,
        text: Annotated[str, Field(description="The next chunk of text")],
        offset: Annotated[int | None, Field(strict=True, description="The text's length before this chunk "
                                                                     "(characters): a retried chunk is ignored, a "
                                                                     "gap is a conflict naming the length")] = None,
    ) -> dict[str, Any]:
        """Append text to your open stream. Returns {"id", "length"}."""
        return await call(ctx, _append, stream_id, text, offset)

    @server.tool(annotations=WRITE)
    async def stream_complete(
        ctx: Context, stream_id: StreamIdArg,
        payload: Annotated[dict[str, Any] | None, Field(description="Replaces the payload's other fields")] = None,
    ) -> dict[str, Any]:
        """Store your stream as one message (its id is the stream's). Again: the same message.
        Returns {"created", "message"}."""
        return await call(ctx, _complete, stream_id, payload)

    @server.tool(annotations=WRITE)
    async def stream_cancel(ctx: Context, stream_id: StreamIdArg) -> dict[str, Any]:
        """Cancel your stream (nothing is stored). Returns {"id", "status": "cancelled"}."""
        return await call(ctx, _cancel, stream_id)
