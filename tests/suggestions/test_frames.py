"""`suggest` and `suggestion.decide` over the socket (suggestions/frames.py): real sockets through the
ASGI app on the configured channel layer (in-memory, or Redis with REDIS_URL), a real database. The
answer goes to the sender, the story event to every subscriber once; positions count UTF-16 units;
every refusal stores nothing and sends no event."""
import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import close_old_connections

from stories.documents import document_edit
from stories.models import Document
from suggestions import services
from suggestions.models import Suggestion
from tests.annotating import FRAMES_TEXT, FRAMES_TOPIC, events, frames_world, opened, replace, units

pytestmark = pytest.mark.django_db(transaction=True)

TEXT, TOPIC = FRAMES_TEXT, FRAMES_TOPIC


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    close_old_connections()


@pytest.fixture
def world(make_user, make_story, make_agent):
    return frames_world(make_user, make_story, make_agent)


def count():
    return Suggestion.objects.count()


def test_suggest_then_accept_over_the_socket(world):
    async def go():
        watcher = await opened(world["alice"], "story:tale", TOPIC)
        bob = await opened(world["bob"], TOPIC)
        try:
            answer = await bob.request(type="suggest", topic=TOPIC, revision=1, changes=replace(TEXT, "low", "out"),
                                       note="darker", ref="s1")
            assert answer["type"] == "suggestion" and answer["ref"] == "s1" and answer["topic"] == TOPIC
            s = answer["suggestion"]
            at = TEXT.index("low")
            start, end = units(TEXT, "low")
            assert start == at + 1  # the wave is two UTF-16 units, one character
            assert s["edits"] == [{"from": at, "to": at + 3, "insert": "out"}]
            assert s["edits_utf16"] == [[start, end, "out"]] and s["replaced"] == ["low"]
            assert s["status"] == "open" and s["author"] == "bob" and s["note"] == "darker" and s["revision"] == 1
            [created] = await events(watcher, "suggestion.created")
            assert created["data"]["id"] == s["id"]

            decided = await watcher.request(type="suggestion.decide", topic=TOPIC, decision="accept", id=s["id"],
                                            version=s["version"])
            assert decided["type"] == "suggestion" and decided["suggestion"]["status"] == "accepted"
            assert decided["suggestion"]["accepted_revision"] == 2 and decided["suggestion"]["decided_by"] == "alice"
            change = await bob.until("doc.change")
            assert change["revision"] == 2 and change["client_id"] == f"suggestion:{s['id']}"
            [updated] = await events(watcher, "suggestion.updated")
            assert updated["data"]["status"] == "accepted"
        finally:
            await watcher.__aexit__()
            await bob.__aexit__()
    asyncio.run(go())
    assert Document.objects.get(pk=world["doc"].pk).text == TEXT.replace("low", "out")


def test_an_agent_suggests_and_a_person_decides_them_all(world):
    async def go():
        watcher = await opened(world["alice"], "story:tale", TOPIC)
        agent = await opened(world["narrator"], TOPIC)
        try:
            ids = []
            for word, by in (("lamp", "lantern"), ("burned", "flickered")):
                answer = await agent.request(type="suggest", topic=TOPIC, revision=1, changes=replace(TEXT, word, by))
                assert answer["type"] == "suggestion" and answer["suggestion"]["author_kind"] == "agent"
                ids.append(answer["suggestion"]["id"])
            await events(watcher, "suggestion.created", 2)
            # Agents propose, people decide: one or all, refused alike, nothing changes.
            for extra in ({"id": ids[0]}, {}):
                refused = await agent.request(type="suggestion.decide", topic=TOPIC, decision="accept", **extra)
                assert refused["type"] == "error" and refused["code"] == "forbidden", refused
            await watcher.nothing()
            # Bob's open one stays open: only narrator's are decided.
            bobs = await database_sync_to_async(services.suggestion_create)(
                doc=world["doc"], author=world["bob"], body={"append": " Then dark."})
            await events(watcher, "suggestion.created")
            done = await watcher.request(type="suggestion.decide", topic=TOPIC, decision="reject", author="narrator")
            assert done == {"type": "suggestions.decided", "topic": TOPIC, "decision": "reject", "decided": ids,
                            "skipped": [], "ref": done["ref"]}
            await events(watcher, "suggestion.updated", 2)
            return bobs.pk
        finally:
            await watcher.__aexit__()
            await agent.__aexit__()
    bobs = asyncio.run(go())
    assert dict(Suggestion.objects.values_list("author__username", "status").exclude(pk=bobs)) == {
        "narrator": "rejected"}
    assert Suggestion.objects.get(pk=bobs).status == "open"
    assert Document.objects.get(pk=world["doc"].pk).revision == 1


def test_refusals_store_nothing_and_send_no_event(world, settings):
    good = replace(TEXT, "low", "out")

    async def go():
        watcher = await opened(world["alice"], "story:tale")
        bob = await opened(world["bob"], TOPIC)
        vera = await opened(world["vera"], TOPIC)
        olga = await opened(world["olga"])
        try:
            async def refused(client, code, field=None, **frame):
                reply = await client.request(**frame)
                assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
                assert reply["topic"] == frame["topic"]
                if field is not None:
                    assert field in reply["details"], (frame, reply)
                return reply

            await refused(vera, "forbidden", type="suggest", topic=TOPIC, revision=1, changes=good)
            await refused(vera, "forbidden", type="suggestion.decide", topic=TOPIC, decision="reject")
            # Not subscribed: a writer on another socket, and an outsider who cannot subscribe to a private story.
            await refused(watcher, "invalid", "topic", type="suggest", topic=TOPIC, revision=1, changes=good)
            denied = await olga.request(type="subscribe", topic="doc:tale/main")
            assert denied["type"] == "subscribed"  # tale is public: olga reads it ...
            await refused(olga, "forbidden", type="suggest", topic=TOPIC, revision=1, changes=good)  # ... not writes
            hidden = await bob.request(type="subscribe", topic="doc:vault/main")
            assert hidden["type"] == "error" and hidden["code"] == "not_found"
            await refused(bob, "invalid", "topic", type="suggest", topic="doc:vault/main", revision=0, changes=[[0, "x"]])
            # Bad input, each named.
            for field, frame in [
                ("revision", {"revision": "1", "changes": good}),
                ("revision", {"revision": True, "changes": good}),
                ("revision", {"changes": good}),
                ("revision", {"revision": 5, "changes": good}),  # ahead of the document
                ("changes", {"revision": 1, "changes": {"from": 0}}),
                ("changes", {"revision": 1, "changes": [3, [0, "x"]]}),  # not the text's length
                ("changes", {"revision": 1, "changes": [1, [0, "x"], len(TEXT) + 1 - 1]}),  # inside the wave
                ("changes", {"revision": 1, "changes": [len(TEXT) + 1]}),  # changes nothing
                ("note", {"revision": 1, "changes": good, "note": "n" * 2001}),
                ("note", {"revision": 1, "changes": good, "note": 7}),
                ("colour", {"revision": 1, "changes": good, "colour": "red"}),
                ("edits", {"revision": 1, "changes": good, "edits": []}),
            ]:
                await refused(bob, "invalid", field, type="suggest", topic=TOPIC, **frame)
            huge = "x" * (settings.MYTHLINE_DOC_MAX_INSERT_CHARS + 1)
            await refused(bob, "payload_too_large", type="suggest", topic=TOPIC, revision=1,
                          changes=[len(TEXT) + 1, [0, huge]])
            for field, frame in [
                ("decision", {"decision": "maybe"}),
                ("decision", {}),
                ("id", {"decision": "accept", "id": "1"}),
                ("id", {"decision": "reject", "id": None}),  # not "all of them"
                ("version", {"decision": "accept", "version": 1}),
                ("author", {"decision": "accept", "author": 3}),
                ("author", {"decision": "accept", "author": "nobody"}),
                ("author", {"decision": "accept", "id": 1, "author": "bob"}),
                ("why", {"decision": "accept", "why": "because"}),
            ]:
                await refused(bob, "invalid", field, type="suggestion.decide", topic=TOPIC, **frame)
            await refused(bob, "not_found", type="suggestion.decide", topic=TOPIC, decision="accept", id=999999)
            await watcher.nothing()
            assert await database_sync_to_async(count)() == 0

            # 409s: a stale suggestion, a decided one, a changed version.
            made = (await bob.request(type="suggest", topic=TOPIC, revision=1, changes=good))["suggestion"]
            await events(watcher, "suggestion.created")
            await database_sync_to_async(document_edit)(doc=world["doc"], author=world["alice"],
                                                        body={"base_revision": 1, "find": "low", "replace": "high"})
            await refused(bob, "conflict", type="suggest", topic=TOPIC, revision=1, changes=good)
            await refused(bob, "conflict", "status", type="suggestion.decide", topic=TOPIC, decision="accept",
                          id=made["id"])  # stale: it can only be rejected
            await refused(bob, "conflict", "version", type="suggestion.decide", topic=TOPIC, decision="reject",
                          id=made["id"], version=made["version"] + 5)
            await watcher.nothing()
            rejected = await bob.request(type="suggestion.decide", topic=TOPIC, decision="reject", id=made["id"])
            assert rejected["suggestion"]["status"] == "rejected"
            updates = await events(watcher, "suggestion.updated", 2)  # it went stale, then was rejected
            assert [u["data"]["id"] for u in updates] == [made["id"]] * 2
            await refused(bob, "conflict", "status", type="suggestion.decide", topic=TOPIC, decision="reject",
                          id=made["id"])
            await watcher.nothing()
        finally:
            for client in (watcher, bob, vera, olga):
                await client.__aexit__()
    asyncio.run(go())
    assert list(Suggestion.objects.values_list("status", flat=True)) == ["rejected"]
    assert Document.objects.get(pk=world["doc"].pk).revision == 2


def test_a_suggestion_costs_the_write_budget_rest_does(world, settings, api):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "write": ("1/m", 1)}  # two writes, then 429

    async def go():
        bob = await opened(world["bob"], TOPIC)
        try:
            first = await bob.request(type="suggest", topic=TOPIC, revision=1, changes=replace(TEXT, "low", "out"))
            assert first["type"] == "suggestion"
            second = await bob.request(type="suggest", topic=TOPIC, revision=1, changes=replace(TEXT, "lamp", "oil"))
            assert second["type"] == "suggestion"
            third = await bob.request(type="suggest", topic=TOPIC, revision=1, changes=replace(TEXT, "The", "A"))
            assert third["type"] == "error" and third["code"] == "rate_limited"
        finally:
            await bob.__aexit__()
    asyncio.run(go())
    # The socket spent the budget REST draws on.
    response = api(world["bob"]).post("/api/stories/tale/documents/main/suggestions",
                                      {"append": " more"}, format="json")
    assert response.status_code == 429
    assert Suggestion.objects.count() == 2
