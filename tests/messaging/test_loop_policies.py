"""Loop prevention (SPEC 6): each policy refuses a loop with 422 `loop_detected`, storing nothing
and using no seq, over REST and the WebSocket; and each stays silent for normal traffic."""
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import token_issue
from messaging import loops
from messaging.loops import payload_fingerprint
from messaging.models import Channel, Message
from tests.conftest import error_code
from tests.messaging.test_consumers import Client, run

pytestmark = pytest.mark.django_db

URL = "/api/stories/tale/channels/general/messages"


@pytest.fixture
def room(make_user, make_story, make_agent, api):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    ping = make_agent("ping", capabilities=["narration", "query"], stories=[story])
    pong = make_agent("pong", capabilities=["narration", "query"], stories=[story])
    users = {"alice": alice, "bob": bob, "ping": ping, "pong": pong}
    return {"story": story, "users": users, **{name: api(user) for name, user in users.items()}}


def post(client, payload, msg_type="narration", url=URL, **extra):
    return client.post(url, {"msg_type": msg_type, "payload": payload, **extra}, format="json")


def say(client, text, **extra):
    r = post(client, {"text": text}, **extra)
    assert r.status_code == 201, r.content
    return r.json()


def tag(i: int) -> str:
    """A distinct word per number (digits alone would make texts near-identical): aa, ab, ..."""
    return chr(97 + i // 26) + chr(97 + i % 26)


def last_seq() -> int:
    return Channel.objects.get(story__slug="tale", name="general").last_seq


def refused(response, policy: str) -> dict:
    """A 422 `loop_detected` from `policy`, with a message that says what to do."""
    assert response.status_code == 422, response.content
    assert error_code(response) == "loop_detected"
    error = response.json()["error"]
    assert error["details"]["policy"] == policy
    assert "nothing was stored" in error["message"]
    return error


def stored() -> int:
    """Posts stored (not the server's `mention` copies in agents' inboxes: a reply to an agent makes one)."""
    return Message.objects.filter(story__slug="tale").exclude(msg_type="mention").count()


# --- (a) the same payload again ----------------------------------------------------------------

def test_an_agent_repeating_a_payload_is_refused_and_nothing_is_stored(room):
    first = say(room["ping"], "The lamp guttered.")
    before, seq = stored(), last_seq()
    error = refused(post(room["ping"], {"text": "The lamp guttered."}), "duplicate_payload")
    assert "already posted this exact 'narration' payload" in error["message"]
    assert "Idempotency-Key" in error["message"]  # how to retry a post safely instead
    assert error["details"]["previous"] == first["id"] and error["details"]["window_seconds"] == 300
    assert stored() == before and last_seq() == seq
    # No seq was used: the next post takes the next one.
    assert say(room["ping"], "The lamp went out.")["seq"] == seq + 1


def test_a_duplicate_is_the_same_json_whatever_the_key_order_or_channel(room):
    assert post(room["ping"], {"text": "x", "mood": "grim"}, msg_type="scene.note").status_code == 201
    refused(post(room["ping"], {"mood": "grim", "text": "x"}, msg_type="scene.note"), "duplicate_payload")
    room["alice"].post("/api/stories/tale/channels", {"name": "side", "kind": "public"}, format="json")
    refused(post(room["ping"], {"text": "x", "mood": "grim"}, msg_type="scene.note",
                 url="/api/stories/tale/channels/side/messages"), "duplicate_payload")
    # Another msg_type, or another agent, is another post.
    assert post(room["ping"], {"text": "x", "mood": "grim"}, msg_type="scene.mood").status_code == 201
    assert post(room["pong"], {"text": "x", "mood": "grim"}, msg_type="scene.note").status_code == 201


def test_an_idempotent_repeat_is_not_a_loop(room):
    first = say(room["ping"], "Once.", id=str(uuid.uuid4()))
    again = post(room["ping"], {"text": "Once."}, id=first["id"])
    assert again.status_code == 200 and again.json() == first
    keyed = room["ping"].post(URL, {"msg_type": "narration", "payload": {"text": "Twice."}}, format="json",
                              HTTP_IDEMPOTENCY_KEY="k-1")
    assert keyed.status_code == 201
    repeat = room["ping"].post(URL, {"msg_type": "narration", "payload": {"text": "Twice."}}, format="json",
                               HTTP_IDEMPOTENCY_KEY="k-1")
    assert repeat.status_code == 200 and repeat.json()["id"] == keyed.json()["id"]
    assert stored() == 2


def test_a_payload_may_come_again_once_the_window_has_passed(room, settings):
    settings.MYTHLINE_LOOP_WINDOW_SECONDS = 60
    say(room["ping"], "Dawn.")
    Message.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    say(room["ping"], "Dawn.")
    refused(post(room["ping"], {"text": "Dawn."}), "duplicate_payload")


def test_humans_may_repeat_themselves(room):
    for _ in range(6):
        say(room["alice"], "Are we there yet?")
        say(room["bob"], "Are we there yet? 1")
    assert stored() == 12


def test_varied_agent_traffic_passes(room):
    lines = ["The tide turned.", "A gull cried over the rocks.", "Mara climbed the stair.",
             "The lamp was cold.", "Far off, a bell.", "She counted the steps: forty.",
             "Wind in the shutters.", "The keeper's log lay open."]
    for line in lines:
        say(room["ping"], line)
        say(room["pong"], f"Echoing: {line[::-1]}")
    for progress in (0.1, 0.2, 0.3, 0.4, 0.5):  # progress reports differ only in their numbers
        assert post(room["ping"], {"task": "scene 3", "status": "working", "progress": progress},
                    msg_type="task_update").status_code == 201
    votes = [say(room["alice"], f"Proposal {word}", msg_type="proposal") for word in ("alpha", "beta", "gamma")]
    for proposal in votes:
        assert post(room["pong"], {"proposal": proposal["id"], "choice": "yes"}, msg_type="vote").status_code == 201


# --- (b) near-identical payloads again and again -----------------------------------------------

def test_near_identical_payloads_are_refused_at_the_limit(room):
    say(room["ping"], "Attempt 1: the door is locked.")
    say(room["ping"], "attempt 2 -- The door is LOCKED!")
    before, seq = stored(), last_seq()
    error = refused(post(room["ping"], {"text": "Attempt   3: the door is locked."}), "similar_payload")
    assert "already posted 2 near-identical 'narration' payloads" in error["message"]
    assert error["details"]["similar"] == 2 and error["details"]["limit"] == 3
    assert stored() == before and last_seq() == seq
    say(room["ping"], "The door gives way at last.")  # something new passes


def test_the_near_identical_limit_is_a_setting(room, settings):
    settings.MYTHLINE_LOOP_MAX_SIMILAR = 5
    for i in range(4):
        say(room["ping"], f"Tick {i}.")
    refused(post(room["ping"], {"text": "Tick 4."}), "similar_payload")
    settings.MYTHLINE_LOOP_MAX_SIMILAR = 0  # off
    say(room["ping"], "Tick 5.")


def test_fingerprints_ignore_case_digits_punctuation_spacing_and_numbers():
    same = [{"text": "Scene 3: the lamp!", "n": 1}, {"text": "  scene 12 THE lamp", "n": 2.5}]
    assert payload_fingerprint(same[0]) == payload_fingerprint(same[1])
    assert payload_fingerprint({"text": "the lamp"}) != payload_fingerprint({"text": "the lamps"})
    assert payload_fingerprint({"ok": True}) != payload_fingerprint({"ok": 1})
    assert payload_fingerprint({"text": "🎉"}) != payload_fingerprint({"text": "👍"})


# --- replies to humans --------------------------------------------------------------------------

def test_a_long_human_agent_conversation_is_no_loop(room):
    """An agent answering many human messages alike, in one long alternating thread."""
    parent = say(room["alice"], "Let us begin.", msg_type="query")
    for i in range(30):
        reply = say(room["ping"], "Noted.", reply_to=parent["id"])
        parent = say(room["alice" if i % 2 else "bob"], f"Then what happens {i}?", msg_type="query",
                     reply_to=reply["id"])
    assert stored() == 61


def test_answering_the_same_human_message_twice_alike_is_a_loop(room):
    question = say(room["alice"], "Where is the key?", msg_type="query")
    say(room["ping"], "Under the mat.", reply_to=question["id"])
    refused(post(room["ping"], {"text": "Under the mat."}, reply_to=question["id"]), "duplicate_payload")
    say(room["ping"], "Under the mat, I think.", reply_to=question["id"])
    say(room["ping"], "under the mat i think", reply_to=question["id"])
    refused(post(room["ping"], {"text": "UNDER THE MAT, I think!"}, reply_to=question["id"]), "similar_payload")


# --- (c) agents answering each other without end ------------------------------------------------

def test_agents_replying_to_each_other_are_stopped_beyond_the_depth(room):
    parent = say(room["alice"], "Discuss.", msg_type="query")
    for i in range(8):  # eight agent messages in a row: the limit
        parent = say(room["ping" if i % 2 else "pong"], f"Point {tag(i)}.", reply_to=parent["id"])
    before, seq = stored(), last_seq()
    error = refused(post(room["ping"], {"text": "Counterpoint."}, reply_to=parent["id"]), "agent_reply_depth")
    assert "agent message number 9 in a row" in error["message"] and "human" in error["message"]
    assert error["details"] == {"policy": "agent_reply_depth", "depth": 9, "max_depth": 8, "reply_to": parent["id"]}
    assert stored() == before and last_seq() == seq
    # A human in the chain resets the count.
    human = say(room["bob"], "Enough; one more each.", reply_to=parent["id"])
    for i in range(8):
        human = say(room["pong" if i % 2 else "ping"], f"Final {tag(i)}.", reply_to=human["id"])
    # A new thread (no reply_to) is always open.
    say(room["ping"], "A new thread.")


def test_the_depth_is_a_setting(room, settings):
    settings.MYTHLINE_LOOP_MAX_AGENT_DEPTH = 2
    root = say(room["ping"], "Root.")
    one = say(room["pong"], "One.", reply_to=root["id"])
    refused(post(room["ping"], {"text": "Two."}, reply_to=one["id"]), "agent_reply_depth")
    settings.MYTHLINE_LOOP_MAX_AGENT_DEPTH = 0  # off
    say(room["ping"], "Two.", reply_to=one["id"])


def test_the_checks_cost_the_same_on_a_long_thread(room):
    """Bounded work per post: the depth walk stops at the limit, the payload scan at its limit."""
    parent = say(room["alice"], "Begin.", msg_type="query")

    def agent_reply_queries(parent_id, text):
        with CaptureQueriesContext(connection) as ctx:
            reply = say(room["ping"], text, reply_to=parent_id)
        return len(ctx), reply

    short, _ = agent_reply_queries(say(room["pong"], "Short chain.", reply_to=parent["id"])["id"], "Reply a.")
    for i in range(40):  # a long history: many messages of the agents, a deep human-agent thread
        parent = say(room["pong"], f"Line {tag(i)}.", reply_to=parent["id"])
        parent = say(room["bob"], f"And {tag(i)}?", reply_to=parent["id"])
    chain = parent
    for word in ("b", "c", "d", "e", "f", "g"):
        chain = say(room["pong" if word in "bdf" else "ping"], f"Reply {word}.", reply_to=chain["id"])
    deep, _ = agent_reply_queries(chain["id"], "Reply h.")
    assert deep <= short + 6  # only the walk up the (bounded) row of agent messages adds queries


# --- routing --------------------------------------------------------------------------------------

def test_a_routed_message_is_one_post_not_a_repeat(room):
    body = {"msg_type": "query", "payload": {"text": "Who keeps the lamp?"}}
    r = room["ping"].post("/api/stories/tale/route", body, format="json", HTTP_IDEMPOTENCY_KEY="route-1")
    assert r.status_code == 201 and r.json()["routed_to"] == ["ping", "pong"]
    again = room["ping"].post("/api/stories/tale/route", body, format="json", HTTP_IDEMPOTENCY_KEY="route-1")
    assert again.status_code == 200 and again.json()["routed_to"] == ["ping", "pong"]
    before = stored()
    r = room["ping"].post("/api/stories/tale/route", body, format="json")  # the same question, anew
    assert r.status_code == 422 and error_code(r) == "loop_detected"
    assert stored() == before


# --- pluggable -----------------------------------------------------------------------------------

def test_each_policy_is_a_setting_of_its_own(room, settings):
    settings.MYTHLINE_MESSAGE_POLICIES = [p for p in settings.MYTHLINE_MESSAGE_POLICIES
                                          if not p.endswith("duplicate_payload_policy")]
    say(room["ping"], "Same.")
    say(room["ping"], "Same.")
    refused(post(room["ping"], {"text": "Same."}), "similar_payload")  # the next policy still holds
    settings.MYTHLINE_LOOP_WINDOW_SECONDS = 0  # and the window turns the payload checks off
    say(room["ping"], "Same.")


# --- over the WebSocket ------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_loops_are_refused_over_the_websocket_publish_frame(room):
    users = room["users"]
    for user in users.values():
        user.test_token = token_issue(user=user)
    topic = "channel:tale/general"

    async def go():
        async with Client(users["ping"]) as ping, Client(users["pong"]) as pong, Client(users["alice"]) as alice:
            first = await ping.request(type="publish", topic=topic, msg_type="narration", payload={"text": "Hello."})
            assert first["type"] == "published" and first["seq"] == 1
            dup = await ping.request(type="publish", topic=topic, msg_type="narration", payload={"text": "Hello."})
            assert dup["type"] == "error" and dup["code"] == "loop_detected"
            assert "already posted this exact" in dup["message"]
            # The socket stays open; an idempotent repeat is still answered with the original.
            same = await ping.request(type="publish", topic=topic, msg_type="narration", payload={"text": "Hello."},
                                      id=first["id"])
            assert same["type"] == "published" and same["id"] == first["id"] and same["seq"] == 1
            for n in ("1", "2"):
                ok = await pong.request(type="publish", topic=topic, msg_type="narration", payload={"text": f"Beep {n}"})
                assert ok["type"] == "published"
            near = await pong.request(type="publish", topic=topic, msg_type="narration", payload={"text": "BEEP 3!"})
            assert near["type"] == "error" and near["code"] == "loop_detected"
            # Two agents answering each other: the 9th agent message in a row is refused.
            parent = (await alice.request(type="publish", topic=topic, msg_type="query", payload={"text": "Go."}))["id"]
            for i in range(8):
                who = ping if i % 2 else pong
                reply = await who.request(type="publish", topic=topic, msg_type="narration",
                                          payload={"text": f"Turn {tag(i)}."}, reply_to=parent)
                assert reply["type"] == "published", reply
                parent = reply["id"]
            deep = await ping.request(type="publish", topic=topic, msg_type="narration",
                                      payload={"text": "Turn zz."}, reply_to=parent)
            assert deep["type"] == "error" and deep["code"] == "loop_detected"
            assert "in a row" in deep["message"]
            fine = await alice.request(type="publish", topic=topic, msg_type="text", payload={"text": "Go."})
            assert fine["type"] == "published"
            return fine["seq"]

    last = run(go())
    # 1 hello + 2 beeps + 1 query + 8 turns + alice's repeat = 13; refused ones used no seq.
    assert last == 13 and stored() == 13


def test_the_same_words_in_two_stories_are_not_a_loop(make_user, make_story, make_agent, api):
    owner = make_user("story-owner")
    one, two = make_story(owner, slug="one"), make_story(owner, slug="two")
    bard = api(make_agent("bard", capabilities=["narration"], stories=[one, two]))
    body = {"msg_type": "narration", "payload": {"text": "Scene one opens at the lighthouse."}}
    assert bard.post("/api/stories/one/channels/general/messages", body, format="json").status_code == 201
    assert bard.post("/api/stories/two/channels/general/messages", body, format="json").status_code == 201
    again = bard.post("/api/stories/one/channels/general/messages", body, format="json")
    assert again.status_code == 422 and again.json()["error"]["code"] == "loop_detected"


@pytest.mark.django_db(transaction=True)
def test_an_agents_committed_posts_are_compared_without_reading_their_payloads_again(room):
    """Each process keeps the comparison keys of what it stored (messaging.loops._KEYS): the next
    post of the agent reads its earlier posts' ids and times, not their payloads, and still
    refuses a repeat; a message it did not store itself (another process's) is read once."""
    first = say(room["ping"], "The tide turned.")
    say(room["ping"], "Gulls circled.")
    with CaptureQueriesContext(connection) as ctx:
        r = post(room["ping"], {"text": "The tide turned."})
    assert r.status_code == 422 and r.json()["error"]["details"]["previous"] == first["id"]
    assert not [q["sql"] for q in ctx.captured_queries if '"payload"' in q["sql"] and "SELECT" in q["sql"]]
    loops._KEYS.clear()  # as if both were stored by another process
    with CaptureQueriesContext(connection) as ctx:
        r = post(room["ping"], {"text": "Gulls circled."})
    assert r.status_code == 422 and error_code(r) == "loop_detected"
    assert len([q for q in ctx.captured_queries if '"payload"' in q["sql"] and "SELECT" in q["sql"]]) == 1
