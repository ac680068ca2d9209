"""Shared by the socket tests of this package."""
import pytest

from accounts.services import token_issue


@pytest.fixture
def world(make_user, make_story, make_agent):
    """The public story `tale`: alice owns it, bob edits, vera views, the agent `narrator` writes;
    each with a bearer token in `.test_token` (sockets are opened from async code: issued now)."""
    alice, bob, viewer = make_user("alice"), make_user("bob"), make_user("vera")
    story = make_story(alice, slug="tale", editors=[bob], viewers=[viewer])
    agent = make_agent("narrator", capabilities=["narration"], stories=[story])
    for user in (alice, bob, viewer, agent):
        user.test_token = token_issue(user=user)
    return {"story": story, "alice": alice, "bob": bob, "vera": viewer, "narrator": agent}
