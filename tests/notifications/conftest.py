"""A cast for the notification tests, built through the services as production does.

alice owns the public story `tale`; bob and carol edit it, vera views it; the agent `scribe`
takes part. bob created the private channel `cabal` (members: bob, and alice as the owner reads
everything); otto is signed in and in no story."""
import pytest

from messaging.policies import access_channel
from messaging.services import channel_create, message_post


def post(user, channel="general", msg_type="text", payload=None, story="tale", **extra):
    access = access_channel(user, story, channel, for_write=True)
    return message_post(sender=user, access=access, data={"msg_type": msg_type, "payload": payload or {}, **extra})


@pytest.fixture
def cast(make_user, make_story, make_agent):
    alice, bob, carol, vera, otto = (make_user(n) for n in ("alice", "bob", "carol", "vera", "otto"))
    story = make_story(alice, slug="tale", editors=[bob, carol], viewers=[vera])
    scribe = make_agent("scribe", stories=[story])
    channel_create(story=story, creator=bob, name="cabal", kind="private")
    return {"alice": alice, "bob": bob, "carol": carol, "vera": vera, "otto": otto, "scribe": scribe,
            "story": story}
