"""Story settings through the API: `requires_approval` (human in the loop for the agent crew)."""
import pytest

from stories.models import Story
from tests.conftest import error_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    return {"story": story, "alice": alice, "bob": bob}


def test_requires_approval_is_off_by_default_and_shown_in_the_story(api, tale):
    body = api(tale["alice"]).get("/api/stories/tale").json()
    assert body["requires_approval"] is False
    listed = api(tale["bob"]).get("/api/stories").json()["results"]
    assert [s["requires_approval"] for s in listed if s["slug"] == "tale"] == [False]


def test_the_owner_turns_it_on_and_off(api, tale):
    alice = api(tale["alice"])
    r = alice.patch("/api/stories/tale", {"requires_approval": True}, format="json")
    assert r.status_code == 200 and r.json()["requires_approval"] is True
    assert Story.objects.get(slug="tale").requires_approval is True
    assert alice.get("/api/stories/tale").json()["requires_approval"] is True
    r = alice.patch("/api/stories/tale", {"requires_approval": False}, format="json")
    assert r.status_code == 200 and r.json()["requires_approval"] is False


def test_only_the_owner_changes_it(api, tale):
    r = api(tale["bob"]).patch("/api/stories/tale", {"requires_approval": True}, format="json")
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert Story.objects.get(slug="tale").requires_approval is False


def test_a_story_may_be_created_with_it(api, tale):
    r = api(tale["bob"]).post("/api/stories", {"slug": "gated", "title": "Gated", "requires_approval": True},
                              format="json")
    assert r.status_code == 201 and r.json()["requires_approval"] is True


def test_a_change_is_a_story_event(api, tale, django_capture_on_commit_callbacks):
    from unittest import mock

    with mock.patch("messaging.events.publish_story_event") as publish:
        api(tale["alice"]).patch("/api/stories/tale", {"requires_approval": True}, format="json")
    publish.assert_called_once()
    assert publish.call_args.args[1] == "story.updated"
    assert publish.call_args.args[2] == {"requires_approval": True}
