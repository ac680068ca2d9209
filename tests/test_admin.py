"""The Django admin (SPEC 11), as a superuser sees it: every screen loads, messages are a read-only
audit trail with payload search, tokens are revoked and rotated (the new one shown once) and the
stored token hash never reaches a page."""
import html
import json
import re

import pytest
from django.urls import reverse

from accounts.models import ApiToken, User
from accounts.services import token_issue
from agents.models import AgentProfile
from messaging.models import Channel, Membership, Message, MessageRecipient, ReadCursor
from messaging.policies import access_channel
from messaging.services import channel_create, cursor_ack, member_add, member_remove, message_post
from mythline_site.errors import MythlineError
from stories.models import Document, Participant, Story
from stories.services import participant_add, participant_remove

RAW_TOKEN_RE = re.compile(r"myth_[A-Za-z0-9_-]{40,}")


def post(user, story, channel, msg_type, payload, **extra):
    access = access_channel(user, story.slug, channel, for_write=True)
    data = {"msg_type": msg_type, "payload": payload, **extra}
    return message_post(sender=user, access=access, data=data).message


@pytest.fixture
def world(db, make_user, make_story, make_agent, client):
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    alice = make_user("alice", display_name="Alice Quill")
    story = make_story(alice, slug="tide", title="Tide")
    scribe = make_agent("scribe", capabilities=["narration"], stories=[story])
    backstage = channel_create(story=story, creator=alice, name="backstage", kind="private", topic="Spoilers")
    member_add(channel=backstage, user=scribe)
    first = post(alice, story, "general", "text", {"text": "The keeper hears a foghorn at midnight."})
    reply = post(scribe, story, "general", "narration", {"text": "Rain ran down the lantern glass."},
                 reply_to=str(first.pk), correlation_id="scene-1")
    secret = post(alice, story, "backstage", "proposal", {"text": "The stranger is her brother."},
                  audience=["scribe"])
    cursor_ack(channel=Channel.objects.get(story=story, name="general"), user=alice, seq=2)
    client.force_login(boss)
    return {"boss": boss, "alice": alice, "scribe": scribe, "story": story, "backstage": backstage,
            "first": first, "reply": reply, "secret": secret, "client": client,
            "token": token_issue(user=scribe, label="ci")}


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_changelist_and_a_change_page_load(world):
    client = world["client"]
    for model in (User, ApiToken, AgentProfile, Story, Participant, Channel, Membership, Message,
                  MessageRecipient, ReadCursor):
        response = client.get(url(model, "changelist"))
        assert response.status_code == 200, model
        obj = model.objects.order_by("pk").first()
        assert obj is not None, model
        response = client.get(url(model, "change", obj.pk))
        assert response.status_code == 200, model
    for model in (User, Story, Participant, Channel, Membership):
        assert client.get(url(model, "add")).status_code == 200, model
    index = client.get("/admin/").content.decode()
    for name in ("Stories", "Participants", "Channels", "Memberships", "Messages", "Message recipients",
                 "Read cursors", "Agent profiles", "Api tokens", "Users"):
        assert f">{name}<" in index, name


def test_channel_and_story_screens_show_what_matters(world):
    client = world["client"]
    page = client.get(url(Channel, "changelist") + "?kind__exact=private").content.decode()
    assert "backstage" in page and "inbox.scribe" not in page
    page = client.get(url(Channel, "change", world["backstage"].pk)).content.decode()
    assert "Spoilers" in page and "scribe" in page  # the members inline
    page = client.get(url(Story, "change", world["story"].pk)).content.decode()
    assert "alice" in page and "scribe" in page and "editor" in page  # the participants inline
    page = client.get(url(User, "changelist") + "?kind=agent").content.decode()
    assert "scribe" in page and "alice" not in page


def test_messages_are_read_only(world):
    client, message = world["client"], world["first"]
    assert client.get(url(Message, "add")).status_code == 403
    assert client.post(url(Message, "add"), {"msg_type": "text"}).status_code == 403
    assert client.get(url(Message, "delete", message.pk)).status_code == 403
    assert client.post(url(Message, "delete", message.pk), {"post": "yes"}).status_code == 403

    page = client.get(url(Message, "change", message.pk)).content.decode()
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    # The payload, pretty-printed, and the reply thread.
    assert html.escape(json.dumps(message.payload, indent=2), quote=True) in page
    assert "narration by scribe" in page

    response = client.post(url(Message, "change", message.pk), {"msg_type": "vote", "payload": "{}"})
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.msg_type == "text"
    assert message.payload == {"text": "The keeper hears a foghorn at midnight."}

    changelist = client.get(url(Message, "changelist")).content.decode()
    assert "delete_selected" not in changelist
    response = client.post(url(Message, "changelist"), {"action": "delete_selected",
                                                        "_selected_action": [str(message.pk)], "post": "yes"})
    assert Message.objects.filter(pk=message.pk).exists()

    for model in (MessageRecipient, ReadCursor):
        obj = model.objects.first()
        assert client.get(url(model, "add")).status_code == 403
        assert client.get(url(model, "delete", obj.pk)).status_code == 403
        assert 'name="_save"' not in client.get(url(model, "change", obj.pk)).content.decode()


def test_message_list_columns_and_filters(world):
    client, story = world["client"], world["story"]
    general = Channel.objects.get(story=story, name="general")
    page = client.get(url(Message, "changelist")).content.decode()
    assert "The keeper hears a foghorn" in page and "narration" in page and "backstage" in page

    def shown(query):
        response = client.get(url(Message, "changelist") + query)
        assert response.status_code == 200, query
        return {m.pk for m in response.context["cl"].result_list}

    assert shown(f"?channel={general.pk}") == {world["first"].pk, world["reply"].pk}
    assert shown("?msg_type=proposal") == {world["secret"].pk}
    assert shown("?sender_kind=agent") == {world["reply"].pk}
    assert shown(f"?story__id__exact={story.pk}&sender_kind=human") == {world["first"].pk, world["secret"].pk}
    created = world["first"].created_at
    assert world["first"].pk in shown(f"?created_at__year={created.year}&created_at__month={created.month}")
    assert shown(f"?sender__id__exact={world['scribe'].pk}") == {world["reply"].pk}


def test_message_search_looks_in_the_payload_and_the_sender(world):
    client = world["client"]

    def search(q):
        response = client.get(url(Message, "changelist"), {"q": q})
        assert response.status_code == 200
        return response.content.decode(), {m.pk for m in response.context["cl"].result_list}

    page, found = search("foghorn")
    assert found == {world["first"].pk}
    assert "The keeper hears a foghorn" in page and "Rain ran down" not in page
    assert search("LANTERN glass")[1] == {world["reply"].pk}  # case-insensitive, every word must match
    assert search("scribe")[1] == {world["reply"].pk}  # the sender's username
    assert search("brother")[1] == {world["secret"].pk}
    assert search(str(world["secret"].pk))[1] == {world["secret"].pk}
    assert search("nothing-like-this")[1] == set()
    # Non-ASCII words and quotes are found too (SQLite stores JSON ASCII-escaped; Postgres does not).
    cafe = post(world["alice"], world["story"], "general", "text", {"text": 'They met at the "Café Marée".'})
    assert search("marée")[1] == {cafe.pk}
    assert search('"Café')[1] == {cafe.pk}


def test_token_revoke_action(world, api):
    client, scribe = world["client"], world["scribe"]
    raw = world["token"]
    token = ApiToken.objects.get(user=scribe)
    assert api(None).get("/api/inbox", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    response = client.post(url(ApiToken, "changelist"), {"action": "revoke_selected",
                                                         "_selected_action": [str(token.pk)]}, follow=True)
    assert response.status_code == 200
    assert "Revoked 1 token." in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api(None).get("/api/inbox", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_token_rotate_action_shows_the_new_token_once(world, api):
    client, scribe = world["client"], world["scribe"]
    old_raw = world["token"]
    token = ApiToken.objects.get(user=scribe)
    response = client.post(url(ApiToken, "changelist"), {"action": "rotate_selected",
                                                         "_selected_action": [str(token.pk)]}, follow=True)
    page = response.content.decode()
    shown = RAW_TOKEN_RE.findall(page)
    assert len(shown) == 1 and shown[0] != old_raw
    new_raw = shown[0]
    token.refresh_from_db()
    assert token.revoked_at is not None
    fresh = ApiToken.objects.get(user=scribe, revoked_at__isnull=True)
    assert fresh.label == "ci" and new_raw.startswith(fresh.prefix)
    assert api(None).get("/api/inbox", HTTP_AUTHORIZATION=f"Bearer {new_raw}").status_code == 200
    assert api(None).get("/api/inbox", HTTP_AUTHORIZATION=f"Bearer {old_raw}").status_code == 401
    # Shown once: the next page does not have it.
    assert new_raw not in client.get(url(ApiToken, "changelist")).content.decode()
    # A revoked token is not rotated again.
    response = client.post(url(ApiToken, "changelist"), {"action": "rotate_selected",
                                                         "_selected_action": [str(token.pk)]}, follow=True)
    assert not RAW_TOKEN_RE.findall(response.content.decode())
    assert ApiToken.objects.filter(user=scribe, revoked_at__isnull=True).count() == 1


def test_token_hash_never_appears_in_the_admin(world):
    client, scribe = world["client"], world["scribe"]
    token_issue(user=world["alice"], label="laptop")
    token = ApiToken.objects.filter(user=scribe).first()
    profile = AgentProfile.objects.get(user=scribe)
    assert client.get(url(ApiToken, "add")).status_code == 403
    assert client.get(url(ApiToken, "delete", token.pk)).status_code == 403
    pages = [
        client.get(url(ApiToken, "changelist")),
        client.get(url(ApiToken, "changelist") + f"?user__id__exact={scribe.pk}"),
        client.get(url(ApiToken, "change", token.pk)),
        client.get(url(ApiToken, "history", token.pk)),
        client.get(url(User, "changelist")),
        client.get(url(User, "change", scribe.pk)),
        client.get(url(User, "change", world["alice"].pk)),
        client.get(url(AgentProfile, "changelist")),
        client.get(url(AgentProfile, "change", profile.pk)),
        client.post(url(ApiToken, "changelist"), {"action": "rotate_selected",
                                                  "_selected_action": [str(token.pk)]}, follow=True),
        client.post(url(AgentProfile, "changelist"), {"action": "issue_token_action",
                                                      "_selected_action": [str(profile.pk)]}, follow=True),
        client.get("/admin/"),
    ]
    hashes = list(ApiToken.objects.values_list("key_hash", flat=True))
    assert len(hashes) >= 4
    for response in pages:
        assert response.status_code == 200
        page = response.content.decode()
        for key_hash in hashes:
            assert key_hash not in page and key_hash[:16] not in page
    # Searching by the hash finds nothing either.
    response = client.get(url(ApiToken, "changelist"), {"q": hashes[0]})
    assert list(response.context["cl"].result_list) == []
    # The token screen lists prefix, user, label and dates.
    page = client.get(url(ApiToken, "changelist")).content.decode()
    assert token.prefix in page and "laptop" in page and "scribe" in page


def test_story_and_members_added_in_admin_go_through_the_services(world):
    client, alice, scribe = world["client"], world["alice"], world["scribe"]
    response = client.post(url(Story, "add"), {
        "slug": "harbour", "title": "Harbour", "premise": "", "visibility": "public", "owner": alice.pk,
        "participants-TOTAL_FORMS": "1", "participants-INITIAL_FORMS": "0",
        "participants-MIN_NUM_FORMS": "0", "participants-MAX_NUM_FORMS": "1000",
        "participants-0-user": scribe.pk, "participants-0-role": "editor",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    story = Story.objects.get(slug="harbour")
    assert set(story.channels.values_list("name", flat=True)) == {"general", "room", "inbox.scribe"}
    roles = dict(story.participants.values_list("user__username", "role"))
    assert roles == {"alice": "owner", "scribe": "editor"}

    # A private channel from the admin; a member who is not in the story is refused.
    response = client.post(url(Channel, "add"), {"story": story.pk, "name": "plots", "kind": "private",
                                                  "topic": "", "created_by": alice.pk})
    assert response.status_code == 302
    channel = Channel.objects.get(story=story, name="plots")
    assert list(channel.memberships.values_list("user__username", "role")) == [("alice", "owner")]
    outsider = User.objects.create_user("outsider", password="pw-outsider-123")
    response = client.post(url(Membership, "add"), {"channel": channel.pk, "user": outsider.pk})
    assert response.status_code == 200 and "does not take part in this story" in response.content.decode()
    response = client.post(url(Membership, "add"), {"channel": channel.pk, "user": scribe.pk})
    assert response.status_code == 302
    assert channel.memberships.filter(user=scribe).exists()

    # Archive from the changelist: posting is then refused.
    response = client.post(url(Channel, "changelist"), {"action": "archive_selected",
                                                        "_selected_action": [str(channel.pk)]}, follow=True)
    assert "Archived 1 channel." in response.content.decode()
    channel.refresh_from_db()
    assert channel.archived_at is not None
    assert client.get(url(Channel, "delete", channel.pk)).status_code == 403


def test_story_edit_and_participant_removal_in_admin(world):
    client, story, alice, scribe = world["client"], world["story"], world["alice"], world["scribe"]
    owner_row = Participant.objects.get(story=story, user=alice)
    scribe_row = Participant.objects.get(story=story, user=scribe)
    form = {
        "title": "Tide, revised", "premise": "A keeper and a storm.", "visibility": "private",
        "participants-TOTAL_FORMS": "2", "participants-INITIAL_FORMS": "2",
        "participants-MIN_NUM_FORMS": "0", "participants-MAX_NUM_FORMS": "1000",
        "participants-0-id": owner_row.pk, "participants-0-story": story.pk,
        "participants-0-user": alice.pk, "participants-0-role": "owner",
        "participants-1-id": scribe_row.pk, "participants-1-story": story.pk,
        "participants-1-user": scribe.pk, "participants-1-role": "viewer",
    }
    response = client.post(url(Story, "change", story.pk), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    story.refresh_from_db()
    assert (story.title, story.visibility, story.slug) == ("Tide, revised", "private", "tide")
    assert Participant.objects.get(pk=scribe_row.pk).role == "viewer"

    # The owner's row cannot be removed or demoted.
    response = client.post(url(Story, "change", story.pk), {**form, "participants-0-role": "editor"})
    assert response.status_code == 200 and "cannot be changed" in response.content.decode()
    assert client.get(url(Participant, "delete", owner_row.pk)).status_code == 403

    # Removing a participant takes them out of the story's private channels too (not their inbox).
    assert Membership.objects.filter(channel=world["backstage"], user=scribe).exists()
    response = client.post(url(Participant, "delete", scribe_row.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Participant.objects.filter(story=story, user=scribe).exists()
    assert not Membership.objects.filter(channel__story=story, user=scribe).exclude(
        channel__name="inbox.scribe").exists()

    # Adding one back from the participant screen joins the room again.
    response = client.post(url(Participant, "add"), {"story": story.pk, "user": scribe.pk, "role": "editor"})
    assert response.status_code == 302
    assert Membership.objects.filter(channel__story=story, channel__name="room", user=scribe).exists()


def test_channel_members_inline_adds_and_removes_through_the_services(world, make_user):
    client, story, backstage = world["client"], world["story"], world["backstage"]
    reader = make_user("reader")
    Participant.objects.create(story=story, user=reader, role="viewer")
    rows = list(backstage.memberships.order_by("pk"))  # alice (owner), scribe
    form = {"topic": "Spoilers only", "idle_archive_seconds": "",
            "memberships-TOTAL_FORMS": str(len(rows) + 1), "memberships-INITIAL_FORMS": str(len(rows)),
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
            f"memberships-{len(rows)}-user": reader.pk, f"memberships-{len(rows)}-channel": backstage.pk}
    for i, row in enumerate(rows):
        form[f"memberships-{i}-id"] = row.pk
        form[f"memberships-{i}-channel"] = backstage.pk
    form["memberships-1-DELETE"] = "on"  # scribe leaves
    response = client.post(url(Channel, "change", backstage.pk), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    backstage.refresh_from_db()
    assert backstage.topic == "Spoilers only"
    assert set(backstage.memberships.values_list("user__username", flat=True)) == {"alice", "reader"}


def refusal(write, **kwargs) -> str:
    """What the service says when it refuses this write (as the page shows it: HTML-escaped)."""
    with pytest.raises(MythlineError) as refused:
        write(**kwargs)
    return html.escape(refused.value.message)


def counts():
    return [model.objects.count() for model in (Story, Participant, Channel, Membership, Document)]


def test_admin_member_rows_show_the_services_own_refusal(world, django_capture_on_commit_callbacks):
    client, story, alice, scribe = world["client"], world["story"], world["alice"], world["scribe"]
    general = Channel.objects.get(story=story, name="general")
    inbox = Channel.objects.get(story=story, name="inbox.scribe")
    outsider = User.objects.create_user("outsider", password="pw-outsider-123")
    before = counts()
    for channel, user in ((general, alice), (inbox, alice), (world["backstage"], outsider)):
        message = refusal(member_add, channel=channel, user=user)
        # Tried with the service and rolled back: nothing stored, no event sent after commit.
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(url(Membership, "add"), {"channel": channel.pk, "user": user.pk})
        assert response.status_code == 200 and message in response.content.decode(), (channel.name, message)
        assert callbacks == [] and counts() == before

    # A good row is tried, rolled back, then added for real: its events go out once, as from the API.
    first, second = User.objects.create_user("reader1"), User.objects.create_user("reader2")
    for reader in (first, second):
        participant_add(story=story, user=reader, role="viewer")
    with django_capture_on_commit_callbacks() as direct:
        member_add(channel=world["backstage"], user=first)
    with django_capture_on_commit_callbacks() as through_admin:
        response = client.post(url(Membership, "add"), {"channel": world["backstage"].pk, "user": second.pk})
    assert response.status_code == 302 and world["backstage"].memberships.filter(user=second).exists()
    assert len(direct) > 0 and len(through_admin) == len(direct)
    before = counts()

    # An agent's own inbox row: the channel's member inline refuses to delete it, in member_remove's
    # words, and the membership screen offers no delete.
    own = Membership.objects.get(channel=inbox, user=scribe)
    message = refusal(member_remove, channel=inbox, user=scribe)
    response = client.post(url(Channel, "change", inbox.pk), {
        "topic": inbox.topic, "idle_archive_seconds": "",
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": own.pk, "memberships-0-channel": inbox.pk, "memberships-0-DELETE": "on"})
    assert response.status_code == 200 and message in response.content.decode()
    assert Membership.objects.filter(pk=own.pk).exists()
    assert client.get(url(Membership, "delete", own.pk)).status_code == 403
    other = Membership.objects.get(channel=world["backstage"], user=scribe)
    assert client.get(url(Membership, "delete", other.pk)).status_code == 200
    assert counts() == before


def test_admin_participant_rows_show_the_services_own_refusal(world):
    client, alice, scribe = world["client"], world["alice"], world["scribe"]
    owner_again = refusal(participant_add, story=world["story"], user=alice, role="editor")
    bad_role = refusal(participant_add, story=world["story"], user=scribe, role="owner")
    before = counts()
    story_form = {"slug": "harbour", "title": "Harbour", "premise": "", "visibility": "public", "owner": alice.pk,
                  "participants-TOTAL_FORMS": "1", "participants-INITIAL_FORMS": "0",
                  "participants-MIN_NUM_FORMS": "0", "participants-MAX_NUM_FORMS": "1000"}
    # A new story's rows are tried against the story it would be (created and rolled back).
    for user, role, message in ((alice, "editor", owner_again), (scribe, "owner", bad_role)):
        response = client.post(url(Story, "add"), {**story_form, "participants-0-user": user.pk,
                                                   "participants-0-role": role})
        assert response.status_code == 200 and message in response.content.decode(), message
        assert counts() == before and not Story.objects.filter(slug="harbour").exists()
    # An existing story's row, from the participant screen.
    response = client.post(url(Participant, "add"), {"story": world["story"].pk, "user": alice.pk, "role": "editor"})
    assert response.status_code == 200 and owner_again in response.content.decode()
    assert counts() == before

    # Ticking "delete" on the owner's row of the story's participant inline is refused too.
    story = world["story"]
    owner_stays = refusal(participant_remove, story=story, user=alice)
    rows = list(Participant.objects.filter(story=story).order_by("pk"))
    form = {"title": story.title, "premise": story.premise, "visibility": story.visibility,
            "participants-TOTAL_FORMS": str(len(rows)), "participants-INITIAL_FORMS": str(len(rows)),
            "participants-MIN_NUM_FORMS": "0", "participants-MAX_NUM_FORMS": "1000"}
    for i, row in enumerate(rows):
        form.update({f"participants-{i}-id": row.pk, f"participants-{i}-story": story.pk,
                     f"participants-{i}-user": row.user_id, f"participants-{i}-role": row.role})
        if row.role == "owner":
            form[f"participants-{i}-DELETE"] = "on"
    response = client.post(url(Story, "change", story.pk), form)
    assert response.status_code == 200 and owner_stays in response.content.decode()
    assert counts() == before and Participant.objects.filter(story=story, user=alice, role="owner").exists()


def test_agent_capabilities_are_edited_and_checked(world):
    client, scribe = world["client"], world["scribe"]
    profile = AgentProfile.objects.get(user=scribe)
    change = url(AgentProfile, "change", profile.pk)
    response = client.post(change, {"description": "Writes rain.", "capabilities": '["narration", "Bad Type"]'})
    assert response.status_code == 200 and "Give a JSON list of msg_type names" in response.content.decode()
    response = client.post(change, {"description": "Writes rain.", "capabilities": '["narration", "dialogue"]'})
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.capabilities == ["narration", "dialogue"] and profile.description == "Writes rain."
    assert client.get(url(AgentProfile, "add")).status_code == 403


def test_document_history_is_read_only_and_attributed(world):
    from stories.documents import document_edit
    from stories.models import Document, DocumentChange

    doc = Document.objects.get(story=world["story"], name="main")
    document_edit(doc=doc, author=world["scribe"], body={"append": "The lamp was lit."})
    change = DocumentChange.objects.get(document=doc)
    c = world["client"]
    page = c.get(url(Document, "change", doc.pk))
    assert page.status_code == 200 and b"The lamp was lit." in page.content and b"scribe" in page.content
    history = c.get(url(DocumentChange, "changelist"))
    assert history.status_code == 200 and b"scribe" in history.content
    assert c.get(url(DocumentChange, "add")).status_code == 403
    assert c.get(url(DocumentChange, "delete", change.pk)).status_code == 403
    c.post(url(DocumentChange, "change", change.pk), {"revision": 9})
    assert DocumentChange.objects.get(pk=change.pk).revision == 1
