"""Relations in the log (issue 17): edits, deletions and reactions are new messages, each with its own
seq, that relate to an earlier one; reads give the aggregated view. Rules, refusals, idempotency,
the export, the admin, and the number of queries a page costs."""
import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import services
from messaging.models import Message
from tests.conftest import error_code

pytestmark = pytest.mark.django_db

MESSAGES = "/api/stories/tale/channels/{}/messages"


@pytest.fixture
def room(make_user, make_story, make_agent, api):
    """alice owns the public story `tale`; bob and carol edit; vera views; ozzie takes no part."""
    alice, bob, carol, vera, ozzie = (make_user(n) for n in ("alice", "bob", "carol", "vera", "ozzie"))
    story = make_story(alice, slug="tale", editors=[bob, carol], viewers=[vera])
    narrator = make_agent("narrator", capabilities=["narration"], stories=[story])
    services.channel_create(story=story, creator=bob, name="backstage", kind="private")
    users = {"alice": alice, "bob": bob, "carol": carol, "vera": vera, "ozzie": ozzie, "narrator": narrator}
    return {"story": story, "users": users, **{name: api(user) for name, user in users.items()}}


def post(client, body, channel="general", expect=201):
    r = client.post(MESSAGES.format(channel), body, format="json")
    assert r.status_code == expect, r.content
    return r.json()


def say(client, text, channel="general", msg_type="text"):
    return post(client, {"msg_type": msg_type, "payload": {"text": text}}, channel)


def edit(client, target, payload, **extra):
    return client.post(MESSAGES.format(extra.pop("channel", "general")),
                       {"msg_type": "edit", "payload": {"payload": payload}, "relates_to": target, **extra},
                       format="json")


def delete(client, target, channel="general", **payload):
    return client.post(MESSAGES.format(channel), {"msg_type": "delete", "payload": payload, "relates_to": target},
                       format="json")


def react(client, target, key, channel="general", **extra):
    return client.post(MESSAGES.format(channel), {"msg_type": "reaction", "payload": {"key": key},
                                                  "relates_to": target, **extra}, format="json")


def page(client, channel="general", **params):
    r = client.get(MESSAGES.format(channel), params)
    assert r.status_code == 200, r.content
    return r.json()["results"]


def by_id(results, message_id):
    return next(m for m in results if m["id"] == message_id)


def count_messages():
    return Message.objects.count()


def test_edit_delete_react_are_log_entries_and_reads_aggregate(room):
    first = say(room["bob"], "The lamp gutered.")
    assert first["edited_at"] is None and first["deleted"] is False and first["reactions"] == []
    assert first["relates_to"] is None and first["rel_type"] is None
    r = edit(room["bob"], first["id"], {"text": "The lamp guttered."})
    assert r.status_code == 201, r.content
    fix = r.json()
    assert fix["seq"] == 2 and fix["msg_type"] == "edit" and fix["rel_type"] == "replace"
    assert fix["relates_to"] == first["id"]
    assert fix["target"]["payload"] == {"text": "The lamp guttered."} and fix["target"]["edited_at"] == fix["created_at"]
    like = react(room["carol"], first["id"], "👍").json()
    assert like["seq"] == 3 and like["rel_type"] == "annotate"
    assert like["target"]["reactions"] == [{"key": "👍", "count": 1, "me": None}]  # broadcast: no reader
    react(room["alice"], first["id"], "👍")
    react(room["alice"], first["id"], "wow")

    results = page(room["carol"])
    assert [m["seq"] for m in results] == [1, 2, 3, 4, 5]  # the relations stay in the log
    shown = by_id(results, first["id"])
    assert shown["payload"] == {"text": "The lamp guttered."} and shown["edited_at"] == fix["created_at"]
    assert shown["deleted"] is False
    assert shown["reactions"] == [{"key": "👍", "count": 2, "me": True}, {"key": "wow", "count": 1, "me": False}]
    assert by_id(page(room["bob"]), first["id"])["reactions"][0]["me"] is False
    # The message detail and the thread give the same view.
    detail = room["vera"].get(f"/api/messages/{first['id']}").json()
    assert detail["payload"] == shown["payload"] and detail["reactions"][0]["count"] == 2
    thread = room["vera"].get(f"/api/messages/{first['id']}/thread").json()
    assert thread["results"][0]["edited_at"] == fix["created_at"]

    # Deleting: the original row is untouched; the view shows a tombstone.
    gone = delete(room["bob"], first["id"], reason="typo")
    assert gone.status_code == 201, gone.content
    assert gone.json()["target"]["deleted"] is True and gone.json()["target"]["payload"] is None
    shown = by_id(page(room["vera"]), first["id"])
    assert shown["deleted"] is True and shown["payload"] is None
    assert Message.objects.get(pk=first["id"]).payload == {"text": "The lamp gutered."}  # nothing rewritten


def test_taking_back_a_reaction_and_reacting_once_per_key(room):
    first = say(room["bob"], "Night fell.")
    like = react(room["carol"], first["id"], "🔥")
    assert like.status_code == 201
    again = react(room["carol"], first["id"], "🔥")
    assert again.status_code == 200 and again.json()["id"] == like.json()["id"]  # created: false, nothing stored
    assert count_messages() == 2
    # Someone else may not take carol's reaction back; carol may; then react again.
    assert delete(room["bob"], like.json()["id"]).status_code == 403
    undo = delete(room["carol"], like.json()["id"])
    assert undo.status_code == 201 and undo.json()["target"]["deleted"] is True
    assert by_id(page(room["bob"]), first["id"])["reactions"] == []
    redo = react(room["carol"], first["id"], "🔥")
    assert redo.status_code == 201 and redo.json()["id"] != like.json()["id"]
    assert by_id(page(room["carol"]), first["id"])["reactions"] == [{"key": "🔥", "count": 1, "me": True}]
    # A second deletion answers the first one.
    second = delete(room["carol"], like.json()["id"])
    assert second.status_code == 200 and second.json()["id"] == undo.json()["id"]


def test_the_story_owner_deletes_any_message_but_edits_only_their_own(room):
    first = say(room["bob"], "Bob's line.")
    assert error_code(edit(room["alice"], first["id"], {"text": "Alice's now"})) == "forbidden"
    r = edit(room["carol"], first["id"], {"text": "Carol's now"})
    assert r.status_code == 403 and r.json()["error"]["details"] == {"relates_to": "not your message"}
    r = delete(room["carol"], first["id"])
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert delete(room["alice"], first["id"]).status_code == 201
    assert count_messages() == 2  # the refusals stored nothing


def test_refusals_store_nothing_and_name_the_field(room):
    first = say(room["bob"], "A line.")
    secret = say(room["bob"], "Backstage.", channel="backstage")
    before = count_messages()

    def refused(response, status, code, field):
        assert response.status_code == status, response.content
        assert error_code(response) == code
        assert field in response.json()["error"]["details"], response.json()

    # Viewers and outsiders do not post; a private channel is not found for who may not read it.
    assert react(room["vera"], first["id"], "👍").status_code == 403
    assert react(room["ozzie"], first["id"], "👍").status_code in (403, 404)
    assert react(room["carol"], secret["id"], "👍", channel="backstage").status_code == 404
    # A message of another channel, an unknown id, a message the sender may not read: 404 naming relates_to.
    refused(react(room["carol"], secret["id"], "👍"), 404, "not_found", "relates_to")
    refused(react(room["bob"], secret["id"], "👍"), 404, "not_found", "relates_to")  # bob reads it, but elsewhere
    refused(react(room["carol"], str(uuid.uuid4()), "👍"), 404, "not_found", "relates_to")
    # Shapes: the reserved types need relates_to, others may not have it; keys are short text.
    r = room["bob"].post(MESSAGES.format("general"), {"msg_type": "reaction", "payload": {"key": "x"}}, format="json")
    refused(r, 400, "invalid", "relates_to")
    r = room["bob"].post(MESSAGES.format("general"), {"msg_type": "text", "payload": {"text": "x"},
                                                      "relates_to": first["id"]}, format="json")
    refused(r, 400, "invalid", "relates_to")
    refused(react(room["bob"], "not-a-uuid", "x"), 400, "invalid", "relates_to")
    for key in ("", " ", "k" * 33, 7, None, " padded"):
        refused(react(room["carol"], first["id"], key), 400, "invalid", "payload.key")
    refused(room["carol"].post(MESSAGES.format("general"), {"msg_type": "reaction", "payload": {"key": "x", "n": 1},
                                                            "relates_to": first["id"]}, format="json"),
            400, "invalid", "payload.n")
    refused(react(room["carol"], first["id"], "x", audience="agents"), 400, "invalid", "audience")
    refused(react(room["carol"], first["id"], "x", reply_to=first["id"]), 400, "invalid", "reply_to")
    refused(delete(room["bob"], first["id"], reason=["no"]), 400, "invalid", "payload.reason")
    # An edit's new payload is checked against the target's msg_type.
    refused(edit(room["bob"], first["id"], {"txt": "no text"}), 400, "invalid", "payload.payload.text")
    r = room["bob"].post(MESSAGES.format("general"), {"msg_type": "edit", "payload": {"text": "flat"},
                                                      "relates_to": first["id"]}, format="json")
    refused(r, 400, "invalid", "payload.payload")
    # Too big: the same limit as any payload.
    refused(edit(room["bob"], first["id"], {"text": "x" * (70 * 1024)}), 413, "payload_too_large", "field")
    # Relating to a relation: only taking back a reaction.
    like = react(room["carol"], first["id"], "👍").json()
    refused(edit(room["carol"], like["id"], {"key": "👎"}), 400, "invalid", "relates_to")
    refused(react(room["bob"], like["id"], "👍"), 400, "invalid", "relates_to")
    fix = edit(room["bob"], first["id"], {"text": "A better line."}).json()
    refused(delete(room["bob"], fix["id"]), 400, "invalid", "relates_to")
    # Nothing on a deleted message but another (answered) deletion.
    assert delete(room["bob"], first["id"]).status_code == 201
    refused(edit(room["bob"], first["id"], {"text": "Back?"}), 400, "invalid", "relates_to")
    refused(react(room["carol"], first["id"], "🎉"), 400, "invalid", "relates_to")
    assert count_messages() == before + 3  # the reaction, the edit, the deletion; no refused one


def test_an_edit_checks_the_ids_its_new_payload_names_as_a_post_does(room):
    """A vote edited to another proposal: it must be a proposal, and one the editor may read."""
    proposal = post(room["bob"], {"msg_type": "proposal", "payload": {"text": "Cut the lamp scene?"}})
    line = say(room["bob"], "Not a proposal.")
    secret = post(room["bob"], {"msg_type": "proposal", "payload": {"text": "Backstage plan"}}, channel="backstage")
    vote = post(room["carol"], {"msg_type": "vote", "payload": {"proposal": proposal["id"], "choice": "yes"}})
    before = count_messages()
    for target, error in ((line["id"], "must be the id of a 'proposal' message"),
                          (secret["id"], "no such message in this story"),  # carol may not read backstage
                          (str(uuid.uuid4()), "no such message in this story")):
        r = edit(room["carol"], vote["id"], {"proposal": target, "choice": "yes"})
        assert r.status_code == 400, r.content
        assert r.json()["error"]["details"] == {"payload.payload.proposal": error}
    assert count_messages() == before
    other = post(room["bob"], {"msg_type": "proposal", "payload": {"text": "Keep it?"}})
    assert edit(room["carol"], vote["id"], {"proposal": other["id"], "choice": "no"}).status_code == 201


def test_a_relation_takes_its_targets_audience(room):
    humans_only = post(room["bob"], {"msg_type": "text", "payload": {"text": "for people"}, "audience": "humans"})
    like = react(room["carol"], humans_only["id"], "👍").json()
    assert like["audience"] == "humans"
    assert [m["id"] for m in page(room["narrator"])] == []  # the agent sees neither
    # ...nor may it relate to what it cannot read.
    r = react(room["narrator"], humans_only["id"], "👍")
    assert r.status_code == 404 and r.json()["error"]["details"] == {"relates_to": "no such message in this channel"}


def test_idempotent_by_id_and_by_key(room):
    first = say(room["bob"], "Once.")
    rid = str(uuid.uuid4())
    a = edit(room["bob"], first["id"], {"text": "Twice."}, id=rid)
    b = edit(room["bob"], first["id"], {"text": "Twice."}, id=rid)
    assert (a.status_code, b.status_code) == (201, 200) and a.json()["id"] == b.json()["id"] == rid
    c = edit(room["bob"], first["id"], {"text": "Thrice."}, id=rid)
    assert c.status_code == 409
    headers = {"HTTP_IDEMPOTENCY_KEY": "react-1"}
    body = {"msg_type": "reaction", "payload": {"key": "ok"}, "relates_to": first["id"]}
    x = room["carol"].post(MESSAGES.format("general"), body, format="json", **headers)
    y = room["carol"].post(MESSAGES.format("general"), body, format="json", **headers)
    assert (x.status_code, y.status_code) == (201, 200) and x.json()["id"] == y.json()["id"]
    assert count_messages() == 3


def test_a_page_costs_the_same_queries_for_1_or_40_messages_with_relations(room, settings):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("1000/s", 1000)}  # 160 posts in a moment
    def cost():
        client = room["carol"]
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(MESSAGES.format("general"), {"limit": 500}).status_code == 200
        return len(ctx)

    one = say(room["bob"], "one")
    edit(room["bob"], one["id"], {"text": "one!"})
    react(room["carol"], one["id"], "a")
    baseline = cost()
    for i in range(40):
        m = say(room["bob"], f"line {i}")
        edit(room["bob"], m["id"], {"text": f"line {i}!"})
        react(room["carol"], m["id"], "a")
        react(room["alice"], m["id"], "b")
        if i % 3 == 0:
            delete(room["bob"], m["id"])
    assert cost() == baseline


def test_the_export_and_the_admin_keep_every_version(room, client):
    first = say(room["bob"], "v1")
    edit(room["bob"], first["id"], {"text": "v2"})
    edit(room["bob"], first["id"], {"text": "v3"})
    like = react(room["carol"], first["id"], "👍").json()
    delete(room["carol"], like["id"])
    delete(room["alice"], first["id"])
    r = room["alice"].get("/api/stories/tale/export")
    assert r.status_code == 200, r.content
    body = b"".join(r.streaming_content) if getattr(r, "streaming", False) else r.content
    logged = [m for m in json.loads(body)["messages"] if m["channel"] == "general"]
    assert [(m["msg_type"], m["rel_type"]) for m in logged] == [
        ("text", None), ("edit", "replace"), ("edit", "replace"), ("reaction", "annotate"), ("delete", "redact"),
        ("delete", "redact")]
    assert logged[0]["payload"] == {"text": "v1"}  # the log as stored: the original payload
    assert [m["payload"] for m in logged[1:3]] == [{"payload": {"text": "v2"}}, {"payload": {"text": "v3"}}]
    assert {m["relates_to"] for m in logged[1:4]} == {first["id"]} and logged[4]["relates_to"] == like["id"]

    client.force_login(room["users"]["alice"])
    room["users"]["alice"].is_staff = room["users"]["alice"].is_superuser = True
    room["users"]["alice"].save()
    page_ = client.get(f"/admin/messaging/message/{first['id']}/change/")
    assert page_.status_code == 200
    html = page_.content.decode()
    assert "v1" in html and "#2 edit" in html and "#3 edit" in html and "#6 delete" in html


def test_an_agent_reacts_and_deletes_many_times_without_tripping_loop_prevention(room):
    """Deletions and reactions are bounded per message, so the same {} or {"key"} payload on many
    messages is no loop; an edit carries a payload and is compared as any post."""
    agent = room["narrator"]
    lines = [post(agent, {"msg_type": "narration", "payload": {"text": f"Wave {word}."}})
             for word in ("one", "two", "three")]
    for line in lines:
        assert react(agent, line["id"], "👍").status_code == 201
    for line in lines:
        assert delete(agent, line["id"]).status_code == 201
    other = post(agent, {"msg_type": "narration", "payload": {"text": "Tide."}})
    assert edit(agent, other["id"], {"text": "Tide!"}).status_code == 201
    looped = edit(agent, other["id"], {"text": "Tide!"})  # the same edit again, without an id
    assert looped.status_code == 422 and error_code(looped) == "loop_detected"
