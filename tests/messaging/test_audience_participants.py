"""`audience` names participants of the story only, and its error does not tell "no such user"
from "not a participant": a post cannot be used to learn which usernames exist on the site."""
import pytest

from messaging.models import Message, MessageRecipient

GENERAL = "/api/stories/tale/channels/general/messages"
EXPECTED = {"audience": "must be participants of this story"}


@pytest.fixture
def world(make_user, make_story, make_agent, api):
    alice, bob, vera, olaf = (make_user(n) for n in ("alice", "bob", "vera", "olaf"))
    story = make_story(alice, slug="tale", editors=[bob], viewers=[vera])
    make_agent("narrator", stories=[story])
    make_story(olaf, slug="elsewhere")  # olaf exists, takes part in another story, not in this one
    return {"bob": api(bob), "olaf": olaf}


def _post(client, audience):
    return client.post(GENERAL, {"msg_type": "text", "payload": {"text": "hi"}, "audience": audience},
                       format="json")


def test_a_user_of_the_site_and_no_user_at_all_get_the_same_answer(world):
    existing = _post(world["bob"], ["vera", "olaf"])
    missing = _post(world["bob"], ["vera", "nobody-at-all"])
    assert existing.status_code == missing.status_code == 400
    assert existing.json() == missing.json()
    error = existing.json()["error"]
    assert error["code"] == "invalid" and error["details"] == EXPECTED
    assert "olaf" not in existing.content.decode() and "nobody-at-all" not in missing.content.decode()
    assert not Message.objects.exists()


@pytest.mark.parametrize("audience", [["olaf"], ["nobody"], ["bob", "olaf", "nobody"], ["Bob"]])
def test_every_non_participant_audience_is_refused_alike(world, audience):
    response = _post(world["bob"], audience)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"] == EXPECTED
    assert not Message.objects.exists()


def test_participants_of_every_role_are_a_valid_audience(world):
    response = _post(world["bob"], ["alice", "bob", "vera", "narrator"])
    assert response.status_code == 201, response.content
    message = Message.objects.get()
    assert message.audience == ["alice", "bob", "vera", "narrator"]
    assert sorted(MessageRecipient.objects.filter(message=message).values_list("user__username", flat=True)) \
        == ["alice", "bob", "narrator", "vera"]
