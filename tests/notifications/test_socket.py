"""The `notifications:<username>` topic on the socket, in process (tests/notifications/test_live.py
runs it on a real server): one's own feed with any username, nobody else's, unsubscribing, and
a story topic of the same name untouched."""
import asyncio

import pytest
from channels.db import database_sync_to_async

from accounts.services import token_issue
from notifications import services
from tests.messaging.test_consumers import Client

pytestmark = pytest.mark.django_db(transaction=True)


def test_own_feed_for_any_username_and_nobody_elses(make_user, make_story):
    odd = make_user("mía+x@home.org")  # not a valid layer group name: the topic must not need one
    tale = make_user("tale")  # a username that is also a story slug
    make_story(tale, slug="tale")
    for user in (odd, tale):
        user.test_token = token_issue(user=user)

    async def go():
        async with Client(odd) as a, Client(tale) as t:
            await a.recv(), await t.recv()  # welcome
            ok = await a.request(type="subscribe", topic="notifications:mía+x@home.org")
            assert ok["type"] == "subscribed" and ok["unread"] == 0, ok
            await database_sync_to_async(services.notify)(user=odd, kind="webhook.disabled", excerpt="off")
            frame = await a.until("notification")
            assert frame["unread"] == 1 and frame["notification"]["excerpt"] == "off"
            for topic in ("notifications:tale", "notifications:", "notifications:a/b"):
                refused = await a.request(type="subscribe", topic=topic)
                assert refused["type"] == "error" and refused["code"] in ("forbidden", "invalid"), refused
            assert (await a.request(type="unsubscribe", topic="notifications:mía+x@home.org"))["type"] == \
                "unsubscribed"
            await database_sync_to_async(services.notify)(user=odd, kind="webhook.disabled")
            await a.nothing()
            # A story topic and a notifications topic of the same name live side by side.
            assert (await t.request(type="subscribe", topic="story:tale"))["type"] == "subscribed"
            assert (await t.request(type="subscribe", topic="notifications:tale"))["type"] == "subscribed"
            assert (await t.request(type="unsubscribe", topic="notifications:tale"))["type"] == "unsubscribed"
            assert (await t.request(type="unsubscribe", topic="story:tale"))["type"] == "unsubscribed"

    asyncio.run(go())
