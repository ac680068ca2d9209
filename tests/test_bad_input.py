"""Bad input on every REST write endpoint: each gets its error code and status, and nothing changes.

For every case the test snapshots the database (row counts of stories, participants, channels,
memberships, messages, recipients and read cursors; every channel's `last_seq`; the editable
columns of stories, participants, channels, memberships, cursors and agent profiles), sends the
bad request, checks the answer (status, the SPEC 5 envelope, its `code`, the fields named in
`details`) and checks that the snapshot is unchanged. A positive control per endpoint shows that
the same request with a good body succeeds and does change the snapshot, so a bad case passes
for the right reason. Rejected message posts and routes never consume a seq: the next good post
gets the next one.

Project choices where the SPEC is silent: a body that is not JSON is 415 `invalid`;
JSON that Python parses but no database stores (`1e400`, an unpaired surrogate, NUL in a message)
is 400 `invalid`, as is a message payload nested more than 100 levels deep; a URL holding NUL is
400 `invalid`; names starting with `inbox.` are reserved for agents' inboxes; `POST .../join`
takes no body or `{}`.
"""
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from rest_framework.test import APIClient

from accounts.services import token_issue
from agents.models import AgentProfile
from agents.services import agent_create
from messaging.models import Channel, Membership, Message, MessageRecipient, ReadCursor
from messaging.policies import access_channel
from messaging.services import channel_create, cursor_ack, member_add, message_post
from stories.models import Participant, Story
from stories.services import participant_add, story_create
from tests.conftest import error_code

KIB = 1024
MAX_BODY = 256 * KIB
MAX_PAYLOAD = 64 * KIB
MODELS = (Story, Participant, Channel, Membership, Message, MessageRecipient, ReadCursor)


def _rows(model, *fields):
    return list(model.objects.order_by("pk").values_list("pk", *fields))


def snapshot() -> dict:
    return {
        "counts": {model.__name__: model.objects.count() for model in MODELS},
        "last_seq": dict(Channel.objects.values_list("pk", "last_seq")),
        "stories": _rows(Story, "slug", "title", "premise", "visibility", "requires_approval", "owner_id"),
        "participants": _rows(Participant, "story_id", "user_id", "role"),
        "channels": _rows(Channel, "name", "kind", "topic", "archived_at", "idle_archive_seconds"),
        "memberships": _rows(Membership, "channel_id", "user_id", "role"),
        "cursors": _rows(ReadCursor, "channel_id", "user_id", "seq"),
        "messages": _rows(Message, "channel_id", "seq"),
        "recipients": _rows(MessageRecipient, "message_id", "user_id"),
        "agents": _rows(AgentProfile, "status", "task", "progress", "status_updated_at"),
    }


# --- The world --------------------------------------------------------------------------------

@dataclass
class World:
    """Story `tale` (public, owner alice, editor bob, agent scribe handling `narration`, private
    channel `secret` with bob); story `other` (private, owner dave) with one message; carol is a
    signed-in outsider, ghost an inactive user. `general` of `tale` holds one message (seq 1);
    alice has a read cursor there."""
    tokens: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)
    clients: dict = field(default_factory=dict)

    def client(self, who):
        """One client per caller for the module (a new client loads the middleware again)."""
        if who not in self.clients:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[who]}")
            self.clients[who] = client
        client = self.clients[who]
        client.cookies.clear()
        return client


def _build_world() -> World:
    User = get_user_model()
    # No passwords: hashing costs time and the API takes bearer tokens.
    users = {name: User.objects.create_user(username=name) for name in ("alice", "bob", "carol", "dave")}
    User.objects.create_user(username="ghost", is_active=False)
    tale = story_create(owner=users["alice"], slug="tale", title="A tale")
    participant_add(story=tale, user=users["bob"], role=Participant.Role.EDITOR)
    users["scribe"] = agent_create(username="scribe", capabilities=["narration"], stories=[tale])
    secret = channel_create(story=tale, creator=users["alice"], name="secret", kind="private")
    member_add(channel=secret, user=users["bob"])
    story_create(owner=users["dave"], slug="other", title="Another", visibility="private")
    w = World(tokens={name: token_issue(user=user) for name, user in users.items()})

    def post(sender, story, msg_type, text):
        access = access_channel(users[sender], story, "general", for_write=True)
        return str(message_post(sender=users[sender], access=access,
                                data={"msg_type": msg_type, "payload": {"text": text}}).message.id)

    w.ids["m1"] = post("alice", "tale", "text", "first")
    w.ids["other"] = post("dave", "other", "proposal", "elsewhere")
    cursor_ack(channel=Channel.objects.get(story=tale, name="general"), user=users["alice"], seq=1)
    return w


@pytest.fixture(scope="module")
def module_world(django_db_setup, django_db_blocker):
    """Built once per module inside a transaction rolled back at the end."""
    with django_db_blocker.unblock():
        # Never the real database: pytest-django switches to the test one only when a test asks for `db`.
        name = str(connection.settings_dict["NAME"])
        assert Path(name).name.startswith("test"), name
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _build_world()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def world(module_world, db):
    """`db` runs each test in a savepoint rolled back after it: no test sees another's writes.
    (Requesting `db` also makes pytest-django set up the test database before `module_world`.)"""
    return module_world


class Raw(str):
    """A body sent exactly as written (not JSON-encoded)."""


def fill(value, ids):
    """Replace `<name>` placeholders (top-level values: `reply_to`, `id`) with the world's message ids."""
    if isinstance(value, Raw):
        text = str(value)
        for name, id_ in ids.items():
            text = text.replace(f"<{name}>", id_)
        return Raw(text)
    if isinstance(value, dict):
        return {k: ids.get(v[1:-1], v) if isinstance(v, str) and v[:1] == "<" and v[-1:] == ">" else v
                for k, v in value.items()}
    return value


def send(w: World, who, method, path, body=None, content_type="application/json", headers=None):
    client = w.client(who)
    if body is None:
        data = ""
    elif isinstance(body, (Raw, bytes)):
        data = body if isinstance(body, bytes) else str(body)
    else:
        data = json.dumps(body)
    return client.generic(method, path, data, content_type=content_type, **(headers or {}))


def assert_error(response, status, code, details):
    """`details`: None (must be null), a set of keys (exactly these), or ... (not checked)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert error_code(response) == code, response.content
    got = response.json()["error"]["details"]
    if details is None:
        assert got is None, got
    elif details is not ...:
        assert isinstance(got, dict) and set(got) == set(details), got
    assert response.json()["error"]["message"]


# --- Endpoints and their good bodies ----------------------------------------------------------

STORY = "/api/stories/tale"
CHANNELS = f"{STORY}/channels"
GENERAL = f"{CHANNELS}/general"
SECRET = f"{CHANNELS}/secret"

ENDPOINTS = {
    # name: (caller, method, path, a good body, the success status)
    "create-story": ("alice", "POST", "/api/stories", {"slug": "fresh", "title": "Fresh"}, 201),
    "patch-story": ("alice", "PATCH", STORY, {"title": "Retitled", "visibility": "private"}, 200),
    "join": ("carol", "POST", f"{STORY}/join", {}, 201),
    "add-participant": ("alice", "POST", f"{STORY}/participants", {"username": "carol", "role": "viewer"},
                        201),
    "create-channel": ("bob", "POST", CHANNELS, {"name": "plots", "kind": "public"}, 201),
    "patch-channel": ("alice", "PATCH", GENERAL, {"topic": "New topic"}, 200),
    "add-member": ("alice", "POST", f"{SECRET}/members", {"username": "scribe"}, 201),
    "post-message": ("bob", "POST", f"{GENERAL}/messages", {"msg_type": "text", "payload": {"text": "hi"}},
                     201),
    "ack": ("bob", "POST", f"{GENERAL}/ack", {"seq": 1}, 200),
    "route": ("bob", "POST", f"{STORY}/route", {"msg_type": "narration", "payload": {"text": "go"}}, 201),
    "agent-status": ("scribe", "PUT", "/api/agents/me/status",
                     {"status": "working", "task": "t", "progress": 0.5}, 200),
}
DELETE_MEMBER = ("alice", "DELETE", f"{SECRET}/members/bob", None, 204)


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, "delete-member"])
def test_good_request_succeeds_and_changes_the_database(world, endpoint):
    """The control: the bad cases below differ from this only in what makes them bad."""
    who, method, path, body, status = ENDPOINTS.get(endpoint, DELETE_MEMBER)
    before = snapshot()
    r = send(world, who, method, path, body)
    assert r.status_code == status, r.content
    assert snapshot() != before


def test_join_without_a_body_still_works(world):
    r = world.client("carol").post("/api/stories/tale/join")
    assert r.status_code == 201, r.content
    assert r.json()["role"] == "editor"


# --- The same bad bodies on every endpoint ----------------------------------------------------

def _with_surrogate_key(body):
    text = json.dumps(body)
    return Raw('{"\\ud800": 1, ' + text[1:] if text != "{}" else '{"\\ud800": 1}')


GENERIC = {
    # name: (build the body from the good one, content type, status, code, details)
    "malformed-json": (lambda b: Raw('{"slug": "x", '), "application/json", 400, "invalid", None),
    "single-quotes": (lambda b: Raw("{'a': 1}"), "application/json", 400, "invalid", None),
    "not-utf8": (lambda b: b'{"a": "\xff\xfe"}', "application/json", 400, "invalid", None),
    "array": (lambda b: [b], "application/json", 400, "invalid", None),
    "string": (lambda b: "an object, honest", "application/json", 400, "invalid", None),
    "number": (lambda b: 42, "application/json", 400, "invalid", None),
    "null": (lambda b: Raw("null"), "application/json", 400, "invalid", None),
    "unknown-field": (lambda b: {**b, "bogus_field": 1}, "application/json", 400, "invalid", {"bogus_field"}),
    "unpaired-surrogate": (_with_surrogate_key, "application/json", 400, "invalid", None),
    "form-encoded": (lambda b: Raw(urlencode({k: json.dumps(v) for k, v in {**b, "x": 1}.items()})),
                     "application/x-www-form-urlencoded", 415, "invalid", None),
    "text-plain": (lambda b: Raw(json.dumps(b)), "text/plain", 415, "invalid", None),
    "nested-too-deeply": (lambda b: Raw("[" * 100_000 + "]" * 100_000), "application/json", 400, "invalid", None),
    "body-over-256kib": (lambda b: Raw("x" * (MAX_BODY + 1)), "application/json", 413, "payload_too_large",
                         {"limit"}),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", GENERIC)
def test_bad_body_on_every_endpoint(world, endpoint, case):
    who, method, path, good, _ = ENDPOINTS[endpoint]
    make_body, content_type, status, code, details = GENERIC[case]
    before = snapshot()
    r = send(world, who, method, path, make_body(good), content_type=content_type)
    assert_error(r, status, code, details)
    assert snapshot() == before


def test_body_over_256kib_is_refused_before_parsing_on_delete_too(world):
    before = snapshot()
    r = send(world, *DELETE_MEMBER[:3], Raw("x" * (MAX_BODY + 1)))
    assert_error(r, 413, "payload_too_large", {"limit"})
    assert r.json()["error"]["details"]["limit"] == MAX_BODY
    assert snapshot() == before


def test_body_over_256kib_is_refused_even_when_valid_json(world):
    """A well-formed message whose body is too big: 413 from the size alone, nothing stored."""
    before = snapshot()
    body = {"msg_type": "custom", "payload": {"a": "x" * (MAX_BODY // 2), "b": "y" * (MAX_BODY // 2)}}
    r = send(world, "bob", "POST", "/api/stories/tale/channels/general/messages", body)
    assert_error(r, 413, "payload_too_large", {"limit"})
    assert snapshot() == before


# --- Endpoint-specific bad input --------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    who: str
    method: str
    path: str
    body: object = None
    status: int = 400
    code: str = "invalid"
    details: object = ...  # None, a set of keys, or ... (unchecked)
    headers: dict = field(default_factory=dict)


def C(who, method, path, body, details=..., status=400, code="invalid", **headers):
    return Case(who, method, path, body, status, code, details, headers)


def _story_cases():
    cases = {"create:empty": C("alice", "POST", "/api/stories", {}, {"slug", "title"}),
             "create:no-slug": C("alice", "POST", "/api/stories", {"title": "T"}, {"slug"}),
             "create:no-title": C("alice", "POST", "/api/stories", {"slug": "fresh"}, {"title"}),
             "create:slug-taken": C("alice", "POST", "/api/stories", {"slug": "tale", "title": "T"}, ...,
                                    409, "conflict"),
             "create:slug-of-a-private-story-taken": C("bob", "POST", "/api/stories",
                                                       {"slug": "other", "title": "T"}, ..., 409, "conflict"),
             "create:owner-field": C("alice", "POST", "/api/stories",
                                     {"slug": "fresh", "title": "T", "owner": "bob"}, {"owner"})}
    for i, slug in enumerate(["Bad Slug", "-abc", "a" * 65, "", "ab_c", "ab.c", "über", "tale/x", "a\u0000",
                              [], {}, None, True]):
        cases[f"create:slug-{i}"] = C("alice", "POST", "/api/stories", {"slug": slug, "title": "T"}, {"slug"})
    for i, title in enumerate(["", "   ", "x" * 201, "a\u0000b", [], {}, None]):
        cases[f"create:title-{i}"] = C("alice", "POST", "/api/stories", {"slug": "fresh", "title": title},
                                       {"title"})
    for i, premise in enumerate(["x" * 20001, [], None]):
        cases[f"create:premise-{i}"] = C("alice", "POST", "/api/stories",
                                         {"slug": "fresh", "title": "T", "premise": premise}, {"premise"})
    for i, visibility in enumerate(["secret", "PUBLIC", "", None, [], True]):
        cases[f"create:visibility-{i}"] = C("alice", "POST", "/api/stories",
                                            {"slug": "fresh", "title": "T", "visibility": visibility},
                                            {"visibility"})
    for i, title in enumerate(["", "x" * 201, None, []]):
        cases[f"patch:title-{i}"] = C("alice", "PATCH", STORY, {"title": title}, {"title"})
    cases["patch:premise"] = C("alice", "PATCH", STORY, {"premise": "x" * 20001}, {"premise"})
    cases["patch:visibility"] = C("alice", "PATCH", STORY, {"visibility": "hidden"}, {"visibility"})
    cases["patch:visibility-null"] = C("alice", "PATCH", STORY, {"visibility": None}, {"visibility"})
    for i, value in enumerate(["maybe", None, [], 2]):
        cases[f"patch:requires-approval-{i}"] = C("alice", "PATCH", STORY, {"requires_approval": value},
                                                  {"requires_approval"})
        cases[f"create:requires-approval-{i}"] = C("alice", "POST", "/api/stories",
                                                   {"slug": "fresh", "title": "T", "requires_approval": value},
                                                   {"requires_approval"})
    cases["patch:slug"] = C("alice", "PATCH", STORY, {"slug": "renamed"}, {"slug"})
    cases["patch:owner"] = C("alice", "PATCH", STORY, {"owner": "bob", "title": "Mine"}, {"owner"})
    cases["patch:no-such-story"] = C("alice", "PATCH", "/api/stories/nope", {"title": "T"}, None,
                                     404, "not_found")
    cases["patch:bad-slug-in-url"] = C("alice", "PATCH", "/api/stories/Bad%20Slug", {"title": "T"}, None,
                                       404, "not_found")
    cases["patch:nul-in-url"] = C("alice", "PATCH", "/api/stories/ta%00le", {"title": "T"}, None)
    cases["join:role-field"] = C("carol", "POST", f"{STORY}/join", {"role": "owner"}, {"role"})
    cases["join:private-story"] = C("carol", "POST", "/api/stories/other/join", {}, None, 404, "not_found")
    cases["join:no-such-story"] = C("carol", "POST", "/api/stories/nope/join", {}, None, 404, "not_found")
    cases["join:nul-in-url"] = C("carol", "POST", "/api/stories/t%00/join", {}, None)
    return cases


def _participant_cases():
    url = f"{STORY}/participants"
    cases = {"empty": C("alice", "POST", url, {}, {"username", "role"}),
             "no-role": C("alice", "POST", url, {"username": "carol"}, {"role"}),
             "no-username": C("alice", "POST", url, {"role": "editor"}, {"username"}),
             "unknown-user": C("alice", "POST", url, {"username": "nobody", "role": "editor"}, {"username"}),
             "inactive-user": C("alice", "POST", url, {"username": "ghost", "role": "editor"}, {"username"}),
             "owner-role-change": C("alice", "POST", url, {"username": "alice", "role": "viewer"}, ...,
                                    409, "conflict"),
             "no-such-story": C("alice", "POST", "/api/stories/nope/participants",
                                {"username": "carol", "role": "editor"}, None, 404, "not_found")}
    for i, role in enumerate(["owner", "admin", "", "EDITOR", None, ["editor"]]):
        cases[f"role-{i}"] = C("alice", "POST", url, {"username": "carol", "role": role}, {"role"})
    for i, username in enumerate(["", None, [], {}, "x" * 151, "a\u0000"]):
        cases[f"username-{i}"] = C("alice", "POST", url, {"username": username, "role": "editor"},
                                   {"username"})
    return cases


def _channel_cases():
    cases = {"create:empty": C("bob", "POST", CHANNELS, {}, {"name", "kind"}),
             "create:no-kind": C("bob", "POST", CHANNELS, {"name": "plots"}, {"kind"}),
             "create:taken": C("bob", "POST", CHANNELS, {"name": "general", "kind": "public"}, ...,
                               409, "conflict"),
             "create:reserved-inbox-name": C("bob", "POST", CHANNELS,
                                             {"name": "inbox.newcomer", "kind": "public"}, {"name"}),
             "create:existing-inbox-name": C("bob", "POST", CHANNELS,
                                             {"name": "inbox.scribe", "kind": "private"}, {"name"}),
             "create:no-such-story": C("bob", "POST", "/api/stories/nope/channels",
                                       {"name": "plots", "kind": "public"}, None, 404, "not_found")}
    for i, name in enumerate(["General", "-x", ".x", "_x", "a" * 65, "has space", "", "a/b", "ä", "a\u0000",
                              None, [], {}]):
        cases[f"create:name-{i}"] = C("bob", "POST", CHANNELS, {"name": name, "kind": "public"}, {"name"})
    for i, kind in enumerate(["inbox", "weird", "", "PUBLIC", None, []]):
        cases[f"create:kind-{i}"] = C("bob", "POST", CHANNELS, {"name": "plots", "kind": kind}, {"kind"})
    for i, topic in enumerate(["x" * 501, [], None]):
        cases[f"create:topic-{i}"] = C("bob", "POST", CHANNELS,
                                       {"name": "plots", "kind": "public", "topic": topic}, {"topic"})
    for i, seconds in enumerate([0, -5, "soon", 1.5, True, 10 ** 10, []]):
        cases[f"create:idle-{i}"] = C("bob", "POST", CHANNELS,
                                      {"name": "plots", "kind": "public", "idle_archive_seconds": seconds},
                                      {"idle_archive_seconds"})
    for i, archived in enumerate(["maybe", None, [], 2]):
        cases[f"patch:archived-{i}"] = C("alice", "PATCH", GENERAL, {"archived": archived}, {"archived"})
    for i, topic in enumerate(["x" * 501, [], None]):
        cases[f"patch:topic-{i}"] = C("alice", "PATCH", GENERAL, {"topic": topic}, {"topic"})
    for i, seconds in enumerate([0, "x", 1.5]):
        cases[f"patch:idle-{i}"] = C("alice", "PATCH", GENERAL, {"idle_archive_seconds": seconds},
                                     {"idle_archive_seconds"})
    for name in ("name", "kind", "last_seq"):
        cases[f"patch:field-{name}"] = C("alice", "PATCH", GENERAL, {name: "private" if name == "kind" else 0,
                                                                     "topic": "T"}, {name})
    cases["patch:no-such-channel"] = C("alice", "PATCH", f"{CHANNELS}/nope", {"topic": "T"}, None,
                                       404, "not_found")
    cases["patch:nul-in-url"] = C("alice", "PATCH", f"{CHANNELS}/gen%00", {"topic": "T"}, None)
    return cases


def _member_cases():
    url = f"{SECRET}/members"
    cases = {"add:empty": C("alice", "POST", url, {}, {"username"}),
             "add:unknown-user": C("alice", "POST", url, {"username": "nobody"}, {"username"}),
             "add:not-a-participant": C("alice", "POST", url, {"username": "dave"}, {"username"}),
             "add:public-channel": C("alice", "POST", f"{GENERAL}/members", {"username": "bob"}),
             "add:inbox": C("alice", "POST", f"{CHANNELS}/inbox.scribe/members", {"username": "bob"}),
             "add:no-such-channel": C("alice", "POST", f"{CHANNELS}/nope/members", {"username": "bob"}, None,
                                      404, "not_found"),
             "delete:unknown-user": C("alice", "DELETE", f"{url}/nobody", None, None, 404, "not_found"),
             "delete:not-a-member": C("alice", "DELETE", f"{url}/carol", None, None, 404, "not_found"),
             "delete:agent-from-own-inbox": C("scribe", "DELETE", f"{CHANNELS}/inbox.scribe/members/scribe",
                                              None),
             "delete:no-such-channel": C("alice", "DELETE", f"{CHANNELS}/nope/members/bob", None, None,
                                         404, "not_found"),
             "delete:nul-in-username": C("alice", "DELETE", f"{url}/b%00b", None, None)}
    for i, username in enumerate(["", None, [], {"username": "bob"}, "x" * 151, "b\u0000b"]):
        cases[f"add:username-{i}"] = C("alice", "POST", url, {"username": username}, {"username"})
    return cases


def _ack_cases():
    url = f"{GENERAL}/ack"
    cases = {"empty": C("bob", "POST", url, {}, {"seq"}),
             "beyond-last-seq": C("bob", "POST", url, {"seq": 2}, {"seq"}),
             "huge": C("bob", "POST", url, {"seq": 10 ** 20}, {"seq"}),
             "no-such-channel": C("bob", "POST", f"{CHANNELS}/nope/ack", {"seq": 1}, None, 404, "not_found")}
    for i, seq in enumerate(["abc", -1, 1.5, True, None, [], {}]):
        cases[f"seq-{i}"] = C("bob", "POST", url, {"seq": seq}, {"seq"})
    return cases


def _status_cases():
    url = "/api/agents/me/status"
    cases = {"empty": C("scribe", "PUT", url, {}, {"status"}),
             "not-an-agent": C("alice", "PUT", url, {"status": "idle"}, None, 403, "forbidden"),
             "infinite-progress": C("scribe", "PUT", url, Raw('{"status": "idle", "progress": 1e400}'), None)}
    for i, status in enumerate(["busy", "", "IDLE", None, 5, ["idle"]]):
        cases[f"status-{i}"] = C("scribe", "PUT", url, {"status": status}, {"status"})
    for i, progress in enumerate([1.5, -0.1, "x", True, [], {}]):
        cases[f"progress-{i}"] = C("scribe", "PUT", url, {"status": "working", "progress": progress},
                                   {"progress"})
    for i, task in enumerate(["x" * 501, [], None, "a\u0000"]):
        cases[f"task-{i}"] = C("scribe", "PUT", url, {"status": "working", "task": task}, {"task"})
    return cases


SPECIFIC = {
    **{f"story:{k}": v for k, v in _story_cases().items()},
    **{f"participant:{k}": v for k, v in _participant_cases().items()},
    **{f"channel:{k}": v for k, v in _channel_cases().items()},
    **{f"member:{k}": v for k, v in _member_cases().items()},
    **{f"ack:{k}": v for k, v in _ack_cases().items()},
    **{f"status:{k}": v for k, v in _status_cases().items()},
}


@pytest.mark.parametrize("case", SPECIFIC)
def test_bad_input(world, case):
    c = SPECIFIC[case]
    before = snapshot()
    r = send(world, c.who, c.method, c.path, fill(c.body, world.ids), headers=c.headers)
    assert_error(r, c.status, c.code, c.details)
    assert snapshot() == before


# A field with a fixed set of values names them in `details` when it is wrong (null is "may not be null").
ENUMS = {
    # name: (case name prefix in SPECIFIC, field, its valid values)
    "create-story-visibility": ("story:create:visibility-", "visibility", "public, private"),
    "patch-story-visibility": ("story:patch:visibility", "visibility", "public, private"),
    "participant-role": ("participant:role-", "role", "editor, viewer"),
    "channel-kind": ("channel:create:kind-", "kind", "public, private, presence"),
    "agent-status": ("status:status-", "status", "idle, working, waiting, error, offline"),
}


@pytest.mark.parametrize("enum", ENUMS)
def test_enum_errors_list_the_valid_values(world, enum):
    prefix, field_name, values = ENUMS[enum]
    cases = [c for name, c in SPECIFIC.items() if name.startswith(prefix) and c.body.get(field_name) is not None]
    assert cases
    for c in cases:
        r = send(world, c.who, c.method, c.path, c.body)
        assert_error(r, 400, "invalid", {field_name})
        detail = r.json()["error"]["details"][field_name]
        detail = detail[0] if isinstance(detail, list) else detail
        assert detail == f"must be one of: {values}", (c.body, detail)


def test_invite_role_error_lists_the_valid_values(world):
    r = send(world, "alice", "POST", f"{STORY}/invites", {"role": "owner"})
    assert_error(r, 400, "invalid", {"role"})
    assert r.json()["error"]["details"]["role"] == "must be one of: editor, viewer"


# --- Messages and routes ----------------------------------------------------------------------

TEXT = {"msg_type": "text", "payload": {"text": "hi"}}


def nested(levels):
    """An array `levels` deep: [[[...]]]."""
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _message_cases():
    """Bodies for POST .../messages; routes reuse them with msg_type `narration` for `text`."""
    cases = {"empty": ({}, {"msg_type", "payload"}),
             "no-msg-type": ({"payload": {"text": "hi"}}, {"msg_type"}),
             "no-payload": ({"msg_type": "text"}, {"payload"}),
             "payload-breaks-schema": ({"msg_type": "text", "payload": {"text": 5}}, {"payload.text"}),
             "payload-nul": ({"msg_type": "text", "payload": {"text": "a\u0000b"}}, {"payload"}),
             "payload-nul-in-key": ({"msg_type": "custom", "payload": {"k\u0000": 1}}, {"payload"}),
             "payload-infinite-number": (Raw('{"msg_type": "custom", "payload": {"n": 1e400}}'), None),
             "payload-nan": (Raw('{"msg_type": "custom", "payload": {"n": NaN}}'), None),
             # The payload object is level 1: 101 levels, one too many.
             "payload-101-levels-deep": ({"msg_type": "custom", "payload": {"a": nested(100)}}, {"payload"}),
             "payload-500-levels-deep": ({"msg_type": "custom", "payload": {"a": nested(499)}}, {"payload"}),
             "reply-to-other-story": ({**TEXT, "reply_to": "<other>"}, {"reply_to"}),
             "reply-to-unknown": ({**TEXT, "reply_to": str(uuid.UUID(int=7))}, {"reply_to"}),
             "correlation-id-129": ({**TEXT, "correlation_id": "c" * 129}, {"correlation_id"}),
             "audience-unknown-user": ({**TEXT, "audience": ["bob", "nobody"]}, {"audience"}),
             "audience-101-users": ({**TEXT, "audience": [f"u{i}" for i in range(101)]}, {"audience"}),
             "field-seq": ({**TEXT, "seq": 5}, {"seq"}),
             "field-sender": ({**TEXT, "sender": "alice"}, {"sender"}),
             "field-story": ({**TEXT, "story": "other"}, {"story"}),
             "many-errors": ({"msg_type": "Bad Type", "payload": [], "reply_to": "x", "audience": "x"},
                             {"msg_type", "payload", "reply_to", "audience"})}
    for i, msg_type in enumerate(["Bad Type", "1abc", "a" * 65, "", "Text", "text\n", " text", "_x", "a b",
                                  "ü", 5, None, [], {}]):
        cases[f"msg-type-{i}"] = ({"msg_type": msg_type, "payload": {"text": "hi"}}, {"msg_type"})
    for i, payload in enumerate([[], "text", None, 5, True, [{"text": "hi"}]]):
        cases[f"payload-{i}"] = ({"msg_type": "text", "payload": payload}, {"payload"})
    for i, id_ in enumerate(["nope", 5, "", [], "1234"]):
        cases[f"id-{i}"] = ({**TEXT, "id": id_}, {"id"})
    for i, reply_to in enumerate(["nope", 5, [], True]):
        cases[f"reply-to-{i}"] = ({**TEXT, "reply_to": reply_to}, {"reply_to"})
    for i, correlation_id in enumerate([5, [], {}, True, "a\u0000"]):
        cases[f"correlation-id-{i}"] = ({**TEXT, "correlation_id": correlation_id}, {"correlation_id"})
    for i, audience in enumerate(["everyone", "ALL", "", [], [""], [5], [None], [["bob"]], {"users": ["bob"]},
                                  5, True, ["b\u0000b"]]):
        cases[f"audience-{i}"] = ({**TEXT, "audience": audience}, {"audience"})
    return cases


MESSAGE_CASES = _message_cases()


def _as_route(body):
    if isinstance(body, Raw):
        return body
    return {**body, "msg_type": "narration"} if body.get("msg_type") == "text" else body


def _post_good_message(w, expected_seq):
    r = w.client("bob").post(f"{GENERAL}/messages", {"msg_type": "text", "payload": {"text": "after"}},
                             format="json")
    assert r.status_code == 201, r.content
    assert r.json()["seq"] == expected_seq


@pytest.mark.parametrize("case", MESSAGE_CASES)
def test_bad_message_post(world, case):
    body, details = MESSAGE_CASES[case]
    before = snapshot()
    r = send(world, "bob", "POST", f"{GENERAL}/messages", fill(body, world.ids))
    assert_error(r, 400, "invalid", details)
    assert snapshot() == before
    _post_good_message(world, 2)  # the failed post consumed no seq


def _route_good(w, expected_seq):
    r = w.client("bob").post(f"{STORY}/route", {"msg_type": "narration", "payload": {"text": "after"}},
                             format="json")
    assert r.status_code == 201, r.content
    assert [(m["channel"], m["seq"]) for m in r.json()["results"]] == [("inbox.scribe", expected_seq)]


@pytest.mark.parametrize("case", MESSAGE_CASES)
def test_bad_route(world, case):
    body, details = MESSAGE_CASES[case]
    before = snapshot()
    r = send(world, "bob", "POST", f"{STORY}/route", fill(_as_route(body), world.ids))
    assert_error(r, 400, "invalid", details)
    assert snapshot() == before
    _route_good(world, 1)


@pytest.mark.parametrize("msg_type", ["query", "poem", "text"])
def test_route_with_no_capable_agent_is_no_route(world, msg_type):
    before = snapshot()
    payload = {"text": "anyone?"}
    r = send(world, "bob", "POST", f"{STORY}/route", {"msg_type": msg_type, "payload": payload})
    assert_error(r, 422, "no_route", {"msg_type"})
    assert snapshot() == before


def _oversize_text(chars, char="a"):
    return {"msg_type": "text", "payload": {"text": char * chars}}


# `{"text":"` + `"}` = 11 bytes around the text in the compact UTF-8 encoding the limit measures.
OVERHEAD = len(b'{"text":""}')


@pytest.mark.parametrize("where", ["messages", "route"])
@pytest.mark.parametrize("body", [
    pytest.param(_oversize_text(MAX_PAYLOAD - OVERHEAD + 1), id="one-byte-over"),
    pytest.param(_oversize_text(MAX_PAYLOAD), id="64kib-of-text"),
    pytest.param(_oversize_text((MAX_PAYLOAD - OVERHEAD) // 2 + 1, "é"), id="two-byte-chars-count-as-two"),
    pytest.param({"msg_type": "custom", "payload": {f"k{i}": "v" * 100 for i in range(700)}}, id="many-keys"),
])
def test_payload_over_64kib_is_payload_too_large(world, where, body):
    if where == "route":  # scribe handles `narration` (a `text` field)
        body = {"msg_type": "narration", "payload": {"text": "x", **body["payload"]}}
    url = f"{GENERAL}/messages" if where == "messages" else f"{STORY}/route"
    assert len(json.dumps(body).encode()) < MAX_BODY  # so this is the payload limit, not the body limit
    before = snapshot()
    r = send(world, "bob", "POST", url, body)
    assert_error(r, 413, "payload_too_large", ...)
    details = r.json()["error"]["details"]
    assert details["limit"] == MAX_PAYLOAD and details["size"] > MAX_PAYLOAD
    assert snapshot() == before
    if where == "messages":
        _post_good_message(world, 2)
    else:
        _route_good(world, 1)


def test_payload_of_exactly_64kib_is_accepted(world):
    r = send(world, "bob", "POST", f"{GENERAL}/messages", _oversize_text(MAX_PAYLOAD - OVERHEAD))
    assert r.status_code == 201, r.content[:300]
    assert r.json()["seq"] == 2


@pytest.mark.parametrize("body,details", [
    ({"msg_type": "a" * 64, "payload": {}}, None),
    ({"msg_type": "custom", "payload": {"a": nested(99), "b": [[{"c": [1]}]] * 50}}, None),  # 100 levels
    ({**TEXT, "correlation_id": "c" * 128}, None),
    ({**TEXT, "audience": ["bob", "bob", "scribe"]}, None),
    ({**TEXT, "reply_to": "<m1>", "id": str(uuid.UUID(int=99))}, None),
])
def test_edge_values_that_are_fine(world, body, details):
    """Boundaries of the rules above, so the bad cases are bad for the named reason."""
    r = send(world, "bob", "POST", f"{GENERAL}/messages", fill(body, world.ids))
    assert r.status_code == 201, r.content
    got = r.json()
    assert got["seq"] == 2 and got["msg_type"] == body["msg_type"]


def test_idempotency_key_too_long(world):
    before = snapshot()
    r = send(world, "bob", "POST", f"{GENERAL}/messages", TEXT, headers={"HTTP_IDEMPOTENCY_KEY": "k" * 256})
    assert_error(r, 400, "invalid", {"Idempotency-Key"})
    assert snapshot() == before
    _post_good_message(world, 2)


def test_reused_id_with_other_content_is_conflict(world):
    before = snapshot()
    r = send(world, "bob", "POST", f"{GENERAL}/messages", {**TEXT, "id": world.ids["m1"]})
    assert_error(r, 409, "conflict", {"id"})
    assert snapshot() == before
    _post_good_message(world, 2)


def test_failed_posts_in_a_row_never_consume_a_seq(world):
    """Several kinds of failure, then a good post: it gets seq 2, right after the first message."""
    url = f"{GENERAL}/messages"
    for body in ({"msg_type": "Bad"}, _oversize_text(MAX_PAYLOAD), {**TEXT, "reply_to": world.ids["other"]},
                 {**TEXT, "audience": ["nobody"]}, Raw("{")):
        r = send(world, "bob", "POST", url, body)
        assert r.status_code in (400, 413), r.content[:300]
    _post_good_message(world, 2)
    r = world.client("bob").get(f"{url}?after=0")
    assert [m["seq"] for m in r.json()["results"]] == [1, 2]
    assert r.json()["last_seq"] == 2
