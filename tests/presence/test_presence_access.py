"""Presence is readable exactly where the story's `room` channel is: the REST endpoint answers as
reading the room does (the same 404 for whoever may not read it), and so does a socket subscription.
"""
import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator
from django.db import close_old_connections

from accounts.services import token_issue
from messaging.models import Channel
from messaging.services import member_remove
from mythline_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    close_old_connections()


@pytest.fixture
def world(make_user, make_story, make_agent):
    alice, bob, vera, olaf, lea = (make_user(n) for n in ("alice", "bob", "vera", "olaf", "lea"))
    public = make_story(alice, slug="tale", editors=[bob, lea], viewers=[vera])
    make_story(alice, slug="secret", visibility="private", editors=[bob])
    make_agent("narrator", stories=[public])
    # lea takes part in the story but left its room.
    member_remove(channel=Channel.objects.get(story=public, name="room"), user=lea, by=lea)
    return {"alice": alice, "bob": bob, "vera": vera, "olaf": olaf, "lea": lea}


def _answer(client, path):
    response = client.get(path)
    body = response.json()
    return response.status_code, (body["error"]["code"], body["error"]["message"]) if "error" in body else None


@pytest.mark.parametrize("story", ["tale", "secret"])
@pytest.mark.parametrize("who", ["alice", "bob", "vera", "olaf", "lea"])
def test_presence_answers_as_reading_the_room_does(world, api, who, story):
    client = api(world[who])
    room = _answer(client, f"/api/stories/{story}/channels/room")
    presence = _answer(client, f"/api/stories/{story}/presence")
    assert presence[0] == room[0], (who, story, presence, room)
    if room[0] == 404:
        assert presence == room  # the same code and the same words: nothing more is learnt
    else:
        body = client.get(f"/api/stories/{story}/presence").json()
        assert body["story"] == story and isinstance(body["members"], list)


def test_an_outsider_of_a_public_story_does_not_see_who_is_there(world, api):
    """The attack: olaf reads the public story, but not its room, so not who is in it."""
    client = api(world["olaf"])
    assert client.get("/api/stories/tale").status_code == 200
    response = client.get("/api/stories/tale/presence")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "narrator" not in response.content.decode()


def test_participants_in_the_room_read_presence(world, api):
    for who in ("alice", "bob", "vera"):
        response = api(world[who]).get("/api/stories/tale/presence")
        assert response.status_code == 200, (who, response.content)
        assert [a["username"] for a in response.json()["agents"]] == ["narrator"]


def test_a_socket_subscription_to_the_room_answers_as_rest_does(world, api):
    """Subscribing to `channel:tale/room` (which carries presence) is refused to the same callers
    with the same code."""
    async def subscribe(user, token):
        ws = WebsocketCommunicator(application, "/ws/", headers=[(b"authorization", f"Bearer {token}".encode())])
        connected, _ = await ws.connect(timeout=5)
        assert connected
        try:
            async with asyncio.timeout(5):
                while True:
                    frame = json.loads(await ws.receive_from(timeout=5))
                    if frame["type"] == "welcome":
                        break
                await ws.send_to(text_data=json.dumps({"type": "subscribe", "topic": "channel:tale/room",
                                                       "ref": "r1"}))
                while True:
                    frame = json.loads(await ws.receive_from(timeout=5))
                    if frame.get("ref") == "r1":
                        return frame
        finally:
            await ws.disconnect()

    for who in ("olaf", "lea", "bob"):
        token = token_issue(user=world[who])
        frame = asyncio.run(subscribe(world[who], token))
        status = api(world[who]).get("/api/stories/tale/presence").status_code
        if who == "bob":
            assert frame["type"] == "subscribed" and status == 200, frame
        else:
            assert (frame["type"], frame["code"], status) == ("error", "not_found", 404), (who, frame)
