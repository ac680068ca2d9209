"""Versions on live sockets: a restore reaches every subscriber of the document as an ordinary
`doc.change` (applied to a client's copy, it gives the restored text), and naming or deleting a
version is a `document.version.*` event on the story topic."""
import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import close_old_connections

from accounts.services import token_issue
from stories.changesets import ChangeSet, utf16_len
from stories.documents import document_edit
from stories.models import Document

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tale(make_user, make_story, make_agent, api):
    alice, vera = make_user("alice"), make_user("vera")
    story = make_story(alice, slug="tale", viewers=[vera])
    scribe = make_agent("scribe", stories=[story])
    main = Document.objects.get(story=story, name="main")
    for text in ("Night fell on the rock. ", "The lamp 💡 failed. ", "Mara ran up the stair."):
        document_edit(doc=main, author=alice, body={"append": text})
    for user in (alice, vera, scribe):
        user.test_token = token_issue(user=user)
    return {"alice": alice, "vera": vera, "scribe": scribe, "api": api(scribe)}


def test_a_restore_is_a_normal_change_on_the_socket(tale):
    from tests.messaging.test_consumers import Client

    async def go():
        async with Client(tale["alice"]) as a, Client(tale["vera"]) as v:
            copies = {}
            for name, c in (("alice", a), ("vera", v)):
                await c.recv()
                assert (await c.request(type="subscribe", topic="doc:tale/main"))["type"] == "subscribed"
                state = await c.until("doc.state")
                assert state["revision"] == 3
                copies[name] = state["text"]
            await a.request(type="subscribe", topic="story:tale")

            def name_and_restore():
                client = tale["api"]
                named = client.post("/api/stories/tale/documents/main/versions", {"name": "Before the lamp",
                                                                                   "revision": 1}, format="json")
                assert named.status_code == 201, named.content
                restored = client.post("/api/stories/tale/documents/main/restore", {"version": named.json()["id"]},
                                       format="json")
                assert restored.status_code == 200, restored.content
                return named.json(), restored.json()
            named, restored = await database_sync_to_async(name_and_restore)()
            assert restored["revision"] == 4
            event = await a.until("event")
            assert (event["event"], event["data"]["name"], event["data"]["revision"]) == (
                "document.version.created", "Before the lamp", 1)
            for name, c in (("alice", a), ("vera", v)):
                change = await c.until("doc.change")
                assert (change["revision"], change["author"]) == (4, "scribe")
                text = copies[name]
                text = ChangeSet.from_json(change["changes"], utf16_len(text)).apply(text)
                assert text == "Night fell on the rock. "
            # The log still has every revision; the restore is revision 4 after them.
            pulled = await v.request(type="doc.pull", topic="doc:tale/main", after=0)
            assert [c["revision"] for c in pulled["changes"]] == [1, 2, 3, 4]

            deleted = await database_sync_to_async(tale["api"].delete)(
                f"/api/stories/tale/documents/main/versions/{named['id']}")
            assert deleted.status_code == 204
            event = await a.until("event")
            assert (event["event"], event["data"]) == ("document.version.deleted",
                                                       {"id": named["id"], "document": "main",
                                                        "name": "Before the lamp"})
    try:
        asyncio.run(go())
    finally:
        close_old_connections()
