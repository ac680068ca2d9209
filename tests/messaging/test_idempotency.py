"""Idempotency keys in a namespace of their sender's own, and ids that tell outsiders nothing.

The attack these close: a keyed post's id used to be UUIDv5(constant, "<sender pk>:<key>"), in the
same space as client-chosen ids. Sender pks are small integers and the crew's keys predictable
(`re:<message id>:ack`), so anyone could
- squat: post first with the id an agent's key would derive, and the agent's post answered 409
  (the crew skips a post on 409): an editor of any story silenced an agent everywhere;
- probe: post with that id and read 201 / 409 to learn whether the agent had answered a message
  in a channel (or a story) the prober cannot read.
Now the key is kept in its own column, unique per sender, and the message gets a random id; a
client-chosen id taken by someone else answers one 409 wherever that message is.
"""
import threading
import uuid

import pytest
from django.db import connection

from messaging import services
from messaging.models import Message
from messaging.policies import access_channel
from messaging.services import ID_TAKEN, channel_create, legacy_key_id, message_post
from mythline_site.errors import Conflict
from tests.concurrency import postgres_only
from tests.conftest import error_code

TEXT = {"msg_type": "text", "payload": {"text": "The lamp is lit."}}


def url(story, channel="general"):
    return f"/api/stories/{story.slug}/channels/{channel}/messages"


@pytest.fixture
def crew(make_user, make_story, make_agent, api):
    """alice's private story `tale` with the agent `narrator`; mallory, an outsider, edits her own
    public story `elsewhere`."""
    alice, mallory = make_user("alice"), make_user("mallory")
    tale = make_story(alice, slug="tale", visibility="private")
    narrator = make_agent("narrator", capabilities=["narration"], stories=[tale])
    elsewhere = make_story(mallory, slug="elsewhere")
    return {"tale": tale, "elsewhere": elsewhere, "alice": alice, "mallory": mallory, "narrator": narrator,
            "as": {u.username: api(u) for u in (alice, mallory, narrator)}}


def test_an_id_squatted_where_a_key_used_to_derive_it_does_not_stop_the_agent(crew):
    key = "re:6f0c1a52-3c1e-4a8e-9d7e-6b5e8c0f4a11:ack"  # how the crew builds its keys
    squatted = str(legacy_key_id(crew["narrator"], key))
    r = crew["as"]["mallory"].post(url(crew["elsewhere"]), {**TEXT, "id": squatted}, format="json")
    assert r.status_code == 201, r.content

    first = crew["as"]["narrator"].post(url(crew["tale"]), TEXT, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == 201, first.content  # the old code answered 409: the crew skipped it
    assert first.json()["id"] != squatted and first.json()["channel"] == "general"
    again = crew["as"]["narrator"].post(url(crew["tale"]), TEXT, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 200 and again.json() == first.json()
    assert Message.objects.filter(sender=crew["narrator"]).count() == 1


def test_probing_the_id_a_key_used_to_derive_learns_nothing(crew):
    key = "re:6f0c1a52-3c1e-4a8e-9d7e-6b5e8c0f4a11:ack"
    posted = crew["as"]["narrator"].post(url(crew["tale"]), TEXT, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert posted.status_code == 201
    # mallory cannot read `tale`; guessing the agent's key and its derived id used to answer 409
    # ("it answered that message"); now the id is free, like any other.
    probe = crew["as"]["mallory"].post(url(crew["elsewhere"]), {**TEXT, "id": str(legacy_key_id(crew["narrator"], key))},
                                       format="json")
    assert probe.status_code == 201
    assert crew["as"]["mallory"].get(f"/api/messages/{posted.json()['id']}").status_code == 404


def test_an_id_taken_by_someone_else_gets_one_answer_wherever_it_is(crew, make_user, api):
    alice, mallory = crew["alice"], crew["mallory"]
    bob = make_user("bob")
    crew["elsewhere"].participants.create(user=bob, role="editor")
    hidden = crew["as"]["alice"].post(url(crew["tale"]), TEXT, format="json").json()["id"]  # a story mallory cannot read
    seen = api(bob).post(url(crew["elsewhere"]), TEXT, format="json").json()["id"]  # one she reads
    assert crew["as"]["mallory"].get(f"/api/messages/{seen}").status_code == 200

    answers = []
    for taken in (hidden, seen):
        for body in ({**TEXT, "id": taken}, {"msg_type": "note", "payload": {"x": 1}, "id": taken}):
            r = crew["as"]["mallory"].post(url(crew["elsewhere"]), body, format="json")
            assert r.status_code == 409 and error_code(r) == "conflict"
            answers.append(r.json())
    assert all(a == answers[0] for a in answers), answers  # the same, whatever channel, story or content
    assert answers[0]["error"] == {"code": "conflict", "message": ID_TAKEN, "details": {"id": "already taken"}}
    assert Message.objects.filter(sender=mallory).count() == 0

    # Its own sender is told more: the id is hers, used for other content or elsewhere.
    general = access_channel(alice, "tale", "general", for_write=True)
    with pytest.raises(Conflict) as caught:
        message_post(sender=alice, access=general, data={"msg_type": "text", "payload": {"text": "other"},
                                                         "id": hidden})
    assert caught.value.message != ID_TAKEN and caught.value.details == {"id": hidden}


def test_a_key_is_scoped_to_its_sender_and_names_one_post(crew):
    alice, narrator = crew["as"]["alice"], crew["as"]["narrator"]
    a = alice.post(url(crew["tale"]), TEXT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    n = narrator.post(url(crew["tale"]), TEXT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (a.status_code, n.status_code) == (201, 201) and a.json()["id"] != n.json()["id"]
    # The same key with other content, or in another channel: 409, and the details are the sender's own.
    channel_create(story=crew["tale"], creator=crew["alice"], name="notes", kind="public")
    for channel, body in (("general", {"msg_type": "text", "payload": {"text": "Other."}}), ("notes", TEXT)):
        r = alice.post(url(crew["tale"], channel), body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        assert r.status_code == 409 and error_code(r) == "conflict"
        assert r.json()["error"]["details"] == {"Idempotency-Key": "already used for different content",
                                                "id": a.json()["id"]}
    # With an id too, the body's id wins: the key is not looked at, nor kept.
    mid = str(uuid.uuid4())
    r = alice.post(url(crew["tale"]), {**TEXT, "id": mid}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert r.status_code == 201 and r.json()["id"] == mid
    assert Message.objects.get(pk=mid).idempotency_key is None
    assert Message.objects.filter(idempotency_key="k-1").count() == 2


def test_a_key_with_control_characters_is_refused(crew):
    for bad in ("a\tb", "a\x7fb", "k\x00"):
        r = crew["as"]["alice"].post(url(crew["tale"]), TEXT, format="json", HTTP_IDEMPOTENCY_KEY=bad)
        assert r.status_code == 400 and error_code(r) == "invalid"
        assert set(r.json()["error"]["details"]) == {"Idempotency-Key"}
    r = crew["as"]["alice"].post(url(crew["tale"]), TEXT, format="json", HTTP_IDEMPOTENCY_KEY="scène 4 · ✓")
    assert r.status_code == 201


def test_a_post_stored_before_the_key_column_still_answers_its_repeat(crew):
    """Rows from before migration 0003: the id was derived from the key and no key was kept."""
    narrator = crew["narrator"]
    general = access_channel(narrator, "tale", "general", for_write=True)
    old = message_post(sender=narrator, access=general, data={**TEXT, "id": str(legacy_key_id(narrator, "old-key"))})
    assert old.created and Message.objects.get(pk=old.message.pk).idempotency_key is None
    again = crew["as"]["narrator"].post(url(crew["tale"]), TEXT, format="json", HTTP_IDEMPOTENCY_KEY="old-key")
    assert again.status_code == 200 and again.json()["id"] == str(old.message.pk)
    other = crew["as"]["narrator"].post(url(crew["tale"]), {"msg_type": "text", "payload": {"text": "Changed."}},
                                        format="json", HTTP_IDEMPOTENCY_KEY="old-key")
    assert other.status_code == 409 and error_code(other) == "conflict"
    assert Message.objects.filter(sender=narrator).count() == 1


def test_a_routed_post_keeps_its_key_per_inbox_and_cannot_be_squatted(crew, make_agent):
    tale, alice = crew["tale"], crew["as"]["alice"]
    make_agent("plotter", capabilities=["narration"], stories=[tale])
    legacy_base = legacy_key_id(crew["alice"], "route-1")
    for agent in ("narrator", "plotter"):  # the copies' old derived ids, taken in advance
        r = crew["as"]["mallory"].post(url(crew["elsewhere"]),
                                       {**TEXT, "id": str(uuid.uuid5(legacy_base, agent))}, format="json")
        assert r.status_code == 201
    body = {"msg_type": "narration", "payload": {"text": "The keeper climbs."}}
    first = alice.post(f"/api/stories/{tale.slug}/route", body, format="json", HTTP_IDEMPOTENCY_KEY="route-1")
    assert first.status_code == 201, first.content
    assert first.json()["routed_to"] == ["narrator", "plotter"]
    again = alice.post(f"/api/stories/{tale.slug}/route", body, format="json", HTTP_IDEMPOTENCY_KEY="route-1")
    assert again.status_code == 200 and again.json() == first.json()
    # A plain post may use the same key: a route's copies are kept under the key and their agent.
    plain = alice.post(url(tale), TEXT, format="json", HTTP_IDEMPOTENCY_KEY="route-1")
    assert plain.status_code == 201
    changed = alice.post(f"/api/stories/{tale.slug}/route", {**body, "payload": {"text": "Another."}},
                         format="json", HTTP_IDEMPOTENCY_KEY="route-1")
    assert changed.status_code == 409 and error_code(changed) == "conflict"
    assert Message.objects.filter(sender=crew["alice"]).count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_key_store_it_once(make_user, make_story):
    alice = make_user("alice")
    story = make_story(alice)
    results, errors = [], []
    start = threading.Barrier(6)

    def send():
        try:
            start.wait()
            access = access_channel(alice, story.slug, "general", for_write=True)
            results.append(message_post(sender=alice, access=access, data=TEXT, idempotency_key="once"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert sum(r.created for r in results) == 1 and len({r.message.pk for r in results}) == 1
    assert Message.objects.filter(story=story).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_identical_keyed_routes_at_once_both_answer_with_one_set_of_copies(
        make_user, make_story, make_agent, api, monkeypatch):
    """Both requests look the key up, find nothing, and insert: on PostgreSQL the loser's insert
    waits for the winner's commit and hits `message_idempotency_key_unique`. It used to answer
    500; now it looks the key up again and answers 200 with the winner's copies."""
    postgres_only()
    alice = make_user("alice")
    tale = make_story(alice, slug="tale")
    make_agent("narrator", capabilities=["narration"], stories=[tale])
    make_agent("plotter", capabilities=["narration"], stories=[tale])
    clients = [api(alice), api(alice)]
    body = {"msg_type": "narration", "payload": {"text": "The keeper climbs."}}
    # Hold each request just after its first lookup until both have looked (nothing found), so
    # both go on to insert: the race, every time. Later lookups (the retry) pass straight on.
    looked, lock = threading.Barrier(2, timeout=30), threading.Lock()
    calls = []
    real_lookup = services._keyed_messages

    def lookup_then_wait(sender, slots):
        found = real_lookup(sender, slots)
        with lock:
            calls.append(1)
            first_two = len(calls) <= 2
        if first_two:
            looked.wait()
        return found

    monkeypatch.setattr(services, "_keyed_messages", lookup_then_wait)
    answers, errors = [None, None], []

    def send(i):
        try:
            answers[i] = clients[i].post(f"/api/stories/{tale.slug}/route", body, format="json",
                                         HTTP_IDEMPOTENCY_KEY="route-race")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(a.status_code for a in answers) == [200, 201], [a.content[:300] for a in answers]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["routed_to"] == ["narrator", "plotter"]
    assert Message.objects.filter(sender=alice).count() == 2
