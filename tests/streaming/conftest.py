"""Shared by the streaming tests: the public story `tale` (alice owns it; bob and carol edit; vera
views; the agent `narrator` writes; otto is signed in but takes no part) with a private channel
`cabal` (bob's, carol a member)."""
import pytest

from messaging.services import channel_create, member_add


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, bob, carol, vera, otto = (make_user(n) for n in ("alice", "bob", "carol", "vera", "otto"))
    story = make_story(alice, slug="tale", editors=[bob, carol], viewers=[vera])
    narrator = make_agent("narrator", capabilities=["narration"], stories=[story])
    cabal = channel_create(story=story, creator=bob, name="cabal", kind="private")
    member_add(channel=cabal, user=carol, by=bob)
    return {"story": story, "alice": alice, "bob": bob, "carol": carol, "vera": vera, "otto": otto,
            "narrator": narrator, "cabal": cabal}
