"""The event contract (messaging/frames.py): every frame a client can receive, produced by the real
services and the real socket, validates against the schema table, and every entry of the table
(and every story event name) is produced by this session: a frame cannot change shape, or a new
one appear, without the table changing with it."""
import asyncio

import jsonschema
import pytest
from channels.db import database_sync_to_async

from agents.services import agent_set_status
from bible import services as bible_services
from messaging.frames import SCHEMAS, STORY_EVENTS
from notifications import services as notification_services
from outline import services as outline_services
from suggestions import services as suggestion_services
from comments import services as comment_services
from versions import services as version_services
from writers import services as crew_services
from messaging.services import channel_create, channel_set_archived, channel_update, member_add, member_remove
from stories.documents import document_create, document_edit
from stories.models import Participant
from stories.services import participant_add, participant_remove, story_update
from tests.messaging.test_consumers import Client, post_sync

pytestmark = pytest.mark.django_db(transaction=True)


class Recording(Client):
    """A test socket that keeps every frame it reads (also those `request` and `until` skip)."""

    def __init__(self, user, seen):
        super().__init__(user)
        self.seen = seen

    async def recv(self, timeout=5):
        frame = await super().recv(timeout)
        self.seen.append(frame)
        return frame


def validate(frame: dict) -> None:
    assert frame["type"] in SCHEMAS, f"a frame type missing from frames.SCHEMAS: {frame}"
    jsonschema.validate(frame, SCHEMAS[frame["type"]])


def test_every_frame_matches_the_schema_table(world, make_user):
    story, alice, bob, narrator = world["story"], world["alice"], world["bob"], world["narrator"]
    newcomer = make_user("nico")
    seen: list[dict] = []

    async def go():
        async with Recording(alice, seen) as a, Recording(bob, seen) as b:
            for client in (a, b):
                await client.recv()  # welcome
            for topic in ("story:tale", "channel:tale/room", "doc:tale/main"):
                await a.request(type="subscribe", topic=topic)
            await a.request(type="subscribe", topic="channel:tale/general", after=0)
            await b.request(type="subscribe", topic="doc:tale/main")
            await b.request(type="subscribe", topic="channel:tale/room")
            await b.request(type="subscribe", topic="channel:tale/general")
            await database_sync_to_async(post_sync)(narrator, "live one")
            await b.until("message")
            await a.request(type="unsubscribe", topic="channel:tale/general")
            await a.request(type="subscribe", topic="channel:tale/general", after=0)
            await a.until("message")  # replay
            await a.request(type="publish", topic="channel:tale/general", msg_type="text", payload={"text": "hi"})
            await a.request(type="ack", topic="channel:tale/general", seq=1)
            await a.request(type="heartbeat", state="idle")
            await a.request(type="ping")
            # Notifications (notifications/services.py): a mention of alice, then marking it read.
            await a.request(type="subscribe", topic="notifications:alice")
            await database_sync_to_async(post_sync)(bob, "@alice look")
            await a.until("notification")
            await database_sync_to_async(notification_services.mark_read)(user=alice, all=True)
            await a.until("notifications.read")
            # Streaming messages (streaming/frames.py): both watch bob's streams on general.
            opened = await b.request(type="stream.open", topic="channel:tale/general", msg_type="narration")
            await b.request(type="stream.append", id=opened["id"], text="Dusk.", offset=0)
            await b.request(type="stream.complete", id=opened["id"])
            dropped = await b.request(type="stream.open", topic="channel:tale/general", msg_type="narration")
            await b.request(type="stream.cancel", id=dropped["id"])
            await a.until("stream.ended")
            await a.request(type="nonsense")  # error
            await b.send(type="typing", topic="channel:tale/general", typing=True)
            await a.until("typing")
            await b.send(type="cursor", topic="doc:tale/main", anchor=0)
            await a.until("cursor")
            await a.until("presence.diff")
            await a.request(type="doc.pull", topic="doc:tale/main", after=0)
            made = await b.request(type="suggest", topic="doc:tale/main", revision=0, changes=[[0, "Hi."]])
            await a.request(type="suggestion.decide", topic="doc:tale/main", decision="reject",
                            id=made["suggestion"]["id"])
            await a.request(type="suggestion.decide", topic="doc:tale/main", decision="reject")
            thread = await b.request(type="comment", topic="doc:tale/main", body="Here?", **{"from": 0, "to": 0})
            await a.request(type="comment.reply", topic="doc:tale/main", thread=thread["thread"]["id"], body="Yes.")
            await a.request(type="comment.resolve", topic="doc:tale/main", thread=thread["thread"]["id"],
                            resolved=True)

            def story_changes():
                document_edit(doc=story.documents.get(name="main"), author=alice, body={"append": "Once."})
                participant_add(story=story, user=newcomer, role=Participant.Role.VIEWER)
                participant_add(story=story, user=newcomer, role=Participant.Role.EDITOR)
                cabal = channel_create(story=story, creator=alice, name="cabal", kind="private")
                member_add(channel=cabal, user=bob)
                member_remove(channel=cabal, user=bob)
                channel_update(channel=cabal, by=alice, topic="New")
                channel_set_archived(channel=cabal, by=alice, archived=True)
                channel_set_archived(channel=cabal, by=alice, archived=False)
                document_create(story=story, creator=alice, name="notes")
                entry = bible_services.entry_create(story=story, by=alice, kind="character", name="Mara")
                bible_services.entry_update(entry=entry, by=alice, description="The keeper's daughter.")
                bible_services.entry_delete(entry=entry, by=alice)
                scene = outline_services.scene_create(story=story, by=alice, data={"title": "The storm"})
                outline_services.scene_create(story=story, by=alice, data={"title": "The boat"})
                scene = outline_services.scene_update(scene=scene, by=alice, data={"status": "drafting"})
                outline_services.scene_move(scene=scene, by=alice, position=2)
                outline_services.scene_delete(scene=scene, by=alice)
                suggestion = suggestion_services.suggestion_create(
                    doc=story.documents.get(name="main"), author=narrator, body={"append": " Twice.", "note": "n"})
                suggestion_services.suggestion_decide(suggestion=suggestion, by=alice, decision="reject")
                thread = comment_services.thread_create(doc=story.documents.get(name="main"), author=narrator,
                                                        body={"from": 0, "to": 4, "body": "Why?"})
                comment_services.comment_reply(thread=thread, author=alice, body={"body": "Because."})
                comment_services.thread_resolve(thread=thread, by=alice, resolved=True)
                crew_services.crew_add(story=story, by=alice, roles=[])
                version = version_services.version_create(doc=story.documents.get(name="main"), by=alice,
                                                          name="draft 1")
                version = version_services.version_update(version=version, by=alice, name="draft one")
                version_services.version_delete(version=version, by=alice)
                agent_set_status(agent=narrator, status="working", task="scene 2")
                story_update(story=story, title="A new title")
                participant_remove(story=story, user=newcomer)
            await database_sync_to_async(story_changes)()
            names = set()
            while not set(STORY_EVENTS) <= names:
                frame = await a.recv()
                if frame["type"] == "event":
                    names.add(frame["event"])
            # The server ends a topic: bob loses the story.
            await database_sync_to_async(story_update)(story=story, visibility="private")
            await database_sync_to_async(participant_remove)(story=story, user=bob)
            await b.until("unsubscribed")
            await a.request(type="unsubscribe", topic="story:tale")
    asyncio.run(go())
    for frame in seen:
        validate(frame)
    types = {f["type"] for f in seen}
    assert types == set(SCHEMAS), set(SCHEMAS) ^ types


def test_schema_table_refuses_a_changed_frame():
    """The table is strict: a renamed or extra field fails (so the test above can fail)."""
    good = {"type": "acked", "topic": "channel:tale/general", "seq": 3}
    validate(good)
    for bad in ({**good, "extra": 1}, {"type": "acked", "topic": "channel:tale/general"},
                {**good, "seq": "3"}, {**good, "topic": "general"}):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)
