"""Invite links: the services (create, revoke, accept), the REST endpoints, the browser pages
(the invite page and the styled no-access page), the admin's revoke action and the export."""
import asyncio
import hashlib
import json
import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from messaging.events import story_group
from messaging.models import Membership
from messaging.rights import user_rights_group
from mythline_site.errors import Conflict, Forbidden, Invalid, NotFound
from stories.models import Invite, Participant
from stories.services import (INVITE_MAX_LIVE, invite_accept, invite_create, invite_revoke, participant_add,
                              participant_remove)
from tests.conftest import error_code

pytestmark = pytest.mark.django_db

NOT_VALID = "This invite link is not valid any more; ask the story's owner for a new one."
INVITE_KEYS = {"id", "role", "prefix", "created_by", "created_at", "expires_at", "revoked_at", "uses",
               "last_used_at", "state"}


@pytest.fixture
def tale(make_user, make_story):
    """A private story owned by olga, with eddie (editor) and vera (viewer); otto is an outsider."""
    olga, eddie, vera = make_user("olga"), make_user("eddie"), make_user("vera")
    story = make_story(olga, slug="hush", title="The Hush", visibility="private", premise="A quiet house.",
                       editors=[eddie], viewers=[vera])
    return {"story": story, "olga": olga, "eddie": eddie, "vera": vera, "otto": make_user("otto")}


def role_of(story, user):
    return Participant.objects.filter(story=story, user=user).values_list("role", flat=True).first()


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def expire(invite):
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


# --- Services -----------------------------------------------------------------------------------

def test_create_stores_only_the_hash_of_a_token_shown_once(tale):
    before = timezone.now()
    invite, raw = invite_create(story=tale["story"], by=tale["olga"], role="editor")
    assert len(raw) == 32 and re.fullmatch(r"[A-Za-z0-9_-]+", raw)
    assert invite.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert invite.prefix == raw[:8]
    stored = Invite.objects.filter(pk=invite.pk).values().get()
    assert raw not in json.dumps(stored, default=str)
    assert (invite.role, invite.uses, invite.revoked_at, invite.last_used_at) == ("editor", 0, None, None)
    assert invite.created_by == tale["olga"] and invite.state == "live"
    # Seven days by default.
    assert before + timedelta(hours=168) <= invite.expires_at <= timezone.now() + timedelta(hours=168)
    short, _ = invite_create(story=tale["story"], by=tale["olga"], role="viewer", expires_in_hours=1)
    assert short.expires_at <= timezone.now() + timedelta(hours=1)
    other, raw2 = invite_create(story=tale["story"], by=tale["olga"], role="viewer", expires_in_hours=720)
    assert raw2 != raw and other.key_hash != invite.key_hash


@pytest.mark.parametrize("role", ["owner", "admin", "", None, ["editor"]])
def test_create_refuses_other_roles(tale, role):
    with pytest.raises(Invalid) as caught:
        invite_create(story=tale["story"], by=tale["olga"], role=role)
    assert "role" in caught.value.details
    assert not Invite.objects.exists()


@pytest.mark.parametrize("hours", [0, -1, 721, 10_000, "12", 1.5, True, None])
def test_create_refuses_expiry_outside_1_to_720_hours(tale, hours):
    with pytest.raises(Invalid) as caught:
        invite_create(story=tale["story"], by=tale["olga"], role="viewer", expires_in_hours=hours)
    assert "expires_in_hours" in caught.value.details
    assert not Invite.objects.exists()


def test_at_most_50_live_invites_per_story(tale, make_story):
    story, olga = tale["story"], tale["olga"]
    invites = [invite_create(story=story, by=olga, role="viewer")[0] for _ in range(INVITE_MAX_LIVE)]
    assert INVITE_MAX_LIVE == 50
    with pytest.raises(Conflict):
        invite_create(story=story, by=olga, role="viewer")
    # Another story has its own 50.
    invite_create(story=make_story(olga, slug="elsewhere"), by=olga, role="viewer")
    # Revoked and expired links do not count.
    invite_revoke(invite=invites[0], by=olga)
    invite_create(story=story, by=olga, role="editor")
    expire(invites[1])
    invite_create(story=story, by=olga, role="editor")
    with pytest.raises(Conflict):
        invite_create(story=story, by=olga, role="viewer")
    assert Invite.objects.filter(story=story).count() == INVITE_MAX_LIVE + 2


def test_revoke_is_idempotent(tale):
    invite, raw = invite_create(story=tale["story"], by=tale["olga"], role="viewer")
    first = invite_revoke(invite=invite, by=tale["olga"])
    assert first.revoked_at is not None and first.state == "revoked"
    again = invite_revoke(invite=Invite.objects.get(pk=invite.pk), by=tale["olga"])
    assert again.revoked_at == first.revoked_at


def test_accept_adds_the_user_with_the_role_and_counts_uses(tale):
    story, otto = tale["story"], tale["otto"]
    invite, raw = invite_create(story=story, by=tale["olga"], role="viewer")
    participant, created = invite_accept(raw_token=raw, user=otto)
    assert created is True and (participant.user, participant.role) == (otto, "viewer")
    assert role_of(story, otto) == "viewer"
    # Through participant_add: otto is in the presence room too.
    assert Membership.objects.filter(channel__story=story, channel__name="room", user=otto).exists()
    invite.refresh_from_db()
    assert invite.uses == 1 and invite.last_used_at is not None
    # Again: already in, nothing changes but the count of uses.
    participant, created = invite_accept(raw_token=raw, user=otto)
    assert created is False and participant.role == "viewer"
    invite.refresh_from_db()
    assert invite.uses == 2
    # After leaving, the link still works while it is live.
    participant_remove(story=story, user=otto)
    assert invite_accept(raw_token=raw, user=otto)[1] is True


def test_accept_never_lowers_a_role(tale):
    story = tale["story"]
    viewer_link = invite_create(story=story, by=tale["olga"], role="viewer")[1]
    editor_link = invite_create(story=story, by=tale["olga"], role="editor")[1]
    for user, raw, expected in ((tale["olga"], editor_link, "owner"), (tale["olga"], viewer_link, "owner"),
                                (tale["eddie"], viewer_link, "editor"),
                                (tale["eddie"], editor_link, "editor"),
                                (tale["vera"], viewer_link, "viewer")):
        participant, created = invite_accept(raw_token=raw, user=user)
        assert (created, participant.role, role_of(story, user)) == (False, expected, expected), user
    # A viewer given an editor link becomes an editor (not a new participant).
    participant, created = invite_accept(raw_token=editor_link, user=tale["vera"])
    assert (created, participant.role, role_of(story, tale["vera"])) == (False, "editor", "editor")


def test_unknown_expired_and_revoked_links_get_the_same_answer(tale):
    story, otto = tale["story"], tale["otto"]
    expired, expired_raw = invite_create(story=story, by=tale["olga"], role="editor")
    expire(expired)
    revoked, revoked_raw = invite_create(story=story, by=tale["olga"], role="editor")
    invite_revoke(invite=revoked, by=tale["olga"])
    answers = []
    for raw in ("no-such-token-at-all-000000000000", expired_raw, revoked_raw, "", "x" * 500):
        with pytest.raises(NotFound) as caught:
            invite_accept(raw_token=raw, user=otto)
        answers.append((caught.value.code, caught.value.message, caught.value.details))
    assert answers == [("not_found", NOT_VALID, None)] * 5
    assert role_of(story, otto) is None
    assert list(Invite.objects.filter(story=story).values_list("uses", flat=True)) == [0, 0]


def test_agents_cannot_accept_links(tale, make_agent):
    scribe = make_agent("scribe")
    invite, raw = invite_create(story=tale["story"], by=tale["olga"], role="editor")
    with pytest.raises(Forbidden):
        invite_accept(raw_token=raw, user=scribe)
    with pytest.raises(Forbidden):  # the same for a bad token: an agent learns nothing about links
        invite_accept(raw_token="nope", user=scribe)
    assert role_of(tale["story"], scribe) is None
    invite.refresh_from_db()
    assert invite.uses == 0


async def _drain(layer, name):
    """Every event waiting on `name` (the layer's own receive, until it is quiet for 0.5 s)."""
    events = []
    while True:
        try:
            events.append(await asyncio.wait_for(layer.receive(name), 0.5))
        except asyncio.TimeoutError:
            return events


def test_accepting_publishes_what_participant_add_publishes(tale, django_capture_on_commit_callbacks):
    """One event loop for the whole listen (channels-redis binds a channel's buffer to the loop that
    first reads it); the accepts run in the test's thread, and their commit callbacks publish."""
    story, otto, vera = tale["story"], tale["otto"], tale["vera"]
    editor_link = invite_create(story=story, by=tale["olga"], role="editor")[1]

    def accept(user):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            invite_accept(raw_token=editor_link, user=user)
        return callbacks

    async def scenario():
        layer = get_channel_layer()
        name = await layer.new_channel()
        for group in (story_group(story.pk), user_rights_group(otto.pk), user_rights_group(vera.pk)):
            await layer.group_add(group, name)
        await sync_to_async(accept)(otto)
        first = await _drain(layer, name)
        await sync_to_async(accept)(vera)
        second = await _drain(layer, name)
        unchanged = await sync_to_async(accept)(tale["eddie"])
        return first, second, unchanged

    first, second, unchanged = async_to_sync(scenario)()
    joined = [e for e in first if e.get("event") == "participant.joined"]
    assert len(joined) == 1
    frame = json.loads(joined[0]["frame"])
    assert frame["data"]["username"] == "otto" and frame["data"]["role"] == "editor"
    assert any(e["group"] == user_rights_group(otto.pk) for e in first)  # otto's open topics are rechecked
    # An upgrade is a participant.updated event, as from participant_add.
    updated = [json.loads(e["frame"])["data"] for e in second if e.get("event") == "participant.updated"]
    assert [(d["username"], d["role"]) for d in updated] == [("vera", "editor")]
    # Nothing changes for someone already in with that role or more: no event.
    assert unchanged == []


# --- REST ---------------------------------------------------------------------------------------

def test_rest_owner_makes_lists_and_revokes_links(tale, api):
    owner = api(tale["olga"])
    base = "/api/stories/hush/invites"
    r = owner.post(base, {"role": "editor", "expires_in_hours": 24}, format="json")
    assert r.status_code == 201, r.content
    made = r.json()
    assert set(made) == INVITE_KEYS | {"token", "url"}
    raw = made["token"]
    assert made["url"] == f"/invite/{raw}/" == reverse("invite", args=[raw])
    assert (made["role"], made["prefix"], made["created_by"], made["state"], made["uses"]) == \
        ("editor", raw[:8], "olga", "live", 0)
    second = owner.post(base, {"role": "viewer"}, format="json").json()  # 7 days by default
    invite = Invite.objects.get(pk=second["id"])
    lifetime = invite.expires_at - invite.created_at
    assert abs(lifetime - timedelta(hours=168)) < timedelta(seconds=5)

    listed = owner.get(base)
    assert listed.status_code == 200
    page = listed.json()
    assert [i["id"] for i in page["results"]] == [second["id"], made["id"]]  # newest first
    assert page["next"] is None
    assert all(set(i) == INVITE_KEYS for i in page["results"])
    assert raw not in listed.content.decode() and invite.key_hash not in listed.content.decode()

    assert owner.delete(f"{base}/{made['id']}").status_code == 204
    assert owner.delete(f"{base}/{made['id']}").status_code == 204  # again: still revoked
    states = {i["id"]: i["state"] for i in owner.get(base).json()["results"]}
    assert states == {made["id"]: "revoked", second["id"]: "live"}
    expire(invite)
    assert owner.get(base).json()["results"][0]["state"] == "expired"

    r = owner.delete(f"{base}/999999")
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_rest_a_link_of_another_story_is_not_found(tale, api, make_story):
    other = make_story(tale["olga"], slug="other")
    invite, _ = invite_create(story=other, by=tale["olga"], role="viewer")
    r = api(tale["olga"]).delete(f"/api/stories/hush/invites/{invite.pk}")
    assert r.status_code == 404
    invite.refresh_from_db()
    assert invite.revoked_at is None


def test_rest_bad_bodies(tale, api):
    owner = api(tale["olga"])
    base = "/api/stories/hush/invites"
    for body, field in (({}, "role"), ({"role": "owner"}, "role"),
                        ({"role": "editor", "expires_in_hours": 0}, "expires_in_hours"),
                        ({"role": "editor", "expires_in_hours": 721}, "expires_in_hours"),
                        ({"role": "editor", "expires_in_hours": "5"}, "expires_in_hours"),
                        ({"role": "editor", "token": "mine"}, "token")):
        r = owner.post(base, body, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid", body
        assert field in r.json()["error"]["details"], body
    assert not Invite.objects.exists()


def test_rest_only_the_owner_sees_and_changes_links(tale, api):
    invite, _ = invite_create(story=tale["story"], by=tale["olga"], role="viewer")
    base = "/api/stories/hush/invites"
    for user, status in ((tale["eddie"], 403), (tale["vera"], 403), (tale["otto"], 404)):
        client = api(user)
        for response in (client.get(base), client.post(base, {"role": "viewer"}, format="json"),
                         client.delete(f"{base}/{invite.pk}")):
            assert response.status_code == status, (user, response.content)
            assert error_code(response) == ("forbidden" if status == 403 else "not_found")
    assert api(None).get(base).status_code == 401
    assert Invite.objects.count() == 1 and Invite.objects.get().revoked_at is None


def test_rest_accept(tale, api, make_agent):
    story = tale["story"]
    raw = invite_create(story=story, by=tale["olga"], role="editor")[1]
    otto = api(tale["otto"])
    r = otto.post(f"/api/invites/{raw}/accept")
    assert r.status_code == 201, r.content
    assert r.json() == {**r.json(), "username": "otto", "role": "editor", "kind": "human", "story": "hush"}
    assert otto.get("/api/stories/hush").json()["role"] == "editor"
    r = otto.post(f"/api/invites/{raw}/accept", {}, format="json")
    assert r.status_code == 200 and r.json()["role"] == "editor"
    r = api(tale["olga"]).post(f"/api/invites/{raw}/accept")
    assert r.status_code == 200 and r.json()["role"] == "owner"
    r = otto.post(f"/api/invites/{raw}/accept", {"role": "owner"}, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid"

    for bad in ("unknown-token", "x" * 300):
        r = otto.post(f"/api/invites/{bad}/accept")
        assert r.status_code == 404 and r.json()["error"]["message"] == NOT_VALID
    r = api(make_agent("scribe")).post(f"/api/invites/{raw}/accept")
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert api(None).post(f"/api/invites/{raw}/accept").status_code == 401


def test_rest_accept_is_rate_limited(tale, api, settings):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "write": ("1/m", 3)}  # four tries, then 429
    otto = api(tale["otto"])
    for _ in range(4):
        assert otto.post("/api/invites/guess/accept").status_code == 404
    r = otto.post("/api/invites/guess/accept")
    assert r.status_code == 429 and error_code(r) == "rate_limited" and int(r["Retry-After"]) >= 1


# --- Browser pages ------------------------------------------------------------------------------

def without_csrf(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


def test_invite_page_needs_a_sign_in(tale):
    raw = invite_create(story=tale["story"], by=tale["olga"], role="editor")[1]
    r = Client().get(f"/invite/{raw}/")
    assert r.status_code == 302 and r["Location"] == f"/accounts/login/?next=/invite/{raw}/"
    r = Client().post(f"/invite/{raw}/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    assert role_of(tale["story"], tale["otto"]) is None


def test_invite_page_shows_the_story_and_role_and_joins(tale):
    story = tale["story"]
    raw = invite_create(story=story, by=tale["olga"], role="editor")[1]
    client = signed_in(tale["otto"])
    r = client.get(f"/invite/{raw}/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "The Hush" in html and "Join as editor" in html and 'id="invite-role">editor<' in html
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert "auth-card" in html  # styled with the site's own classes
    assert "<script" not in html
    assert role_of(story, tale["otto"]) is None  # looking is not joining

    r = client.post(f"/invite/{raw}/")
    assert r.status_code == 302 and r["Location"] == "/stories/hush/"
    assert role_of(story, tale["otto"]) == "editor"
    assert client.get("/stories/hush/").status_code == 200
    # Back on the link: already in, a way to the room instead of the button.
    html = client.get(f"/invite/{raw}/").content.decode()
    assert "already in this story" in html and "Join as" not in html and 'href="/stories/hush/"' in html


def test_invite_page_needs_csrf(tale):
    raw = invite_create(story=tale["story"], by=tale["olga"], role="viewer")[1]
    client = Client(enforce_csrf_checks=True)
    client.force_login(tale["otto"])
    assert client.post(f"/invite/{raw}/").status_code == 403
    assert role_of(tale["story"], tale["otto"]) is None


def test_invite_page_for_a_link_that_no_longer_works(tale):
    story = tale["story"]
    expired, expired_raw = invite_create(story=story, by=tale["olga"], role="editor")
    expire(expired)
    revoked, revoked_raw = invite_create(story=story, by=tale["olga"], role="editor")
    invite_revoke(invite=revoked, by=tale["olga"])
    client = signed_in(tale["otto"])
    bodies = set()
    for raw in ("no-such-token", expired_raw, revoked_raw):
        for method in (client.get, client.post):
            r = method(f"/invite/{raw}/")
            assert r.status_code == 404
            html = r.content.decode()
            assert NOT_VALID.replace("'", "&#x27;") in html and "auth-card" in html
            assert "The Hush" not in html and "hush" not in html.replace(raw, "")
            bodies.add(without_csrf(html))
    assert len(bodies) == 1  # nothing tells an unknown link from a dead one
    assert role_of(story, tale["otto"]) is None


def test_invite_page_refuses_agents(tale, make_agent):
    raw = invite_create(story=tale["story"], by=tale["olga"], role="editor")[1]
    client = signed_in(make_agent("scribe"))
    assert "Agents cannot accept invite links" in client.get(f"/invite/{raw}/").content.decode()
    assert client.post(f"/invite/{raw}/").status_code == 403


def test_invite_page_is_rate_limited(tale, settings):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "write": ("1/m", 3)}
    client = signed_in(tale["otto"])
    for _ in range(4):
        assert client.get("/invite/guess/").status_code == 404
    r = client.get("/invite/guess/")
    assert r.status_code == 429 and "Too many tries" in r.content.decode() and int(r["Retry-After"]) >= 1


def test_no_access_page_is_the_same_for_a_private_story_and_no_story(tale):
    client = signed_in(tale["otto"])
    bodies = set()
    for path in ("/stories/hush/", "/stories/no-such-story/", "/stories/hush/agents/",
                 "/stories/no-such-story/agents/"):
        r = client.get(path)
        assert r.status_code == 404, path
        html = r.content.decode()
        assert "No story here for you" in html and "auth-card" in html, path
        assert "it is private and you are not in it" in html and "@otto" in html
        assert 'href="/"' in html  # back to the lobby
        assert "The Hush" not in html and "quiet house" not in html
        bodies.add(without_csrf(html))
    assert len(bodies) == 1
    # Participants still get the room.
    assert signed_in(tale["vera"]).get("/stories/hush/").status_code == 200
    assert signed_in(tale["vera"]).get("/stories/hush/agents/").status_code == 200


# --- Admin and export ---------------------------------------------------------------------------

def test_admin_lists_invites_and_revokes_them(tale, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    client = signed_in(boss)
    live, raw = invite_create(story=tale["story"], by=tale["olga"], role="editor")
    other, other_raw = invite_create(story=tale["story"], by=tale["olga"], role="viewer")
    changelist = reverse("admin:stories_invite_changelist")
    html = client.get(changelist).content.decode()
    assert f"{live.prefix}…" in html and "hush" in html and "live" in html
    assert raw not in html and live.key_hash not in html
    page = client.get(reverse("admin:stories_invite_change", args=[live.pk])).content.decode()
    assert raw not in page and live.key_hash not in page and f"{live.prefix}…" in page
    assert client.get(reverse("admin:stories_invite_add")).status_code == 403
    for state in ("live", "expired", "revoked"):
        assert client.get(f"{changelist}?state={state}").status_code == 200

    r = client.post(changelist, {"action": "revoke_selected", "_selected_action": [live.pk]}, follow=True)
    assert r.status_code == 200 and "Revoked 1 invite link." in r.content.decode()
    live.refresh_from_db()
    other.refresh_from_db()
    assert live.state == "revoked" and other.state == "live"
    with pytest.raises(NotFound):
        invite_accept(raw_token=raw, user=tale["otto"])
    assert "revoked" in client.get(changelist).content.decode()


def test_export_lists_invites_without_tokens(tale, api):
    invite, raw = invite_create(story=tale["story"], by=tale["olga"], role="editor")
    old, old_raw = invite_create(story=tale["story"], by=tale["olga"], role="viewer")
    invite_revoke(invite=old, by=tale["olga"])
    invite_accept(raw_token=raw, user=tale["otto"])
    r = api(tale["olga"]).get("/api/stories/hush/export")
    text = b"".join(r.streaming_content).decode()
    body = json.loads(text)
    assert [(i["id"], i["state"], i["uses"]) for i in body["invites"]] == [(old.pk, "revoked", 0),
                                                                           (invite.pk, "live", 1)]
    assert all(set(i) == INVITE_KEYS for i in body["invites"])
    for secret in (raw, old_raw, invite.key_hash, old.key_hash):
        assert secret not in text


def test_participant_add_by_username_still_works_beside_links(tale):
    """Inviting by username is unchanged: the owner adds otto directly."""
    participant, created = participant_add(story=tale["story"], user=tale["otto"], role="viewer")
    assert created and role_of(tale["story"], tale["otto"]) == "viewer"
