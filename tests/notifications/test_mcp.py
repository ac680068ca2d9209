"""list_notifications and mark_notifications_read over MCP on a real server (streamable HTTP), and
post_message's `mentions`: the same answers and refusals as REST; an agent's mention also lands in
its inbox as a `mention` message."""
import asyncio

import pytest

from accounts.services import token_issue
from tests.agents.test_mcp import error, http_session, ok
from tests.live import LiveServer
from tests.notifications.conftest import post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def server():
    with LiveServer() as live:
        yield live


def test_notification_tools_over_mcp(server, cast):
    first = post(cast["bob"], payload={"text": "@scribe draft the storm"})
    post(cast["bob"], payload={"text": "and the calm"}, mentions=["scribe"])
    scribe = token_issue(user=cast["scribe"])

    async def go():
        async with http_session(server, scribe) as mcp:
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            assert tools["list_notifications"].annotations.readOnlyHint is True
            assert set(tools["list_notifications"].inputSchema["properties"]) == {"unread_only", "before", "limit"}
            assert set(tools["mark_notifications_read"].inputSchema["properties"]) == {"ids", "all"}
            assert "mentions" in tools["post_message"].inputSchema["properties"]
            body = await ok(mcp, "list_notifications")
            assert body["unread"] == 2 and body["next_before"] is None
            assert [n["excerpt"] for n in body["results"]] == ["and the calm", "@scribe draft the storm"]
            page = await ok(mcp, "list_notifications", limit=1)
            assert len(page["results"]) == 1 and page["next_before"] == body["results"][0]["id"]
            older = await ok(mcp, "list_notifications", limit=1, before=page["next_before"])
            assert older["results"][0]["message_id"] == str(first.message.pk)
            # The inbox copy: a `mention` message from bob.
            inbox = await ok(mcp, "read_messages", story="tale", channel="inbox.scribe", after=0)
            copies = [m for m in inbox["results"] if m["msg_type"] == "mention"]
            assert [m["payload"]["excerpt"] for m in copies] == ["@scribe draft the storm", "and the calm"]
            assert copies[0]["sender"]["username"] == "bob" and copies[0]["payload"]["kind"] == "mention"
            assert (await ok(mcp, "mark_notifications_read", ids=[body["results"][0]["id"]])) == {"unread": 1}
            assert len((await ok(mcp, "list_notifications", unread_only=True))["results"]) == 1
            assert (await ok(mcp, "mark_notifications_read", all=True)) == {"unread": 0}
            bad = await error(mcp, "mark_notifications_read")
            assert bad["code"] == "invalid" and "ids" in bad["details"]
            assert (await error(mcp, "list_notifications", limit=0))["code"] == "invalid"
            # post_message with mentions: stored and returned; an unknown name refuses the post.
            posted = await ok(mcp, "post_message", story="tale", channel="general", msg_type="text",
                              payload={"text": "done, @bob"}, mentions=["carol"])
            assert posted["message"]["mentions"] == ["carol", "bob"]
            bad = await error(mcp, "post_message", story="tale", channel="general", msg_type="text",
                              payload={"text": "x"}, mentions=["ghost"])
            assert bad["code"] == "invalid" and bad["details"] == {"mentions": "must be participants of this story"}
            bad = await error(mcp, "post_message", story="tale", channel="general", msg_type="mention",
                              payload={"text": "x"})
            assert bad["code"] == "invalid" and "msg_type" in bad["details"]

    asyncio.run(go())
