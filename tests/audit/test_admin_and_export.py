"""The audit log of rights as staff and owners see it: the admin shows it read-only (filters by
event type and story, search by username) and names the staff member behind each admin change;
the story's export carries the story's rows; no API endpoint serves it."""
import json

import pytest
from django.urls import reverse

from accounts.models import ApiToken, User
from accounts.services import token_issue
from audit.models import RightsEvent
from stories.models import Participant, Story
from stories.services import participant_add, participant_remove, story_update


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def world(db, make_user, make_story, client):
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tide")
    other = make_story(bob, slug="other")
    participant_add(story=story, user=bob, role="editor", by=alice)
    client.force_login(boss)
    return {"boss": boss, "alice": alice, "bob": bob, "story": story, "other": other, "client": client}


def test_the_admin_shows_it_read_only_even_to_a_superuser(world):
    client = world["client"]
    row = RightsEvent.objects.filter(event_type="participant.added", subject=world["bob"]).get()
    assert client.get(url(RightsEvent, "changelist")).status_code == 200
    page = client.get(url(RightsEvent, "change", row.pk))
    assert page.status_code == 200 and "participant.added" in page.content.decode()  # shown, read-only
    assert b'name="_save"' not in page.content
    assert client.get(url(RightsEvent, "add")).status_code == 403
    assert client.post(url(RightsEvent, "add"), {"event_type": "token.issued"}).status_code == 403
    assert client.post(url(RightsEvent, "change", row.pk), {"event_type": "token.issued", "note": "x"}).status_code == 403
    assert client.get(url(RightsEvent, "delete", row.pk)).status_code == 403
    assert client.post(url(RightsEvent, "delete", row.pk), {"post": "yes"}).status_code == 403
    response = client.post(url(RightsEvent, "changelist"), {"action": "delete_selected",
                                                            "_selected_action": [str(row.pk)], "post": "yes"})
    assert response.status_code == 200  # no actions: nothing is deleted
    row.refresh_from_db()
    assert (row.event_type, row.note) == ("participant.added", "")


def test_the_admin_filters_by_event_type_and_story_and_searches_usernames(world):
    client, story = world["client"], world["story"]

    def listed(**params):
        response = client.get(url(RightsEvent, "changelist"), params)
        assert response.status_code == 200
        return sorted((r.event_type, r.story.slug if r.story else None) for r in response.context["cl"].result_list)

    assert listed(event_type="story.created") == [("story.created", "other"), ("story.created", "tide")]
    assert listed(story__id__exact=story.pk) == [("participant.added", "tide"), ("story.created", "tide")]
    assert listed(q="bob") == [("participant.added", "tide"), ("story.created", "other")]
    assert listed(q="nobody") == []


def test_admin_changes_name_the_staff_member(world):
    client, story, bob = world["client"], world["story"], world["bob"]
    token_issue(user=bob, label="laptop")
    token = ApiToken.objects.get(user=bob, label="laptop")
    mark = RightsEvent.objects.order_by("-id").first().pk
    response = client.post(url(ApiToken, "changelist"), {"action": "revoke_selected",
                                                         "_selected_action": [str(token.pk)]}, follow=True)
    assert response.status_code == 200
    response = client.post(url(User, "changelist"), {"action": "deactivate_selected",
                                                     "_selected_action": [str(bob.pk)]}, follow=True)
    assert response.status_code == 200
    bob_row = Participant.objects.get(story=story, user=bob)
    response = client.post(url(Participant, "delete", bob_row.pk), {"post": "yes"})
    assert response.status_code == 302
    owner_row = Participant.objects.get(story=story, user=world["alice"])
    response = client.post(url(Story, "change", story.pk), {
        "title": story.title, "premise": "", "visibility": "private",
        "participants-TOTAL_FORMS": "1", "participants-INITIAL_FORMS": "1",
        "participants-MIN_NUM_FORMS": "0", "participants-MAX_NUM_FORMS": "1000",
        "participants-0-id": owner_row.pk, "participants-0-story": story.pk,
        "participants-0-user": world["alice"].pk, "participants-0-role": "owner"})
    assert response.status_code == 302, response.content.decode()[:2000]
    rows = RightsEvent.objects.filter(id__gt=mark).order_by("id")
    assert [(r.event_type, r.actor.username, r.subject and r.subject.username) for r in rows] == [
        ("token.revoked", "boss", "bob"), ("user.deactivated", "boss", "bob"), ("participant.removed", "boss", "bob"),
        ("story.visibility_changed", "boss", None)]


def test_the_export_carries_the_storys_rows_only(world, api):
    alice, bob, story = world["alice"], world["bob"], world["story"]
    story_update(story=story, visibility="private", by=alice)
    participant_add(story=story, user=bob, role="viewer", by=alice)
    participant_remove(story=story, user=bob, by=alice)
    token_issue(user=bob, label="elsewhere")  # not the story's: not in its export
    response = api(alice).get("/api/stories/tide/export")
    assert response.status_code == 200
    export = json.loads(b"".join(response.streaming_content))
    rows = export["audit"]
    assert [(r["type"], r["actor"], r["subject"]) for r in rows] == [
        ("story.created", None, "alice"),  # made by the fixture through the service, no actor given
        ("participant.added", "alice", "bob"),
        ("story.visibility_changed", "alice", None),
        ("participant.role_changed", "alice", "bob"),
        ("participant.removed", "alice", "bob"),
    ]
    assert rows[2]["before"] == {"visibility": "public"} and rows[2]["after"] == {"visibility": "private"}
    assert rows[3]["before"] == {"role": "editor"} and rows[3]["after"] == {"role": "viewer"}
    assert set(rows[0]) == {"id", "created_at", "type", "actor", "subject", "channel", "before", "after",
                            "extra", "note"}
    assert rows[0]["created_at"].endswith("Z") and rows[0]["note"] == "system"
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    # Bob owns `other`: his export has its own row, none of tide's.
    other = json.loads(b"".join(api(bob).get("/api/stories/other/export").streaming_content))["audit"]
    assert [(r["type"], r["subject"]) for r in other] == [("story.created", "bob")]
    assert Story.objects.filter(slug="tide").exists()


def test_no_api_endpoint_serves_it(world, api):
    schema = api(world["alice"]).get("/api/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "rights_event" not in text.lower() and "/audit" not in text
