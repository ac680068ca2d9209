"""The audit log of rights (audit/): every change of who may do what writes exactly one row, with
its actor, subject and type, in the change's own transaction; REST views and admin actions name
the signed-in user, management commands and the idle sweeper none (with a note)."""
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import token_issue, token_revoke, token_revoke_all, token_rotate, user_set_active
from audit import services as audit
from audit.models import RightsEvent
from messaging.models import Channel
from messaging.services import archive_idle_channels, channel_create, member_add
from mythline_site.errors import Conflict, Invalid, NotFound
from stories.models import Participant, Story
from stories.services import participant_add, participant_remove, story_update


class Log:
    """The rows written since it was made (earlier ones, from the fixtures, are left out)."""

    def __init__(self):
        self.mark = RightsEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def rows(self):
        return list(RightsEvent.objects.filter(id__gt=self.mark).select_related("actor", "subject", "story",
                                                                                 "channel").order_by("id"))

    def one(self):
        rows = self.rows()
        assert len(rows) == 1, [(r.event_type, r.note) for r in rows]
        self.mark = rows[0].pk
        return rows[0]

    def none(self):
        assert self.rows() == []


def who(user):
    return user.username if user is not None else None


@pytest.fixture
def tale(db, make_user, make_story, api):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    story = make_story(alice, slug="tale")
    return {"alice": alice, "bob": bob, "carol": carol, "story": story,
            "as_alice": api(alice), "as_bob": api(bob), "as_carol": api(carol)}


# --- Through the REST endpoints: the actor is the caller ------------------------------------------

def test_story_creation_and_visibility_changes_via_rest(tale):
    log = Log()
    r = tale["as_bob"].post("/api/stories", {"slug": "bobs", "title": "Bob's"}, format="json")
    assert r.status_code == 201
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject), row.story.slug) == ("story.created", "bob", "bob", "bobs")
    assert row.after == {"visibility": "public"} and row.note == ""

    assert tale["as_alice"].patch("/api/stories/tale", {"title": "New title"}, format="json").status_code == 200
    log.none()  # not a change of rights
    assert tale["as_alice"].patch("/api/stories/tale", {"visibility": "private"}, format="json").status_code == 200
    row = log.one()
    assert (row.event_type, who(row.actor), row.story.slug) == ("story.visibility_changed", "alice", "tale")
    assert (row.before, row.after) == ({"visibility": "public"}, {"visibility": "private"})
    assert tale["as_alice"].patch("/api/stories/tale", {"visibility": "private"}, format="json").status_code == 200
    log.none()  # no change, no row


def test_participants_added_reroled_removed_and_leaving_via_rest(tale):
    log, alice = Log(), tale["as_alice"]
    assert alice.post("/api/stories/tale/participants", {"username": "bob", "role": "editor"},
                      format="json").status_code == 201
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject), row.after) == (
        "participant.added", "alice", "bob", {"role": "editor"})
    assert alice.post("/api/stories/tale/participants", {"username": "bob", "role": "editor"},
                      format="json").status_code == 200
    log.none()  # the same role again changes nothing
    assert alice.post("/api/stories/tale/participants", {"username": "bob", "role": "viewer"},
                      format="json").status_code == 200
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject), row.before, row.after) == (
        "participant.role_changed", "alice", "bob", {"role": "editor"}, {"role": "viewer"})
    assert alice.delete("/api/stories/tale/participants/bob").status_code == 204
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject), row.before) == (
        "participant.removed", "alice", "bob", {"role": "viewer"})

    assert tale["as_carol"].post("/api/stories/tale/join").status_code == 201
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject)) == ("participant.added", "carol", "carol")
    assert tale["as_carol"].delete("/api/stories/tale/participants/carol").status_code == 204
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject)) == ("participant.removed", "carol", "carol")


def test_refused_changes_write_nothing(tale):
    log, alice = Log(), tale["as_alice"]
    r = alice.post("/api/stories/tale/participants", {"username": "alice", "role": "viewer"}, format="json")
    assert r.status_code == 409  # the owner's role is not changed
    assert alice.delete("/api/stories/tale/participants/alice").status_code == 409  # nor is the owner removed
    assert alice.delete("/api/stories/tale/participants/bob").status_code == 404
    assert tale["as_bob"].patch("/api/stories/tale", {"visibility": "private"}, format="json").status_code in (403, 404)
    log.none()


def test_invite_links_and_joining_through_one_via_rest(tale):
    log = Log()
    r = tale["as_alice"].post("/api/stories/tale/invites", {"role": "viewer"}, format="json")
    assert r.status_code == 201
    invite = r.json()
    row = log.one()
    assert (row.event_type, who(row.actor), row.story.slug, row.after) == (
        "invite.created", "alice", "tale", {"role": "viewer"})
    assert row.extra["invite_id"] == invite["id"] and row.extra["invite_prefix"] == invite["prefix"]
    assert invite["token"] not in str(row.extra)  # never the link's token


    assert tale["as_bob"].post(f"/api/invites/{invite['token']}/accept").status_code == 201
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject), row.after) == (
        "participant.added", "bob", "bob", {"role": "viewer"})
    assert row.extra == {"invite_id": invite["id"], "invite_prefix": invite["prefix"]}

    assert tale["as_alice"].delete(f"/api/stories/tale/invites/{invite['id']}").status_code == 204
    row = log.one()
    assert (row.event_type, who(row.actor), row.extra["invite_id"]) == ("invite.revoked", "alice", invite["id"])
    assert tale["as_alice"].delete(f"/api/stories/tale/invites/{invite['id']}").status_code == 204
    log.none()  # already revoked


def test_channel_members_and_archiving_via_rest(tale):
    participant_add(story=tale["story"], user=tale["bob"], role="editor")
    alice = tale["as_alice"]
    assert alice.post("/api/stories/tale/channels", {"name": "backstage", "kind": "private"},
                      format="json").status_code == 201
    log = Log()
    base = "/api/stories/tale/channels/backstage"
    assert alice.post(f"{base}/members", {"username": "bob"}, format="json").status_code == 201
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject), row.channel.name, row.story.slug) == (
        "member.added", "alice", "bob", "backstage", "tale")
    assert alice.delete(f"{base}/members/bob").status_code == 204
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject), row.channel.name) == (
        "member.removed", "alice", "bob", "backstage")
    assert alice.patch(base, {"archived": True}, format="json").status_code == 200
    row = log.one()
    assert (row.event_type, who(row.actor), row.channel.name, row.note) == ("channel.archived", "alice", "backstage", "")
    assert alice.patch(base, {"topic": "Spoilers"}, format="json").status_code == 200
    log.none()
    assert alice.patch(base, {"archived": False}, format="json").status_code == 200
    row = log.one()
    assert (row.event_type, who(row.actor), row.channel.name) == ("channel.unarchived", "alice", "backstage")


# --- Through the services: tokens, users, the sweeper, commands -----------------------------------

def test_tokens_issued_rotated_revoked_and_revoked_all(tale):
    bob, alice = tale["bob"], tale["alice"]
    log = Log()
    token_issue(user=bob, label="ci", by=alice)
    row = log.one()
    first = ApiToken.objects.filter(user=bob, label="ci").get()
    assert (row.event_type, who(row.actor), who(row.subject), row.story) == ("token.issued", "alice", "bob", None)
    assert row.after == {"token_id": first.pk, "prefix": first.prefix, "label": "ci"}
    assert first.key_hash not in str(row.after)  # never the hash

    token_rotate(token=first, by=alice)
    row = log.one()  # one row for the revocation and the new token
    second = ApiToken.objects.get(user=bob, label="ci", revoked_at__isnull=True)
    assert (row.event_type, who(row.actor), who(row.subject)) == ("token.rotated", "alice", "bob")
    assert (row.before["token_id"], row.after["token_id"]) == (first.pk, second.pk)

    token_revoke(token=second, by=alice)
    row = log.one()
    assert (row.event_type, who(row.subject), row.before["token_id"]) == ("token.revoked", "bob", second.pk)
    token_revoke(token=second, by=alice)
    log.none()  # already revoked

    token_issue(user=bob, label="x")
    token_issue(user=bob, label="y")
    log.mark = RightsEvent.objects.order_by("-id").first().pk
    ids = sorted(ApiToken.objects.filter(user=bob, revoked_at__isnull=True).values_list("pk", flat=True))
    assert token_revoke_all(user=bob, by=alice) == len(ids)
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject), row.extra) == (
        "token.revoked_all", "alice", "bob", {"token_ids": ids})
    assert token_revoke_all(user=bob, by=alice) == 0
    log.none()


def test_replacing_a_labelled_token_is_one_row_naming_the_replaced(tale):
    bob = tale["bob"]
    token_issue(user=bob, label="crew")
    old = ApiToken.objects.get(user=bob, label="crew")
    log = Log()
    token_issue(user=bob, label="crew", replace_label=True)
    row = log.one()
    assert row.event_type == "token.issued" and row.extra == {"replaced_token_ids": [old.pk]}
    assert (row.actor, row.note) == (None, "system")


def test_users_deactivated_and_reactivated(tale):
    log = Log()
    user_set_active(user=tale["bob"], active=False, by=tale["alice"])
    row = log.one()
    assert (row.event_type, who(row.actor), who(row.subject)) == ("user.deactivated", "alice", "bob")
    user_set_active(user=tale["bob"], active=False, by=tale["alice"])
    log.none()
    user_set_active(user=tale["bob"], active=True, by=tale["alice"])
    assert log.one().event_type == "user.reactivated"


def test_the_idle_sweeper_archives_with_no_actor_and_note_idle(tale):
    channel = channel_create(story=tale["story"], creator=tale["alice"], name="quiet", kind="public",
                             idle_archive_seconds=60)
    log = Log()
    assert archive_idle_channels(now=timezone.now() + timedelta(seconds=61)) == [channel]
    row = log.one()
    assert (row.event_type, row.actor, row.channel.name, row.story.slug, row.note) == (
        "channel.archived", None, "quiet", "tale", "idle")


def test_management_commands_write_rows_with_no_actor_and_note_cli(tale):
    log = Log()
    call_command("issue_token", "bob", "--label", "cli-test", stdout=io.StringIO(), stderr=io.StringIO())
    row = log.one()
    assert (row.event_type, row.actor, who(row.subject), row.note) == ("token.issued", None, "bob", "cli")
    call_command("create_agent", "scribe", "--story", "tale", stdout=io.StringIO(), stderr=io.StringIO())
    rows = log.rows()
    assert [(r.event_type, r.actor, who(r.subject), r.note) for r in rows] == [
        ("participant.added", None, "scribe", "cli"), ("token.issued", None, "scribe", "cli")]
    # Outside the command, an actor-less change is the system's.
    token_issue(user=tale["bob"])
    assert RightsEvent.objects.order_by("-id").first().note == "system"


# --- In the change's transaction ------------------------------------------------------------------

def test_a_change_rolled_back_leaves_no_row_and_a_refused_one_writes_none(tale):
    story, bob, carol = tale["story"], tale["bob"], tale["carol"]
    log = Log()

    class Boom(Exception):
        pass

    # The service wrote its change and its row; the transaction around it fails afterwards.
    with pytest.raises(Boom), transaction.atomic():
        participant_add(story=story, user=bob, role="editor", by=tale["alice"])
        story_update(story=story, visibility="private", by=tale["alice"])
        assert [r.event_type for r in log.rows()] == ["participant.added", "story.visibility_changed"]
        raise Boom
    log.none()
    assert not Participant.objects.filter(story=story, user=bob).exists()
    assert Story.objects.get(pk=story.pk).visibility == "public"

    # Refused by the service: nothing changed, nothing written.
    with pytest.raises(Conflict):
        participant_add(story=story, user=tale["alice"], role="viewer", by=tale["alice"])
    with pytest.raises(NotFound):
        participant_remove(story=story, user=carol, by=tale["alice"])
    general = Channel.objects.get(story=story, name="general")
    with pytest.raises(Invalid):
        member_add(channel=general, user=carol, by=tale["alice"])
    log.none()


@pytest.mark.django_db(transaction=True)
def test_rows_commit_with_the_change_outside_a_test_transaction(make_user, make_story):
    """With real commits (no test transaction around it): the row is there after the change commits,
    a change whose transaction fails leaves neither the change nor the row, and a row is never
    written outside the transaction of a change."""
    alice, bob = make_user("alice"), make_user("bob")
    with pytest.raises(RuntimeError):
        audit.record(audit.TOKEN_ISSUED, by=alice, subject=bob)
    assert not RightsEvent.objects.exists()

    story = make_story(alice, slug="real")
    participant_add(story=story, user=bob, role="viewer", by=alice)
    assert RightsEvent.objects.filter(event_type="participant.added", subject=bob, actor=alice).count() == 1
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        participant_remove(story=story, user=bob, by=alice)
        1 / 0
    assert Participant.objects.filter(story=story, user=bob).exists()
    assert not RightsEvent.objects.filter(event_type="participant.removed").exists()
