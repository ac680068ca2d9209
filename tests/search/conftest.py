"""A cast and two stories for the search tests, built through the services as production does.

alice owns the public story `agora` and the private story `vault`; bob edits both (and created the
private channel `cabal`, with the agent bart as its other member); vera views both; the agents ada
and bart take part in both, each with its inbox; otto is signed in and in neither.

In each story, messages each holding one unique word (`w<story><name>`) and the word `common`:
see MESSAGES. Who may read which is written out in tests/search/test_access.py, not derived."""
import pytest

from messaging.policies import access_channel
from messaging.services import channel_create, member_add, message_post

STORIES = ("agora", "vault")
# name -> (sender, channel, audience)
MESSAGES = {
    "general": ("alice", "general", "all"),
    "cabal": ("bob", "cabal", "all"),
    "inboxada": ("alice", "inbox.ada", "all"),
    "inboxbart": ("alice", "inbox.bart", "all"),
    "tobob": ("alice", "general", ["bob"]),
    "agents": ("alice", "general", "agents"),
    "humans": ("alice", "general", "humans"),
    "bartvera": ("bart", "general", ["vera"]),  # its sender reads it too
}


def word(story: str, name: str) -> str:
    return f"w{story}{name}"


def post(user, story: str, channel: str, msg_type="text", payload=None, **extra):
    access = access_channel(user, story, channel, for_write=True)
    return message_post(sender=user, access=access, data={"msg_type": msg_type, "payload": payload, **extra}).message


@pytest.fixture
def cast(make_user, make_story, make_agent):
    alice, bob, vera, otto = (make_user(name) for name in ("alice", "bob", "vera", "otto"))
    stories = {"agora": make_story(alice, slug="agora", editors=[bob], viewers=[vera]),
               "vault": make_story(alice, slug="vault", visibility="private", editors=[bob], viewers=[vera])}
    ada = make_agent("ada", stories=list(stories.values()))
    bart = make_agent("bart", capabilities=["dialogue"], stories=list(stories.values()))
    users = {"alice": alice, "bob": bob, "vera": vera, "otto": otto, "ada": ada, "bart": bart}
    ids = {}
    for slug, story in stories.items():
        cabal = channel_create(story=story, creator=bob, name="cabal", kind="private")
        member_add(channel=cabal, user=bart, by=bob)
        for name, (sender, channel, audience) in MESSAGES.items():
            message = post(users[sender], slug, channel, payload={"text": f"common {word(slug, name)}"},
                           audience=audience)
            ids[(slug, name)] = str(message.pk)
    return {"users": users, "stories": stories, "ids": ids}
