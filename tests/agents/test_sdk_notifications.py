"""The SDK's notifications against a live server (issue 17).

- An @mention reaches the mentioned user's listener on `NOTIFICATIONS` as a typed
  `NotificationEvent`; the feed (`notifications`) is typed, newest first, with the unread count;
  `mark_notifications_read` (ids, or all) answers the count and the listener sees
  `NotificationsRead`.
- Someone else's feed is refused (`SubscriptionError`); a mention in a channel the user may not
  read notifies no one.
- A message's `mentions` are typed on `Message`.
"""
import asyncio

import pytest

from accounts.services import token_issue
from mythline_sdk import (NOTIFICATIONS, AsyncMythlineClient, InvalidRequest, MythlineClient, Notification,
                          NotificationEvent, NotificationPage, NotificationsRead, SubscriptionError)
from tests.live import LiveServer, until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture(scope="module")
def server(django_db_setup):
    with LiveServer(env={"MYTHLINE_LOOP_WINDOW_SECONDS": "0"}) as live:  # stopped, its log removed, after the module
        yield live


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    echo = make_agent("echo", capabilities=["query"], stories=[story])
    return {"alice": token_issue(user=alice), "bob": token_issue(user=bob), "echo": token_issue(user=echo)}




def test_a_mention_arrives_live_and_in_the_feed_and_is_marked_read(server, tale):
    async def go():
        async with AsyncMythlineClient(server.base, tale["bob"]) as bob, \
                AsyncMythlineClient(server.base, tale["alice"]) as alice:
            events: list = []
            listener = bob.listener(NOTIFICATIONS)
            listener.on_notification(lambda e: _append(events, e))
            task = asyncio.create_task(listener.run())
            await until(lambda: listener.connected.is_set() and listener.unread_notifications is not None,
                        what="subscribed")
            assert listener.topics == ["notifications:bob"] and listener.unread_notifications == 0

            first = await alice.post_message("tale", "general", "text", {"text": "@bob the lamp is out"})
            second = await alice.post_message("tale", "general", "text", {"text": "@bob and the oil is gone"})
            await until(lambda: len(events) >= 2, what="two notifications")
            assert all(isinstance(e, NotificationEvent) for e in events)
            assert [e.notification.message_id for e in events] == [first.id, second.id]
            assert [e.unread for e in events] == [1, 2]
            note = events[0].notification
            assert isinstance(note, Notification) and note.kind == "mention" and not note.read
            assert (note.story, note.channel, note.actor["username"]) == ("tale", "general", "alice")
            assert "the lamp is out" in note.excerpt
            assert first.mentions == ["bob"]  # the names its text @mentions, stored with it

            page = await bob.notifications()
            assert isinstance(page, NotificationPage) and page.unread == 2
            assert [n.message_id for n in page.results] == [second.id, first.id]  # newest first
            assert await bob.mark_notifications_read([page.results[-1].id]) == 1
            assert [n.message_id for n in (await bob.notifications(unread_only=True)).results] == [second.id]
            assert len((await bob.notifications(limit=1)).results) == 1
            assert await bob.mark_notifications_read(all=True) == 0
            await until(lambda: sum(isinstance(e, NotificationsRead) for e in events) >= 2, what="read frames")
            reads = [e for e in events if isinstance(e, NotificationsRead)]
            assert reads[0].ids == [page.results[-1].id] and reads[0].unread == 1
            assert reads[1].ids == "all" and reads[1].unread == 0
            assert all(n.read for n in (await bob.notifications()).results)
            with pytest.raises(ValueError):
                await bob.mark_notifications_read()
            listener.stop()
            await task

    asyncio.run(go())


async def _append(into, value):
    into.append(value)


def test_someone_elses_feed_is_refused_and_a_hidden_mention_notifies_no_one(server, tale):
    async def go():
        async with AsyncMythlineClient(server.base, tale["bob"]) as bob:
            with pytest.raises(SubscriptionError):
                await asyncio.wait_for(bob.listener("notifications:alice").run(), 10)

    asyncio.run(go())
    with MythlineClient(server.base, tale["alice"]) as alice, MythlineClient(server.base, tale["bob"]) as bob:
        alice.request("POST", "/api/stories/tale/channels", json={"name": "secrets", "kind": "private"})
        alice.post_message("tale", "secrets", "text", {"text": "@bob must not hear of this"})
        assert bob.notifications().results == [] and bob.notifications().unread == 0
        with pytest.raises(InvalidRequest):
            bob.notifications(limit=0)
    # An agent names whom it notifies with `mentions`, no @ in its text needed.
    with MythlineClient(server.base, tale["echo"]) as echo, MythlineClient(server.base, tale["bob"]) as bob:
        posted = echo.post_message("tale", "general", "text", {"text": "The plan is ready."}, mentions=["bob"])
        assert posted.mentions == ["bob"]
        [note] = bob.notifications().results
        assert (note.kind, note.message_id, note.actor["username"]) == ("mention", posted.id, "echo")
        with pytest.raises(InvalidRequest):
            echo.post_message("tale", "general", "text", {"text": "Who?"}, mentions=["nobody-here"])
