"""SPEC 6: the payload schemas of the built-in msg_types, through the REST API.

Every built-in type is accepted with a valid payload (optional fields included) and rejected, with
400 `invalid` and `details` naming the field ("payload.beats[1]"), for each missing required
field and each wrong type or range. References (feedback `target`, vote and decision `proposal`)
must name a message of the same story, in any channel; a vote's must be a `proposal` message.
Other msg_types take any JSON object. A rejected post stores nothing and consumes no seq.
"""
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from rest_framework.test import APIClient

from accounts.services import token_issue
from messaging.models import Message
from messaging.policies import access_channel
from messaging.services import message_post
from stories.services import story_create
from tests.conftest import error_code

URL = "/api/stories/tale/channels/general/messages"
FIRST_FREE_SEQ = 3  # `general` of `tale` holds two messages


@pytest.fixture(scope="module")
def module_world(django_db_setup, django_db_blocker):
    """Story `tale` (alice): in `general` a text (<text>) and a proposal (<proposal>), in `room` a
    proposal (<room-proposal>). Story `other` (dave): a text and a proposal. Rolled back at the end."""
    with django_db_blocker.unblock():
        name = str(connection.settings_dict["NAME"])
        assert Path(name).name.startswith("test"), name  # never the real database
        outer = transaction.atomic()
        outer.__enter__()
        try:
            User = get_user_model()
            alice = User.objects.create_user(username="alice")
            dave = User.objects.create_user(username="dave")
            story_create(owner=alice, slug="tale", title="A tale")
            story_create(owner=dave, slug="other", title="Another")
            ids = {}

            def post(name, sender, story, channel, msg_type):
                access = access_channel(sender, story, channel, for_write=True)
                ids[name] = str(message_post(sender=sender, access=access, data={
                    "msg_type": msg_type, "payload": {"text": name}}).message.id)

            post("text", alice, "tale", "general", "text")
            post("proposal", alice, "tale", "general", "proposal")
            post("room-proposal", alice, "tale", "room", "proposal")
            post("other-text", dave, "other", "general", "text")
            post("other-proposal", dave, "other", "general", "proposal")
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=alice)}")
            yield {"client": client, "ids": ids}
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def world(module_world, db):
    """Each test in a savepoint (pytest-django's `db`), rolled back after it."""
    module_world["client"].cookies.clear()
    return module_world


MISSING = str(uuid.UUID(int=12345))  # a well-formed id of no message


def fill(value, ids):
    """`<name>` -> the id of the world's message `name` (`<NAME>`: the same id in upper case)."""
    if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
        name = value[1:-1]
        return ids[name.lower()].upper() if name.isupper() else ids[name]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


def post(world, msg_type, payload):
    body = {"msg_type": msg_type, "payload": fill(payload, world["ids"])}
    return world["client"].post(URL, body, format="json")


# --- Accepted ---------------------------------------------------------------------------------

VALID = [
    ("text", {"text": "Once upon a time"}),
    ("text", {"text": "extra keys are kept", "meta": {"model": "x", "tokens": [1, 2]}}),
    ("scene_plan", {"title": "Act one", "beats": ["The storm", "The shipwreck", "The island"]}),
    ("scene_plan", {"title": "t" * 200, "beats": ["one beat"]}),
    ("narration", {"text": "The wind rose."}),
    ("dialogue", {"character": "Ana", "line": "Who's there?"}),
    ("dialogue", {"character": "Ana", "line": "Who's there?", "direction": "whispering"}),
    ("feedback", {"text": "Good pace."}),
    ("feedback", {"text": "Too slow.", "target": "<text>", "rating": 1}),
    ("feedback", {"text": "Loved it.", "target": "<proposal>", "rating": 5}),
    ("feedback", {"text": "Fine.", "rating": 3}),
    ("feedback", {"text": "Other channel, same story.", "target": "<room-proposal>"}),
    ("query", {"text": "Where is the island?"}),
    ("task_update", {"task": "draft act one", "status": "working"}),
    ("task_update", {"task": "draft", "status": "started", "progress": 0}),
    ("task_update", {"task": "draft", "status": "halfway", "progress": 0.5}),
    ("task_update", {"task": "draft", "status": "done", "progress": 1}),
    ("task_update", {"task": "draft", "status": "done", "progress": 1.0}),
    ("proposal", {"text": "Let the ship sink."}),
    ("vote", {"proposal": "<proposal>", "choice": "yes"}),
    ("vote", {"proposal": "<room-proposal>", "choice": "no"}),
    ("vote", {"proposal": "<PROPOSAL>", "choice": "abstain"}),
    ("decision", {"text": "The ship sinks."}),
    ("decision", {"text": "The ship sinks.", "proposal": "<proposal>"}),
    ("steer", {"text": "@showrunner next: the storm breaks"}),
    ("steer", {"text": "More of Elias.", "scene": 4}),  # other keys are kept
    # Other msg_types: any JSON object, whatever its keys.
    ("custom", {}),
    ("x.y-z_9", {"anything": [1, {"nested": True}], "n": None, "f": 1.5}),
    ("a" * 64, {"text": 5}),
    ("mood", {"rating": "high", "beats": "not a list", "proposal": "not an id"}),
]


@pytest.mark.parametrize("msg_type,payload", VALID, ids=[f"{t[:20]}-{i}" for i, (t, _) in enumerate(VALID)])
def test_valid_payload_is_accepted(world, msg_type, payload):
    r = post(world, msg_type, payload)
    assert r.status_code == 201, r.content
    expected = fill(payload, world["ids"])
    body = r.json()
    assert (body["msg_type"], body["payload"], body["seq"]) == (msg_type, expected, FIRST_FREE_SEQ)
    r = world["client"].get(f"{URL}?after={FIRST_FREE_SEQ - 1}")
    assert [(m["msg_type"], m["payload"]) for m in r.json()["results"]] == [(msg_type, expected)]


def test_every_built_in_type_has_a_valid_case():
    from messaging.schemas import BUILT_IN_TYPES

    assert set(BUILT_IN_TYPES) == {"text", "scene_plan", "narration", "dialogue", "feedback", "query",
                                   "task_update", "proposal", "vote", "decision", "steer"}
    assert set(BUILT_IN_TYPES) <= {t for t, _ in VALID}
    assert set(BUILT_IN_TYPES) <= {t for t, _, _ in INVALID}


# --- Rejected ---------------------------------------------------------------------------------

def _bad(msg_type, payload, *fields):
    return (msg_type, payload, {f"payload.{f}" if f != "payload" else f for f in fields})


INVALID = [
    # text
    _bad("text", {}, "text"),
    _bad("text", {"text": None}, "text"),
    _bad("text", {"text": ""}, "text"),
    _bad("text", {"text": "   \n"}, "text"),
    _bad("text", {"text": 5}, "text"),
    _bad("text", {"text": ["a"]}, "text"),
    _bad("text", {"text": {"a": 1}}, "text"),
    _bad("text", {"text": True}, "text"),
    _bad("text", {"body": "wrong key"}, "text"),
    # scene_plan
    _bad("scene_plan", {}, "title", "beats"),
    _bad("scene_plan", {"beats": ["a"]}, "title"),
    _bad("scene_plan", {"title": "T"}, "beats"),
    _bad("scene_plan", {"title": "", "beats": ["a"]}, "title"),
    _bad("scene_plan", {"title": "t" * 201, "beats": ["a"]}, "title"),
    _bad("scene_plan", {"title": 5, "beats": ["a"]}, "title"),
    _bad("scene_plan", {"title": "T", "beats": "a, b"}, "beats"),
    _bad("scene_plan", {"title": "T", "beats": {"0": "a"}}, "beats"),
    _bad("scene_plan", {"title": "T", "beats": None}, "beats"),
    _bad("scene_plan", {"title": "T", "beats": []}, "beats"),
    _bad("scene_plan", {"title": "T", "beats": ["a", 2]}, "beats[1]"),
    _bad("scene_plan", {"title": "T", "beats": ["a", ""]}, "beats[1]"),
    _bad("scene_plan", {"title": "T", "beats": ["a", "b", "  "]}, "beats[2]"),
    _bad("scene_plan", {"title": "T", "beats": [None]}, "beats[0]"),
    _bad("scene_plan", {"title": "T", "beats": [["a"]]}, "beats[0]"),
    _bad("scene_plan", {"title": "T", "beats": ["a", 2, "", "d", {"b": 1}]},
         "beats[1]", "beats[2]", "beats[4]"),
    _bad("scene_plan", {"title": "", "beats": [1]}, "title", "beats[0]"),
    # narration
    _bad("narration", {}, "text"),
    _bad("narration", {"text": ""}, "text"),
    _bad("narration", {"text": 5}, "text"),
    # dialogue
    _bad("dialogue", {}, "character", "line"),
    _bad("dialogue", {"line": "Hi"}, "character"),
    _bad("dialogue", {"character": "Ana"}, "line"),
    _bad("dialogue", {"character": "", "line": "Hi"}, "character"),
    _bad("dialogue", {"character": "c" * 201, "line": "Hi"}, "character"),
    _bad("dialogue", {"character": 5, "line": "Hi"}, "character"),
    _bad("dialogue", {"character": "Ana", "line": ""}, "line"),
    _bad("dialogue", {"character": "Ana", "line": ["Hi"]}, "line"),
    _bad("dialogue", {"character": "Ana", "line": "Hi", "direction": 5}, "direction"),
    _bad("dialogue", {"character": "Ana", "line": "Hi", "direction": ""}, "direction"),
    _bad("dialogue", {"character": "Ana", "line": "Hi", "direction": ["aside"]}, "direction"),
    # feedback
    _bad("feedback", {}, "text"),
    _bad("feedback", {"rating": 3}, "text"),
    _bad("feedback", {"text": ""}, "text"),
    _bad("feedback", {"text": "ok", "rating": 0}, "rating"),
    _bad("feedback", {"text": "ok", "rating": 6}, "rating"),
    _bad("feedback", {"text": "ok", "rating": -1}, "rating"),
    _bad("feedback", {"text": "ok", "rating": "5"}, "rating"),
    _bad("feedback", {"text": "ok", "rating": True}, "rating"),
    _bad("feedback", {"text": "ok", "rating": False}, "rating"),
    _bad("feedback", {"text": "ok", "rating": 4.5}, "rating"),
    _bad("feedback", {"text": "ok", "rating": [5]}, "rating"),
    _bad("feedback", {"text": "ok", "target": "nope"}, "target"),
    _bad("feedback", {"text": "ok", "target": 5}, "target"),
    _bad("feedback", {"text": "ok", "target": MISSING}, "target"),
    _bad("feedback", {"text": "ok", "target": "<other-text>"}, "target"),
    _bad("feedback", {"text": "", "target": "nope", "rating": 9}, "text", "target", "rating"),
    # query
    _bad("query", {}, "text"),
    _bad("query", {"text": []}, "text"),
    _bad("query", {"text": " "}, "text"),
    # task_update
    _bad("task_update", {}, "task", "status"),
    _bad("task_update", {"status": "working"}, "task"),
    _bad("task_update", {"task": "draft"}, "status"),
    _bad("task_update", {"task": "", "status": "working"}, "task"),
    _bad("task_update", {"task": "draft", "status": ""}, "status"),
    _bad("task_update", {"task": "draft", "status": "s" * 201}, "status"),
    _bad("task_update", {"task": "draft", "status": 1}, "status"),
    _bad("task_update", {"task": "draft", "status": "working", "progress": 1.5}, "progress"),
    _bad("task_update", {"task": "draft", "status": "working", "progress": -0.1}, "progress"),
    _bad("task_update", {"task": "draft", "status": "working", "progress": 2}, "progress"),
    _bad("task_update", {"task": "draft", "status": "working", "progress": "0.5"}, "progress"),
    _bad("task_update", {"task": "draft", "status": "working", "progress": True}, "progress"),
    _bad("task_update", {"task": "draft", "status": "working", "progress": [0.5]}, "progress"),
    # proposal
    _bad("proposal", {}, "text"),
    _bad("proposal", {"text": 5}, "text"),
    # vote
    _bad("vote", {}, "proposal", "choice"),
    _bad("vote", {"choice": "yes"}, "proposal"),
    _bad("vote", {"proposal": "<proposal>"}, "choice"),
    _bad("vote", {"proposal": "<proposal>", "choice": ""}, "choice"),
    _bad("vote", {"proposal": "<proposal>", "choice": 1}, "choice"),
    _bad("vote", {"proposal": "<proposal>", "choice": "c" * 201}, "choice"),
    _bad("vote", {"proposal": "nope", "choice": "yes"}, "proposal"),
    _bad("vote", {"proposal": 5, "choice": "yes"}, "proposal"),
    _bad("vote", {"proposal": MISSING, "choice": "yes"}, "proposal"),
    _bad("vote", {"proposal": "<text>", "choice": "yes"}, "proposal"),  # not a proposal message
    _bad("vote", {"proposal": "<other-proposal>", "choice": "yes"}, "proposal"),  # another story's
    # decision
    _bad("decision", {}, "text"),
    _bad("decision", {"proposal": "<proposal>"}, "text"),
    _bad("decision", {"text": ""}, "text"),
    _bad("decision", {"text": "Done", "proposal": "nope"}, "proposal"),
    _bad("decision", {"text": "Done", "proposal": 5}, "proposal"),
    _bad("decision", {"text": "Done", "proposal": MISSING}, "proposal"),
    _bad("decision", {"text": "Done", "proposal": "<other-proposal>"}, "proposal"),
    # steer
    _bad("steer", {}, "text"),
    _bad("steer", {"text": "  "}, "text"),
    _bad("steer", {"text": ["a list"]}, "text"),
    # Any msg_type: the payload is a JSON object.
    _bad("custom", [], "payload"),
    _bad("custom", "text", "payload"),
    _bad("custom", None, "payload"),
    _bad("custom", 5, "payload"),
    _bad("text", [{"text": "hi"}], "payload"),
]


def _invalid_id(case):
    msg_type, payload, fields = case
    return f"{msg_type}-{'+'.join(sorted(fields))}"


@pytest.mark.parametrize("msg_type,payload,fields", INVALID,
                         ids=[f"{i}-{_invalid_id(c)}" for i, c in enumerate(INVALID)])
def test_invalid_payload_is_rejected_naming_the_field(world, msg_type, payload, fields):
    before = Message.objects.count()
    r = post(world, msg_type, payload)
    assert r.status_code == 400, r.content
    assert error_code(r) == "invalid"
    details = r.json()["error"]["details"]
    assert isinstance(details, dict) and set(details) == fields, details
    assert all(isinstance(text, str) and text for text in details.values()), details
    # Nothing stored, no seq used: the channel still ends at seq 2, and the next post gets 3.
    assert Message.objects.count() == before
    r = world["client"].get(f"{URL}?after=0")
    assert r.json()["last_seq"] == FIRST_FREE_SEQ - 1
    assert [m["seq"] for m in r.json()["results"]] == list(range(1, FIRST_FREE_SEQ))
    r = post(world, "text", {"text": "next"})
    assert r.status_code == 201 and r.json()["seq"] == FIRST_FREE_SEQ, r.content


def test_details_say_what_is_wrong(world):
    """The texts in `details` tell a client how to fix the payload."""
    r = post(world, "scene_plan", {"title": "T", "beats": ["a", 2, ""]})
    details = r.json()["error"]["details"]
    assert "string" in details["payload.beats[1]"]
    assert "empty" in details["payload.beats[2]"]
    r = post(world, "feedback", {"text": "ok", "rating": 6})
    rating = r.json()["error"]["details"]["payload.rating"]
    assert "1" in rating and "5" in rating
    r = post(world, "vote", {"proposal": "<text>", "choice": "yes"})
    assert "proposal" in r.json()["error"]["details"]["payload.proposal"]
    r = post(world, "vote", {"proposal": "<other-proposal>", "choice": "yes"})
    assert "story" in r.json()["error"]["details"]["payload.proposal"]


def test_openapi_schema_has_a_request_component_per_built_in_type(world):
    """GET /api/schema: the post body (messages and route) is a oneOf of MessageIn<Type> per built-in
    type, its payload the component <Type>Payload built from messaging/schemas.py, and MessageInOther
    (any other msg_type, any object)."""
    from messaging.schemas import BUILT_IN_TYPES, SCHEMAS

    r = world["client"].get("/api/schema", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    doc = r.json()
    components = doc["components"]["schemas"]

    def deref(schema):
        while "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    for path in ("/api/stories/{story}/channels/{channel}/messages", "/api/stories/{story}/route"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/MessageInRequest"}
    branches = [ref["$ref"].rsplit("/", 1)[1] for ref in components["MessageInRequest"]["oneOf"]]
    names = {msg_type: "".join(part.title() for part in msg_type.split("_")) for msg_type in BUILT_IN_TYPES}
    assert branches == [f"MessageIn{names[t]}Request" for t in BUILT_IN_TYPES] + ["MessageInOtherRequest"]
    for msg_type in BUILT_IN_TYPES:
        component = components[f"MessageIn{names[msg_type]}Request"]
        assert set(component["required"]) == {"msg_type", "payload"}
        msg_type_schema = component["properties"]["msg_type"]
        assert deref(msg_type_schema.get("allOf", [msg_type_schema])[0])["enum"] == [msg_type]
        assert component["properties"]["payload"] == {"$ref": f"#/components/schemas/{names[msg_type]}Payload"}
        payload = components[f"{names[msg_type]}Payload"]
        assert payload["required"] == [f.name for f in SCHEMAS[msg_type] if f.required], msg_type
        assert list(payload["properties"]) == [f.name for f in SCHEMAS[msg_type]], msg_type
    assert components["ScenePlanPayload"]["properties"]["beats"]["type"] == "array"
    assert components["FeedbackPayload"]["properties"]["rating"] == {"type": "integer", "minimum": 1, "maximum": 5,
                                                                     "nullable": True}
    other = components["MessageInOtherRequest"]
    assert set(other["properties"]["msg_type"]["not"]["enum"]) == set(BUILT_IN_TYPES)
    assert other["properties"]["payload"]["type"] == "object" and "required" not in other["properties"]["payload"]
    # Exactly one branch matches a good body; a built-in type with a bad payload matches none.
    import jsonschema

    validator = jsonschema.Draft4Validator({"$ref": "#/components/schemas/MessageInRequest",
                                            "components": doc["components"]})
    for body, valid in (({"msg_type": "text", "payload": {"text": "hi"}}, True),
                        ({"msg_type": "scene_plan", "payload": {"title": "T", "beats": ["a"]}}, True),
                        ({"msg_type": "plot.twist", "payload": {"anything": [1]}}, True),
                        ({"msg_type": "text", "payload": {}}, False),
                        ({"msg_type": "vote", "payload": {"proposal": "x", "choice": "yes"}}, False)):
        assert validator.is_valid(body) == valid, body
