"""`comment`, `comment.reply` and `comment.resolve` over the socket (comments/frames.py): real sockets
through the ASGI app on the configured channel layer (in-memory, or Redis with REDIS_URL), a real
database. The answer goes to the sender, the story event to every subscriber once; positions count
UTF-16 units; every refusal stores nothing and sends no event."""
import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import close_old_connections

from comments.models import Comment, CommentThread
from stories.documents import document_edit
from tests.annotating import FRAMES_TEXT as TEXT, FRAMES_TOPIC as TOPIC, events, frames_world, opened, units

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(make_user, make_story, make_agent):
    return frames_world(make_user, make_story, make_agent)


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    close_old_connections()


def stored():
    return CommentThread.objects.count(), Comment.objects.count()


def test_comment_reply_resolve_over_the_socket(world):
    start, end = units(TEXT, "lamp")

    async def go():
        watcher = await opened(world["alice"], "story:tale", TOPIC)
        bob = await opened(world["bob"], TOPIC)
        try:
            answer = await bob.request(type="comment", topic=TOPIC, revision=1, body=" Which lamp? ", ref="c1",
                                       **{"from": start, "to": end})
            assert answer["type"] == "comment.thread" and answer["ref"] == "c1" and answer["topic"] == TOPIC
            t = answer["thread"]
            at = TEXT.index("lamp")
            assert start == at + 1  # the wave is two UTF-16 units, one character
            assert t["anchor"] == {"from": at, "to": at + 4} and t["anchor_utf16"] == {"from": start, "to": end}
            assert t["quote"] == "lamp" and t["created_by"] == "bob" and t["revision"] == 1
            assert [c["body"] for c in t["comments"]] == ["Which lamp?"]
            [created] = await events(watcher, "comment.thread.created")
            assert created["data"]["id"] == t["id"]

            reply = await watcher.request(type="comment.reply", topic=TOPIC, thread=t["id"], body="The old one.")
            assert reply["type"] == "comment" and reply["comment"]["thread"] == t["id"]
            assert reply["comment"]["author"] == "alice" and reply["comment"]["body"] == "The old one."
            [commented] = await events(watcher, "comment.created")
            assert commented["data"]["id"] == reply["comment"]["id"] and commented["data"]["document"] == "main"

            done = await bob.request(type="comment.resolve", topic=TOPIC, thread=t["id"], resolved=True,
                                     version=t["version"])
            assert done["type"] == "comment.thread" and done["thread"]["resolved"] is True
            assert done["thread"]["resolved_by"] == "bob" and done["thread"]["comment_count"] == 2
            [updated] = await events(watcher, "comment.thread.updated")
            assert updated["data"]["version"] == done["thread"]["version"] == t["version"] + 1
            # Asking for what it already is changes nothing: no new version, no event.
            again = await bob.request(type="comment.resolve", topic=TOPIC, thread=t["id"], resolved=True)
            assert again["thread"]["version"] == done["thread"]["version"]
            await watcher.nothing()
            # Without `revision`, positions count the current text; agents comment too.
            agent = await opened(world["narrator"], TOPIC)
            try:
                point = await agent.request(type="comment", topic=TOPIC, body="Here.", **{"from": 0, "to": 0})
                assert point["thread"]["created_by_kind"] == "agent" and point["thread"]["revision"] == 1
            finally:
                await agent.__aexit__()
            await events(watcher, "comment.thread.created")
        finally:
            await watcher.__aexit__()
            await bob.__aexit__()
    asyncio.run(go())
    assert stored() == (2, 3)
    assert CommentThread.objects.filter(resolved=True).count() == 1


def test_refusals_store_nothing_and_send_no_event(world):
    start, end = units(TEXT, "lamp")
    span = {"from": start, "to": end}
    length = len(TEXT) + 1  # in UTF-16 units: the wave counts two

    async def go():
        watcher = await opened(world["alice"], "story:tale")
        bob = await opened(world["bob"], TOPIC)
        vera = await opened(world["vera"], TOPIC)
        olga = await opened(world["olga"], TOPIC)  # tale is public: an outsider reads it
        try:
            async def refused(client, code, field=None, **frame):
                reply = await client.request(**frame)
                assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
                assert reply["topic"] == frame["topic"]
                if field is not None:
                    assert field in reply["details"], (frame, reply)
                return reply

            for client in (vera, olga):
                await refused(client, "forbidden", type="comment", topic=TOPIC, body="no", **span)
            await refused(watcher, "invalid", "topic", type="comment", topic=TOPIC, body="no", **span)
            hidden = await bob.request(type="subscribe", topic="doc:vault/main")
            assert hidden["type"] == "error" and hidden["code"] == "not_found"
            await refused(bob, "invalid", "topic", type="comment", topic="doc:vault/main", body="no",
                          **{"from": 0, "to": 0})
            for field, frame in [
                ("from", {"from": "0", "to": 4, "body": "x"}),
                ("from", {"from": True, "to": 4, "body": "x"}),
                ("from", {"to": 4, "body": "x"}),
                ("to", {"from": 0, "to": -1, "body": "x"}),
                ("to", {"from": 0, "to": length + 1, "body": "x"}),  # past the end
                ("from", {"from": 1, "to": 4, "body": "x"}),  # inside the wave
                ("from", {"from": 6, "to": 4, "body": "x"}),  # after `to`
                ("revision", {"revision": 9, "body": "x", **span}),  # ahead of the document
                ("revision", {"revision": "1", "body": "x", **span}),
                ("body", {**span}),
                ("body", {"body": "   ", **span}),
                ("body", {"body": 5, **span}),
                ("body", {"body": "x" * 5001, **span}),
                ("body", {"body": "a\x00b", **span}),
                ("colour", {"body": "x", "colour": "red", **span}),
            ]:
                await refused(bob, "invalid", field, type="comment", topic=TOPIC, **frame)
            await watcher.nothing()
            assert await database_sync_to_async(stored)() == (0, 0)

            t = (await bob.request(type="comment", topic=TOPIC, body="Which?", **span))["thread"]
            await events(watcher, "comment.thread.created")
            for client in (vera, olga):
                await refused(client, "forbidden", type="comment.reply", topic=TOPIC, thread=t["id"], body="no")
                await refused(client, "forbidden", type="comment.resolve", topic=TOPIC, thread=t["id"], resolved=True)
            for field, frame in [
                ("thread", {"thread": str(t["id"]), "body": "x"}),
                ("thread", {"body": "x"}),
                ("body", {"thread": t["id"]}),
                ("body", {"thread": t["id"], "body": "y" * 5001}),
                ("body", {"thread": t["id"], "body": ["x"]}),
                ("mood", {"thread": t["id"], "body": "x", "mood": "calm"}),
            ]:
                await refused(bob, "invalid", field, type="comment.reply", topic=TOPIC, **frame)
            for field, frame in [
                ("resolved", {"thread": t["id"]}),
                ("resolved", {"thread": t["id"], "resolved": "yes"}),
                ("version", {"thread": t["id"], "resolved": True, "version": "1"}),
                ("thread", {"thread": None, "resolved": True}),
                ("why", {"thread": t["id"], "resolved": True, "why": "done"}),
            ]:
                await refused(bob, "invalid", field, type="comment.resolve", topic=TOPIC, **frame)
            await refused(bob, "not_found", type="comment.reply", topic=TOPIC, thread=t["id"] + 1000, body="x")
            await refused(bob, "not_found", type="comment.resolve", topic=TOPIC, thread=t["id"] + 1000, resolved=True)
            await refused(bob, "conflict", "version", type="comment.resolve", topic=TOPIC, thread=t["id"],
                          resolved=True, version=t["version"] + 3)
            # The passage was deleted since the revision the positions count in: 409.
            await database_sync_to_async(document_edit)(doc=world["doc"], author=world["alice"],
                                                        body={"base_revision": 1, "find": "lamp ", "replace": ""})
            await refused(bob, "conflict", type="comment", topic=TOPIC, revision=1, body="gone?", **span)
            await watcher.nothing()
        finally:
            for client in (watcher, bob, vera, olga):
                await client.__aexit__()
    asyncio.run(go())
    assert stored() == (1, 1)
    assert CommentThread.objects.get().resolved is False
