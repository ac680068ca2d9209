"""Batch posts (POST .../messages/batch): one request, one transaction, each message answered on its own."""
import uuid

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from messaging.models import Channel, Message
from tests.conftest import error_code

pytestmark = pytest.mark.django_db

URL = "/api/stories/tale/channels/general/messages/batch"


@pytest.fixture
def room(make_user, make_story, make_agent, api):
    """alice owns the public story `tale`; bob edits; vera views; narrator is an agent."""
    alice, bob, vera = make_user("alice"), make_user("bob"), make_user("vera")
    story = make_story(alice, slug="tale", editors=[bob], viewers=[vera])
    narrator = make_agent("narrator", capabilities=["narration"], stories=[story])
    return {"story": story, "alice": api(alice), "bob": api(bob), "vera": api(vera), "narrator": api(narrator)}


def text(words, **extra):
    return {"msg_type": "text", "payload": {"text": words}, **extra}


def batch(client, messages, url=URL):
    return client.post(url, {"messages": messages}, format="json")


def log(client, channel="general"):
    page = client.get(f"/api/stories/tale/channels/{channel}/messages").json()
    return [(m["seq"], m["payload"].get("text")) for m in page["results"]]


def test_a_batch_is_stored_in_order_with_consecutive_seqs(room):
    room["bob"].post("/api/stories/tale/channels/general/messages", text("before"), format="json")
    r = batch(room["bob"], [text("one"), text("two", correlation_id="c-2"), text("three")])
    assert r.status_code == 200, r.content
    results = r.json()["results"]
    assert [item["status"] for item in results] == [201, 201, 201]
    assert [item["message"]["seq"] for item in results] == [2, 3, 4]
    assert results[1]["message"]["correlation_id"] == "c-2" and results[1]["message"]["sender"]["username"] == "bob"
    assert log(room["vera"]) == [(1, "before"), (2, "one"), (3, "two"), (4, "three")]
    # Each message as one post shows it, and as every read of it does.
    one = room["vera"].get(f"/api/messages/{results[0]['message']['id']}").json()
    assert {key: one[key] for key in ("id", "seq", "payload", "msg_type")} == {
        key: results[0]["message"][key] for key in ("id", "seq", "payload", "msg_type")}
    assert Channel.objects.get(name="general").last_seq == 4


def test_each_message_is_answered_on_its_own_and_a_refusal_leaves_no_gap(room):
    r = batch(room["bob"], [text("kept"), {"msg_type": "Bad Type", "payload": {}}, "not an object",
                            {"msg_type": "text", "payload": {"text": "x" * 70_000}}, text("kept too")])
    assert r.status_code == 200, r.content
    results = r.json()["results"]
    assert [item["status"] for item in results] == [201, 400, 400, 413, 201]
    assert results[1]["error"]["code"] == "invalid" and "msg_type" in results[1]["error"]["details"]
    assert results[2]["error"]["message"] == "The message must be a JSON object."
    assert results[3]["error"]["code"] == "payload_too_large"
    assert log(room["vera"]) == [(1, "kept"), (2, "kept too")]


def test_a_repeated_batch_stores_nothing_new(room):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    first = batch(room["bob"], [text(f"m{i}", id=ids[i]) for i in range(3)]).json()["results"]
    again = batch(room["bob"], [text("m0", id=ids[0]), text("other words", id=ids[1]), text("m2", id=ids[2]),
                                text("new")]).json()["results"]
    assert [item["status"] for item in again] == [200, 409, 200, 201]
    assert again[0]["message"] == first[0]["message"] and again[2]["message"]["seq"] == 3
    assert again[1]["error"]["code"] == "conflict"
    assert again[3]["message"]["seq"] == 4
    assert Message.objects.count() == 4


def test_the_same_id_twice_in_a_batch_is_one_post(room):
    same, other = str(uuid.uuid4()), str(uuid.uuid4())
    results = batch(room["bob"], [text("once", id=same), text("once", id=same), text("a", id=other),
                                  text("b", id=other)]).json()["results"]
    assert [item["status"] for item in results] == [201, 200, 201, 409]
    assert results[1]["message"]["id"] == same and results[1]["message"]["seq"] == 1
    assert log(room["vera"]) == [(1, "once"), (2, "a")]


def test_someone_elses_id_is_taken_without_telling_what_it_is(room):
    theirs = room["alice"].post("/api/stories/tale/channels/general/messages", text("mine"), format="json").json()
    results = batch(room["bob"], [text("mine", id=theirs["id"])]).json()["results"]
    assert results == [{"status": 409, "error": {"code": "conflict", "details": {"id": "already taken"},
                                                 "message": "This message id is already taken: choose another "
                                                            "(a random UUID)."}}]


def test_loop_policies_see_the_batchs_earlier_messages(room):
    narration = {"msg_type": "narration", "payload": {"text": "The door creaks."}}
    room["narrator"].post("/api/stories/tale/channels/general/messages",
                          {"msg_type": "narration", "payload": {"text": "A bell."}}, format="json")
    results = batch(room["narrator"], [narration, {"msg_type": "narration", "payload": {"text": "A bell."}},
                                       narration, {"msg_type": "narration", "payload": {"text": "Rain."}}]
                    ).json()["results"]
    assert [item["status"] for item in results] == [201, 422, 422, 201]
    assert results[1]["error"]["details"]["policy"] == "duplicate_payload"
    assert results[2]["error"]["details"]["previous"] == results[0]["message"]["id"]
    assert [t for _, t in log(room["vera"])] == ["A bell.", "The door creaks.", "Rain."]


@override_settings(MYTHLINE_LOOP_MAX_SIMILAR=3)
def test_near_identical_messages_count_across_the_batch_and_what_came_before(room):
    room["narrator"].post("/api/stories/tale/channels/general/messages",
                          {"msg_type": "narration", "payload": {"text": "Scene 1: the lamp"}}, format="json")
    results = batch(room["narrator"], [{"msg_type": "narration", "payload": {"text": f"scene {n} the lamp!"}}
                                       for n in (2, 3)]).json()["results"]
    assert [item["status"] for item in results] == [201, 422]
    assert results[1]["error"]["details"] | {"previous": None, "seconds_ago": None} == {
        "policy": "similar_payload", "similar": 2, "limit": 3, "previous": None, "seconds_ago": None,
        "window_seconds": results[1]["error"]["details"]["window_seconds"]}


def test_relations_in_a_batch_answer_as_they_would_alone(room):
    target = room["bob"].post("/api/stories/tale/channels/general/messages", text("react to me"),
                              format="json").json()
    other = room["bob"].post("/api/stories/tale/channels/general/messages", text("delete me"), format="json").json()
    thumbs = {"msg_type": "reaction", "payload": {"key": "👍"}, "relates_to": target["id"]}
    results = batch(room["bob"], [
        thumbs, thumbs,
        {"msg_type": "delete", "payload": {}, "relates_to": other["id"]},
        {"msg_type": "edit", "payload": {"payload": {"text": "too late"}}, "relates_to": other["id"]},
        {"msg_type": "delete", "payload": {"reason": "twice"}, "relates_to": other["id"]},
    ]).json()["results"]
    assert [item["status"] for item in results] == [201, 200, 201, 400, 200]
    assert results[1]["message"]["id"] == results[0]["message"]["id"]
    assert results[3]["error"]["details"] == {"relates_to": "was deleted"}
    assert results[4]["message"]["id"] == results[2]["message"]["id"]
    assert [m["seq"] for m in (results[0]["message"], results[2]["message"])] == [3, 4]
    assert Channel.objects.get(name="general").last_seq == 4
    assert room["vera"].get(f"/api/messages/{target['id']}").json()["reactions"] == [
        {"key": "👍", "count": 1, "me": False}]
    assert room["vera"].get(f"/api/messages/{other['id']}").json()["deleted"] is True


def test_taking_a_reaction_back_and_reacting_again_in_one_batch_is_a_new_reaction(room):
    target = room["bob"].post("/api/stories/tale/channels/general/messages", text("react to me"),
                              format="json").json()
    thumbs = {"msg_type": "reaction", "payload": {"key": "👍"}, "relates_to": target["id"]}
    first = room["bob"].post("/api/stories/tale/channels/general/messages", thumbs, format="json").json()
    results = batch(room["bob"], [{"msg_type": "delete", "payload": {}, "relates_to": first["id"]},
                                  thumbs]).json()["results"]
    assert [item["status"] for item in results] == [201, 201]
    assert results[1]["message"]["id"] != first["id"]
    assert room["vera"].get(f"/api/messages/{target['id']}").json()["reactions"] == [
        {"key": "👍", "count": 1, "me": False}]
    # ... and the new one is the reaction now: taking it back leaves none.
    room["bob"].post("/api/stories/tale/channels/general/messages",
                     {"msg_type": "delete", "payload": {}, "relates_to": results[1]["message"]["id"]}, format="json")
    assert room["vera"].get(f"/api/messages/{target['id']}").json()["reactions"] == []


def test_a_reference_names_a_message_stored_before_the_batch(room):
    mine = str(uuid.uuid4())
    results = batch(room["bob"], [text("question", id=mine), text("answer", reply_to=mine)]).json()["results"]
    assert [item["status"] for item in results] == [201, 400]
    assert results[1]["error"]["details"] == {"reply_to": "no such message in this story"}
    later = batch(room["bob"], [text("answer", reply_to=mine)]).json()["results"]
    assert later[0]["status"] == 201 and later[0]["message"]["reply_to"] == mine


@pytest.mark.parametrize("body, status, field", [
    ({"messages": []}, 400, "messages"),
    ({"messages": {"msg_type": "text"}}, 400, "messages"),
    ({"messages": [text("a")], "channel": "elsewhere"}, 400, "messages"),
    ([text("a")], 400, "messages"),
    ({"messages": [text(str(i)) for i in range(101)]}, 413, "messages"),
])
def test_a_bad_batch_is_refused_whole(room, body, status, field):
    r = room["bob"].post(URL, body, format="json")
    assert r.status_code == status, r.content
    assert error_code(r) == ("payload_too_large" if status == 413 else "invalid")
    assert field in r.json()["error"]["details"]
    assert Message.objects.count() == 0


def test_malformed_json_is_refused(room):
    r = room["bob"].post(URL, data=b'{"messages": [', content_type="application/json")
    assert r.status_code == 400 and error_code(r) == "invalid"


@override_settings(MYTHLINE_BATCH_MAX_MESSAGES=2)
def test_the_limit_is_a_setting(room):
    r = batch(room["bob"], [text("a"), text("b"), text("c")])
    assert r.status_code == 413 and r.json()["error"]["details"] == {"messages": "at most 2", "count": 3}


def test_who_may_post_a_batch(room, make_user, api):
    assert batch(room["vera"], [text("viewer")]).status_code == 403
    room["alice"].post("/api/stories/tale/channels", {"name": "secret", "kind": "private"}, format="json")
    r = batch(room["bob"], [text("in")], url="/api/stories/tale/channels/secret/messages/batch")
    assert r.status_code == 404 and error_code(r) == "not_found"
    assert batch(api(None), [text("anon")]).status_code == 401
    stranger = api(make_user("mallory"))
    assert batch(stranger, [text("hi")]).status_code == 403
    assert Message.objects.count() == 0


def test_an_archived_channel_takes_no_batch(room):
    room["alice"].patch("/api/stories/tale/channels/general", {"archived": True}, format="json")
    r = batch(room["bob"], [text("late")])
    assert r.status_code == 409 and error_code(r) == "archived"
    assert Message.objects.count() == 0


@override_settings(MYTHLINE_RATES={"post": ("1/m", 3), "read": ("100/s", 100), "write": ("100/s", 100)})
def test_a_batch_takes_one_post_unit_per_message(room):
    """A batch passes when one unit is free, and its messages count against what follows."""
    assert [item["status"] for item in batch(room["bob"], [text(str(i)) for i in range(10)]).json()["results"]] \
        == [201] * 10
    r = room["bob"].post("/api/stories/tale/channels/general/messages", text("next"), format="json")
    assert r.status_code == 429 and int(r["Retry-After"]) > 60 * 5
    r = batch(room["bob"], [text("more")])
    assert r.status_code == 429 and error_code(r) == "rate_limited"
    assert Message.objects.count() == 10


def narration(words, **extra):
    return {"msg_type": "narration", "payload": {"text": words}, **extra}


def test_a_message_refused_under_the_lock_is_not_an_earlier_post(room):
    """An edit of a message the batch deleted is refused (400) and stores nothing: a later, identical
    edit of another message is no repeat of it (as two posts one after the other would answer)."""
    gone = room["narrator"].post("/api/stories/tale/channels/general/messages", narration("The lamp."),
                                 format="json").json()
    kept = room["narrator"].post("/api/stories/tale/channels/general/messages", narration("The gull."),
                                 format="json").json()
    fix = {"payload": {"text": "The fog."}}
    results = batch(room["narrator"], [
        {"msg_type": "delete", "payload": {}, "relates_to": gone["id"]},
        {"msg_type": "edit", "payload": fix, "relates_to": gone["id"]},
        {"msg_type": "edit", "payload": fix, "relates_to": kept["id"]},
        {"msg_type": "edit", "payload": fix, "relates_to": kept["id"]},
    ]).json()["results"]
    assert [item["status"] for item in results] == [201, 400, 201, 422], results
    assert results[1]["error"]["details"] == {"relates_to": "was deleted"}
    # The policies still see what was stored: the second edit of `kept` repeats the first.
    assert results[3]["error"]["details"]["policy"] == "duplicate_payload"
    assert results[3]["error"]["details"]["previous"] == results[2]["message"]["id"]
    assert [m["seq"] for m in (results[0]["message"], results[2]["message"])] == [3, 4]
    assert room["vera"].get(f"/api/messages/{kept['id']}").json()["payload"] == {"text": "The fog."}


def test_a_relations_target_is_shown_as_right_after_it(room):
    """Each relation answers with its target as its post alone would: the reaction sees the message
    not yet deleted, the deletion after it sees it deleted."""
    target = room["bob"].post("/api/stories/tale/channels/general/messages", text("react, then delete"),
                              format="json").json()
    results = batch(room["bob"], [{"msg_type": "reaction", "payload": {"key": "👍"}, "relates_to": target["id"]},
                                  {"msg_type": "delete", "payload": {}, "relates_to": target["id"]},
                                  text("after")]).json()["results"]
    assert [item["status"] for item in results] == [201, 201, 201]
    reacted, deleted = results[0]["message"]["target"], results[1]["message"]["target"]
    assert reacted["id"] == deleted["id"] == target["id"]
    assert reacted["deleted"] is False and reacted["payload"] == {"text": "react, then delete"}
    assert reacted["reactions"] == [{"key": "👍", "count": 1, "me": None}]
    assert deleted["deleted"] is True and deleted["payload"] is None
    assert "target" not in results[2]["message"]
    assert [item["message"]["seq"] for item in results] == [2, 3, 4]
    assert room["vera"].get(f"/api/messages/{target['id']}").json()["deleted"] is True


def test_a_repeated_relation_shows_its_target_as_right_after_it(room):
    """A relation answered with the one already there (200) shows the target as at its place in the
    batch too: after the batch's earlier edit, before its later deletion."""
    target = room["bob"].post("/api/stories/tale/channels/general/messages", text("first words"),
                              format="json").json()
    thumbs = {"msg_type": "reaction", "payload": {"key": "👍"}, "relates_to": target["id"]}
    stored = room["bob"].post("/api/stories/tale/channels/general/messages", thumbs, format="json").json()
    eyes = {"msg_type": "reaction", "payload": {"key": "👀"}, "relates_to": target["id"]}
    results = batch(room["bob"], [
        {"msg_type": "edit", "payload": {"payload": {"text": "second words"}}, "relates_to": target["id"]},
        thumbs, eyes, eyes,
        {"msg_type": "delete", "payload": {}, "relates_to": target["id"]},
    ]).json()["results"]
    assert [item["status"] for item in results] == [201, 200, 201, 200, 201]
    assert results[1]["message"]["id"] == stored["id"] and results[3]["message"]["id"] == results[2]["message"]["id"]
    shown = [item["message"]["target"] for item in results]
    assert [t["payload"] for t in shown] == [{"text": "second words"}] * 4 + [None]
    assert [t["deleted"] for t in shown] == [False] * 4 + [True]
    assert [[r["key"] for r in t["reactions"]] for t in shown[:4]] == [["👍"], ["👍"], ["👍", "👀"], ["👍", "👀"]]


def test_a_batch_keeps_its_loop_keys_with_one_commit_hook(room, django_capture_on_commit_callbacks):
    """The comparison keys of a batch's messages are kept once it commits, by one hook whatever its size
    (messaging.loops.one_commit_hook): the next post of a repeat is refused without reading payloads."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]

    def hooks(lines):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            r = batch(room["narrator"], [narration(line) for line in lines])
        assert [item["status"] for item in r.json()["results"]] == [201] * len(lines), r.content
        return len(callbacks)

    assert hooks([f"The {word} bell." for word in words]) == hooks(["A tide.", "A storm."])
    with CaptureQueriesContext(connection) as ctx:
        r = room["narrator"].post("/api/stories/tale/channels/general/messages", narration("The echo bell."),
                                  format="json")
    assert r.status_code == 422 and r.json()["error"]["details"]["policy"] == "duplicate_payload"
    assert not [q["sql"] for q in ctx.captured_queries if '"payload"' in q["sql"] and "SELECT" in q["sql"]]


def _queries_from_the_lock_on(make_user, make_story, make_agent, *, words: int, refused_first: bool) -> int:
    """An agent's batch of `words` replies in an agent-only chain (the loop policies read the chain
    and the agent's recent posts), after a second deletion that only the lock refuses when
    `refused_first`: the queries run from the channel's lock to the end of the batch."""
    from messaging.policies import access_channel
    from messaging.services import message_post, message_post_batch

    alice = make_user()
    story = make_story(alice)
    bard = make_agent(f"bard-{story.slug}", capabilities=["narration", "text", "delete"], stories=[story])

    def post(data):
        return message_post(sender=bard, access=access_channel(bard, story.slug, "general", for_write=True),
                            data=data).message

    parent = post({"msg_type": "text", "payload": {"text": "root"}})
    for line in ("one fish", "two crabs", "red whale"):
        parent = post({"msg_type": "text", "payload": {"text": line}, "reply_to": str(parent.pk)})
    gone = post({"msg_type": "text", "payload": {"text": "gone"}})
    post({"msg_type": "delete", "payload": {}, "relates_to": str(gone.pk)})
    names = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()
    items = [{"msg_type": "narration", "payload": {"text": f"The {name} bell."}, "reply_to": str(parent.pk)}
             for name in names[:words]]
    if refused_first:
        items.insert(0, {"msg_type": "delete", "payload": {}, "relates_to": str(gone.pk)})
    with CaptureQueriesContext(connection) as ctx:
        out = message_post_batch(sender=bard, access=access_channel(bard, story.slug, "general", for_write=True),
                                 items=items)
    assert [item.result.created for item in out] == [False] * refused_first + [True] * words
    sqls = [q["sql"] for q in ctx.captured_queries]
    return len(sqls) - next(i for i, sql in enumerate(sqls) if "UPDATE" in sql and "last_seq" in sql)


@pytest.mark.django_db(transaction=True)
def test_a_message_refused_under_the_lock_costs_the_later_ones_no_query_there(make_user, make_story, make_agent,
                                                                                settings):
    """The later messages' policies run again under the lock with what they read before it: the
    batch's refusal there adds the same queries for 2 messages after it as for 12."""
    settings.MYTHLINE_LOOP_WINDOW_SECONDS = 600
    count = lambda words, refused: _queries_from_the_lock_on(  # noqa: E731
        make_user, make_story, make_agent, words=words, refused_first=refused)
    assert count(12, True) - count(12, False) == count(2, True) - count(2, False)
