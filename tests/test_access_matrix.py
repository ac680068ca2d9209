"""Who may do what, over every REST endpoint of mythline_site/urls.py (except /api/schema, /api/docs).

Three groups:

1. The access matrix: one test per (endpoint, caller) cell, with the status (and error code) the
   caller must get. Callers: anonymous, an outsider (signed in, not in the story), a viewer, an
   editor, a channel member (an editor in the private channel), the channel owner (the editor who
   created it), the story owner, and an agent (an editor of the story, with its inbox). Every
   story-level and channel-level endpoint runs against a public and a private story, and every
   channel-level endpoint against a public, a private and an inbox channel (and, in the public
   story, the presence channel `room`). The SSE endpoint (`.../events`) and the documents
   endpoints are in it too; `test_every_api_route_is_in_the_matrix` fails when a route is added
   to urls.py without joining the matrix.
2. Private channels and private stories never leak: a caller who may not read them never finds
   their names, their messages' text or the private story's documents anywhere in any response
   body (the SSE replay included), and a post that references an unreadable message learns
   nothing about it.
3. Audience: `agents` / `humans` / a username list decide who reads a message (the story owner
   and the sender always do), on every read path.

SPEC 2: unauthenticated 401, known but not allowed 403, not even known of 404. Project choices
where the SPEC is silent: the story owner reads every channel of the story; a participant who is
not an inbox's agent gets 403 reading it (editors post there, so they know it); outsiders read a
public story but do not post (403); viewers read, posting is 403; /api/inbox and /api/activity
without ?story= cover only the stories the caller takes part in.

Speed: the world (users, two stories, channels, messages, tokens) is built once per module inside
a transaction that is rolled back at the end; each test runs in its own savepoint, rolled back
after it, so writes made by one cell never reach the next.
"""
import asyncio
import json
import uuid
from dataclasses import dataclass, field

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.test import APIClient

from accounts.services import token_issue
from agents.services import agent_create
from messaging.policies import access_channel
from messaging.services import channel_create, member_add, message_post
from bible.services import entry_create, progression_add
from outline.services import scene_create
from versions.services import version_create
from suggestions.services import suggestion_create
from comments.services import thread_create
from streaming.services import stream_append, stream_start
from stories.documents import document_edit
from stories.models import Document, Participant
from stories.services import invite_create, participant_add, story_create
from tests.conftest import error_code

CALLERS = ("anon", "outsider", "viewer", "editor", "member", "chowner", "owner", "agent")
USERNAMES = {"outsider": "otto", "viewer": "vera", "editor": "eddie", "member": "mia", "chowner": "carl",
             "owner": "olga", "agent": "ada"}
SLUGS = {"pub": "open-tale", "priv": "hush-tale"}
PREFIX = {"pub": "OPEN", "priv": "HUSH"}  # every text of the private story starts with HUSH
CHANNELS = {"general": "general", "cabal": "cabal", "inbox": "inbox.ada", "room": "room"}
# Every test is marked, so that pytest-django creates the test database whichever tests are selected
# (the module-scoped world needs it before any test's own `db` fixture runs).
pytestmark = pytest.mark.django_db

ERROR_CODES = {400: "invalid", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict"}


# --- The world --------------------------------------------------------------------------------

@dataclass
class World:
    tokens: dict = field(default_factory=dict)  # caller -> raw bearer token
    ids: dict = field(default_factory=dict)  # name -> message id (str)
    last_seq: dict = field(default_factory=dict)  # (story key, channel key) -> last seq
    clients: dict = field(default_factory=dict)

    def path(self, template: str) -> str:
        """Fill `{story.channel}` placeholders with the ids of the world's messages."""
        for name, message_id in self.ids.items():
            template = template.replace("{" + name + "}", message_id)
        assert "{" not in template, template
        return template

    def client(self, caller):
        """One client per caller for the module: a new client loads the middleware again (slow)."""
        if caller not in self.clients:
            client = APIClient()
            if caller != "anon":
                client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[caller]}")
            self.clients[caller] = client
        client = self.clients[caller]
        client.cookies.clear()  # bearer only: no session or CSRF cookie carried from one test to the next
        return client


def _build_world() -> World:
    User = get_user_model()
    world = World()
    # No passwords: hashing them would cost half a second each, and the API takes bearer tokens.
    users = {role: User.objects.create_user(username=name)
             for role, name in USERNAMES.items() if role != "agent"}
    User.objects.create_user(username="nina")  # added to a story by the owner in a cell
    olga, carl, mia = users["owner"], users["chowner"], users["member"]
    stories = {}
    for key, slug in SLUGS.items():
        story = story_create(owner=olga, slug=slug, title=f"{PREFIX[key]}-TITLE",
                             premise=f"{PREFIX[key]}-PREMISE",
                             visibility="public" if key == "pub" else "private")
        for role in ("editor", "member", "chowner"):
            participant_add(story=story, user=users[role], role=Participant.Role.EDITOR)
        participant_add(story=story, user=users["viewer"], role=Participant.Role.VIEWER)
        stories[key] = story
    ada = agent_create(username="ada", capabilities=["narration"], stories=list(stories.values()))
    users["agent"] = ada

    def post(key, sender, channel, name, text, msg_type="text", **extra):
        access = access_channel(sender, SLUGS[key], CHANNELS[channel], for_write=True)
        data = {"msg_type": msg_type, "payload": {"text": text}, **extra}
        result = message_post(sender=sender, access=access, data=data)
        message_id = str(result.message.id)
        world.ids[name] = message_id
        world.last_seq[(key, channel)] = result.message.seq
        return message_id

    for key, story in stories.items():
        p = PREFIX[key]
        cabal = channel_create(story=story, creator=carl, name="cabal", kind="private", topic="CABAL-TOPIC")
        member_add(channel=cabal, user=mia, by=carl)
        root = post(key, olga, "general", f"{key}.general", f"{p}-GENERAL-ROOT")
        # A secret reply to a public root, and an inbox task in the same thread.
        post(key, carl, "cabal", f"{key}.cabal", f"{p}-SECRET-CABAL-REPLY", reply_to=root)
        post(key, olga, "inbox", f"{key}.inbox", f"{p}-INBOX-WORK", reply_to=root)
        post(key, olga, "room", f"{key}.room", f"{p}-ROOM-HELLO")
        # A secret root with a public reply: the thread of the public reply must not show the root.
        secret_root = post(key, carl, "cabal", f"{key}.cabal-root", f"{p}-SECRET-ROOT")
        post(key, mia, "general", f"{key}.public-reply", f"{p}-PUBLIC-REPLY", reply_to=secret_root)
        post(key, carl, "cabal", f"{key}.cabal-proposal", f"{p}-SECRET-PROPOSAL", msg_type="proposal")
        # The story's `main` document, with one change in its log.
        document_edit(doc=Document.objects.get(story=story, name="main"), author=olga,
                      body={"append": f"{p}-DOC-TEXT"})
        # One scene in the story's outline: `{pub.scene}`, `{priv.scene}`.
        world.ids[f"{key}.scene"] = str(scene_create(story=story, by=olga, data={"title": f"{p}-SCENE"}).pk)
        # One open suggestion on `main`: `{pub.suggestion}`.
        world.ids[f"{key}.suggestion"] = str(suggestion_create(
            doc=Document.objects.get(story=story, name="main"), author=olga,
            body={"append": " suggested", "note": f"{p}-SUGGESTION"}).pk)
        # One comment thread on `main`: `{pub.comment}`.
        world.ids[f"{key}.comment"] = str(thread_create(
            doc=Document.objects.get(story=story, name="main"), author=olga,
            body={"from": 0, "to": 5, "body": f"{p}-COMMENT"}).pk)
        # One story bible entry with a progression: `{pub.entry}` (its slug), `{pub.progression}`.
        entry = entry_create(story=story, by=olga, kind="character", name=f"{p}-BIBLE")
        world.ids[f"{key}.entry"] = entry.slug
        world.ids[f"{key}.progression"] = str(progression_add(entry=entry, by=olga, from_scene=2,
                                                              description=f"{p}-LATER").pk)
        # One named version of `main` (revision 1): `{pub.version}`.
        world.ids[f"{key}.version"] = str(version_create(doc=Document.objects.get(story=story, name="main"), by=olga,
                                                         name=f"{p}-VERSION", revision=1).pk)
        # One open stream with text: `{pub.stream}` eddie's in general, `{priv.stream}` carl's in cabal.
        opener, where = (users["editor"], "general") if key == "pub" else (carl, "cabal")
        stream, _ = stream_start(sender=opener, access=access_channel(opener, story.slug, where, for_write=True),
                                 data={"msg_type": "narration"})
        stream_append(user=opener, stream_id=stream.pk, text=f"{p}-STREAM")
        world.ids[f"{key}.stream"] = str(stream.pk)

    # Audience-restricted replies to the public story's root, in `general` (outsiders read it).
    pub_root = world.ids["pub.general"]
    for name, sender, audience in AUDIENCE_MESSAGES:
        post("pub", users[sender], "general", f"aud.{name}", f"AUD-{name.upper()}", reply_to=pub_root,
             audience=audience)

    # An invite link per story (the public one offers viewer, the private one editor), for the cases
    # that revoke and accept one: its id and raw token fill `{pub.invite}`, `{pub.invite-token}`.
    for key, story in stories.items():
        invite, raw = invite_create(story=story, by=olga, role=INVITE_ROLE[key])
        world.ids[f"{key}.invite"], world.ids[f"{key}.invite-token"] = str(invite.pk), raw

    world.tokens = {role: token_issue(user=user) for role, user in users.items()}
    return world


@pytest.fixture(scope="module")
def module_world(django_db_setup, django_db_blocker):
    """Built once, in one transaction that is rolled back when the module ends."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _build_world()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(monkeypatch):
    """The SSE view reaches the database through channels' `database_sync_to_async`, which calls
    `close_old_connections()` around each call; inside a test's transaction that would close the
    connection and lose the transaction. Django's test client switches the same clean-up off for
    the requests it makes (it disconnects it from request_started/finished); this does it for
    channels' call too. Nothing of the application's access logic is replaced."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda **kwargs: None)


@pytest.fixture
def world(module_world, db):
    """The module's world; `db` wraps each test in a savepoint that is rolled back after it, so
    what one cell writes (a post, a join, a new member) never reaches the next."""
    return module_world


def call(client, method, path, body=None):
    if method == "GET":
        return client.get(path)
    return getattr(client, method.lower())(path, body, format="json")


def sse_head(response, chunks: int) -> str:
    """The first chunks of a Server-Sent Events stream (it never ends: read a few, then close).
    The stream sends one chunk for its `subscribed` comment, then one per replayed message."""
    async def read():
        stream = response.streaming_content
        out = []
        try:
            for _ in range(chunks):
                out.append(await asyncio.wait_for(stream.__anext__(), 5))
        finally:
            await stream.aclose()
        return "".join(c.decode() if isinstance(c, bytes) else c for c in out)
    return async_to_sync(read)()


def is_sse(response) -> bool:
    return response.get("Content-Type", "").startswith("text/event-stream")


def body_text(response) -> str:
    if is_sse(response):
        return sse_head(response, 2)  # the `subscribed` comment and the first replayed message
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def body_json(response):
    return json.loads(body_text(response))


# --- 1. The matrix ----------------------------------------------------------------------------

def cells(default, **override):
    """Expected status per caller: anonymous is always 401."""
    out = {caller: default for caller in CALLERS}
    out["anon"] = 401
    out.update(override)
    return out


# Channel-level rules, written out per channel (not derived from the code under test).
READ = {  # GET channel, GET members, GET messages, POST ack
    ("pub", "general"): cells(200),
    ("priv", "general"): cells(200, outsider=404),
    ("pub", "cabal"): cells(404, member=200, chowner=200, owner=200),
    ("priv", "cabal"): cells(404, member=200, chowner=200, owner=200),
    ("pub", "inbox"): cells(403, outsider=404, owner=200, agent=200),
    ("priv", "inbox"): cells(403, outsider=404, owner=200, agent=200),
    ("pub", "room"): cells(200, outsider=404),
}
POST_MESSAGE = {
    ("pub", "general"): cells(201, outsider=403, viewer=403),
    ("priv", "general"): cells(201, outsider=404, viewer=403),
    ("pub", "cabal"): cells(404, member=201, chowner=201, owner=201),
    ("priv", "cabal"): cells(404, member=201, chowner=201, owner=201),
    ("pub", "inbox"): cells(201, outsider=404, viewer=403),
    ("priv", "inbox"): cells(201, outsider=404, viewer=403),
    ("pub", "room"): cells(201, outsider=404, viewer=403),
}
MANAGE = {  # PATCH channel (topic): the channel's owner or the story owner
    ("pub", "general"): cells(403, owner=200),
    ("priv", "general"): cells(403, outsider=404, owner=200),
    ("pub", "cabal"): cells(404, member=403, chowner=200, owner=200),
    ("priv", "cabal"): cells(404, member=403, chowner=200, owner=200),
    ("pub", "inbox"): cells(403, outsider=404, owner=200, agent=200),
    ("priv", "inbox"): cells(403, outsider=404, owner=200, agent=200),
    ("pub", "room"): cells(403, outsider=404, owner=200),
}
ADD_MEMBER = {  # POST members {"username": "eddie"}: managers only; public/inbox take no members (400)
    **{(s, "general"): {**MANAGE[(s, "general")], "owner": 400} for s in SLUGS},
    **{(s, "cabal"): {**MANAGE[(s, "cabal")], "chowner": 201, "owner": 201} for s in SLUGS},
    **{(s, "inbox"): {**MANAGE[(s, "inbox")], "owner": 400, "agent": 400} for s in SLUGS},
    ("pub", "room"): {**MANAGE[("pub", "room")], "owner": 200},  # eddie is already in the room
}
REMOVE_TARGET = {"general": "mia", "cabal": "mia", "inbox": "ada", "room": "mia"}
REMOVE_MEMBER = {  # DELETE members/{REMOVE_TARGET}: managers, or the member leaving
    ("pub", "general"): cells(403, member=404, owner=404),  # mia is no member of a public channel
    ("priv", "general"): cells(403, outsider=404, member=404, owner=404),
    ("pub", "cabal"): cells(404, member=204, chowner=204, owner=204),
    ("priv", "cabal"): cells(404, member=204, chowner=204, owner=204),
    ("pub", "inbox"): cells(403, outsider=404, owner=400, agent=400),  # an agent stays in its inbox
    ("priv", "inbox"): cells(403, outsider=404, owner=400, agent=400),
    ("pub", "room"): cells(403, outsider=404, member=204, owner=204),
}


def as_message_read(expect):
    """GET /api/messages/{id} and /thread: a message one may not read is not known of (404)."""
    return {caller: 404 if status == 403 else status for caller, status in expect.items()}


STORY_READ = {"pub": cells(200), "priv": cells(200, outsider=404)}
STORY_OWNER = {"pub": cells(403, owner=200), "priv": cells(403, outsider=404, owner=200)}
STORY_OWNER_ADD = {"pub": cells(403, owner=201), "priv": cells(403, outsider=404, owner=201)}
STORY_WRITE = {"pub": cells(201, outsider=403, viewer=403), "priv": cells(201, outsider=404, viewer=403)}
# People who write the story (its owner and human editors; never an agent) decide on suggestions.
HUMAN_WRITE = {"pub": cells(200, outsider=403, viewer=403, agent=403),
               "priv": cells(200, outsider=404, viewer=403, agent=403)}
STORY_JOIN = {"pub": cells(200, outsider=201), "priv": cells(200, outsider=404)}
# DELETE participants/mia: the story owner, or mia leaving.
STORY_REMOVE = {"pub": cells(403, member=204, owner=204), "priv": cells(403, outsider=404, member=204, owner=204)}
STORY_OWNER_REVOKE = {"pub": cells(403, owner=204), "priv": cells(403, outsider=404, owner=204)}
# POST /api/invites/{token}/accept: any signed-in human, whether or not they may read the story (the
# link is the key); agents never. 201 for a newcomer, 200 for someone already in.
INVITE_ROLE = {"pub": "viewer", "priv": "editor"}
ACCEPT_INVITE = {"pub": cells(200, outsider=201, agent=403), "priv": cells(200, outsider=201, agent=403)}
# The role after accepting: a link never lowers one (the owner stays owner, editors stay editors).
ACCEPTED_ROLE = {
    "pub": {"outsider": "viewer", "viewer": "viewer", "editor": "editor", "member": "editor",
            "chowner": "editor", "owner": "owner"},
    "priv": {"outsider": "editor", "viewer": "editor", "editor": "editor", "member": "editor",
             "chowner": "editor", "owner": "owner"},
}


@dataclass(frozen=True)
class Case:
    label: str
    method: str
    path: str  # may hold {message ids}
    expect: dict
    body: dict | None = None
    check: object = None  # check(body, caller, world) on success


def _texts(page):
    return [m["payload"].get("text") for m in page["results"]]


# The text of each channel's first message (seq 1), after the story's prefix.
FIRST_MESSAGE = {"general": "GENERAL-ROOT", "cabal": "SECRET-CABAL-REPLY", "inbox": "INBOX-WORK",
                 "room": "ROOM-HELLO"}


def _check_message_page(story, channel):
    marker = FIRST_MESSAGE[channel]

    def check(body, caller, world):
        assert f"{PREFIX[story]}-{marker}" in _texts(body)
        assert body["last_seq"] == world.last_seq[(story, channel)]
    return check


def _check_sse(story, channel):
    marker = FIRST_MESSAGE[channel]

    def check(text, caller, world):
        assert text.startswith("retry: ")
        assert f": subscribed channel:{SLUGS[story]}/{CHANNELS[channel]}" in text
        event = text.split("\n\n")[1].split("\n")
        assert event[:2] == ["id: 1", "event: message"]
        assert json.loads(event[2].removeprefix("data: "))["payload"]["text"] == f"{PREFIX[story]}-{marker}"
    return check


def _check_post(story, channel):
    def check(body, caller, world):
        assert body["seq"] == world.last_seq[(story, channel)] + 1
        assert (body["story"], body["channel"]) == (SLUGS[story], CHANNELS[channel])
        assert body["sender"]["username"] == USERNAMES[caller]
    return check


def _check_members(story, channel):
    expected = {"general": set(), "cabal": {"carl", "mia"}, "inbox": {"ada"},
                "room": {"olga", "eddie", "mia", "carl", "vera", "ada"}}[channel]

    def check(body, caller, world):
        assert {m["username"] for m in body["results"]} == expected
    return check


def _check_join(body, caller, world):
    role = {"outsider": "editor", "viewer": "viewer", "owner": "owner"}.get(caller, "editor")
    assert (body["username"], body["role"]) == (USERNAMES[caller], role)


def _check_invites(story):
    def check(body, caller, world):
        ids = [i["id"] for i in body["results"]]
        assert ids == [int(world.ids[f"{story}.invite"])]
        assert world.ids[f"{story}.invite-token"] not in json.dumps(body)
    return check


def _check_accept(story):
    def check(body, caller, world):
        assert (body["story"], body["username"], body["role"]) == \
            (SLUGS[story], USERNAMES[caller], ACCEPTED_ROLE[story][caller])
    return check


def _check_story(story):
    def check(body, caller, world):
        assert (body["slug"], body["title"]) == (SLUGS[story], f"{PREFIX[story]}-TITLE")
    return check


def _check_channel_list(story):
    def check(body, caller, world):
        names = {c["name"] for c in body["results"]}
        expected = {"general"}
        if caller != "outsider":
            expected.add("room")
        if caller in ("member", "chowner", "owner"):
            expected.add("cabal")
        if caller in ("agent", "owner"):
            expected.add("inbox.ada")
        assert names == expected
    return check


def _check_export(story):
    def check(body, caller, world):
        assert body["story"]["slug"] == SLUGS[story]
        texts = {m["payload"]["text"] for m in body["messages"]}
        assert {f"{PREFIX[story]}-SECRET-CABAL-REPLY", f"{PREFIX[story]}-INBOX-WORK"} <= texts
    return check


def _search_texts(page):
    return [r["message"]["payload"].get("text") for r in page["results"]]


def _check_search(story, channel):
    """GET /api/search: the channel's first message is found; every result is in the story (and channel)."""
    marker = f"{PREFIX[story]}-{FIRST_MESSAGE[channel]}"

    def check(body, caller, world):
        assert marker in _search_texts(body)
        assert {(r["story"], r["channel"]) for r in body["results"]} == {(SLUGS[story], CHANNELS[channel])}
    return check


def _check_message(name):
    def check(body, caller, world):
        assert body["id"] == world.ids[name]
    return check


def _check_thread(name):
    def check(body, caller, world):
        ids = [m["id"] for m in body["results"]]
        assert world.ids[name] in ids
    return check


def build_cases() -> list[Case]:
    cases = [
        Case("GET /api/stories", "GET", "/api/stories", cells(200),
             check=lambda b, c, w: {"open-tale"} <= {s["slug"] for s in b["results"]}),
        Case("POST /api/stories", "POST", "/api/stories", cells(201),
             body={"slug": "fresh-tale", "title": "Fresh"},
             check=lambda b, c, w: (b["slug"], b["owner"]) == ("fresh-tale", USERNAMES[c])),
        # Without ?story=, only stories the caller takes part in: nothing for the outsider.
        Case("GET /api/inbox", "GET", "/api/inbox", cells(200),
             check=lambda b, c, w: any(r["story"] == "open-tale" for r in b["results"]) is (c != "outsider")),
        Case("GET /api/activity", "GET", "/api/activity", cells(200),
             check=lambda b, c, w: ("OPEN-GENERAL-ROOT" in _texts(b)) is (c != "outsider")),
        # Search without ?story= covers the stories the caller takes part in, as the activity does.
        Case("GET /api/search", "GET", "/api/search?q=open&limit=100", cells(200),
             check=lambda b, c, w: ("OPEN-GENERAL-ROOT" in _search_texts(b)) is (c != "outsider")),
        # Notifications: the caller's own, whoever they are (their excerpts are probed for leaks below).
        Case("GET /api/notifications", "GET", "/api/notifications", cells(200),
             check=lambda b, c, w: set(b) == {"results", "unread", "next"}),
        Case("POST /api/notifications/read", "POST", "/api/notifications/read", cells(200), body={"all": True},
             check=lambda b, c, w: b == {"unread": 0}),
        Case("PUT /api/agents/me/status", "PUT", "/api/agents/me/status", cells(403, agent=200),
             body={"status": "working", "task": "drafting", "progress": 0.5},
             check=lambda b, c, w: (b["username"], b["status"], b["progress"]) == ("ada", "working", 0.5)),
        # Webhooks: agents only, each its own (the world's agent has none yet: 404 until it PUTs one;
        # a public IP literal, so registering needs no DNS; tests/webhooks covers the rest).
        Case("GET /api/agents/me/webhook", "GET", "/api/agents/me/webhook", cells(403, agent=404)),
        Case("PUT /api/agents/me/webhook", "PUT", "/api/agents/me/webhook", cells(403, agent=201),
             body={"url": "https://93.184.216.34/hook"},
             check=lambda b, c, w: b["secret"].startswith("whsec_") and b["status"] == "active"),
        Case("DELETE /api/agents/me/webhook", "DELETE", "/api/agents/me/webhook", cells(403, agent=204)),
        Case("POST /api/agents/me/webhook/rotate", "POST", "/api/agents/me/webhook/rotate", cells(403, agent=404)),
        Case("GET /api/agents/me/webhook/deliveries", "GET", "/api/agents/me/webhook/deliveries",
             cells(403, agent=404)),
    ]
    for s, slug in SLUGS.items():
        base = f"/api/stories/{slug}"
        cases += [
            Case(f"GET /api/activity?story={slug}", "GET", f"/api/activity?story={slug}", STORY_READ[s],
                 check=lambda b, c, w, s=s: f"{PREFIX[s]}-GENERAL-ROOT" in _texts(b)),
            Case(f"GET /api/search?story={slug}", "GET", f"/api/search?q={PREFIX[s].lower()}&story={slug}&limit=100",
                 STORY_READ[s], check=lambda b, c, w, s=s: f"{PREFIX[s]}-GENERAL-ROOT" in _search_texts(b)),
            Case(f"GET {base}", "GET", base, STORY_READ[s], check=_check_story(s)),
            Case(f"PATCH {base}", "PATCH", base, STORY_OWNER[s], body={"title": "Renamed"},
                 check=lambda b, c, w: b["title"] == "Renamed"),
            Case(f"POST {base}/join", "POST", f"{base}/join", STORY_JOIN[s], check=_check_join),
            Case(f"GET {base}/participants", "GET", f"{base}/participants", STORY_READ[s],
                 check=lambda b, c, w: {"olga", "ada", "vera"} <= {p["username"] for p in b["results"]}),
            Case(f"POST {base}/participants", "POST", f"{base}/participants", STORY_OWNER_ADD[s],
                 body={"username": "nina", "role": "viewer"},
                 check=lambda b, c, w: (b["username"], b["role"]) == ("nina", "viewer")),
            Case(f"DELETE {base}/participants/mia", "DELETE", f"{base}/participants/mia", STORY_REMOVE[s]),
            Case(f"GET {base}/export", "GET", f"{base}/export", STORY_OWNER[s], check=_check_export(s)),
            Case(f"GET {base}/invites", "GET", f"{base}/invites", STORY_OWNER[s], check=_check_invites(s)),
            Case(f"POST {base}/invites", "POST", f"{base}/invites", STORY_OWNER_ADD[s],
                 body={"role": "viewer", "expires_in_hours": 2},
                 check=lambda b, c, w: (b["role"], b["state"], b["url"])
                 == ("viewer", "live", f"/invite/{b['token']}/")),
            Case(f"DELETE {base}/invites/<invite>", "DELETE", f"{base}/invites/{{{s}.invite}}",
                 STORY_OWNER_REVOKE[s]),
            Case(f"POST /api/invites/<{s} token>/accept", "POST", f"/api/invites/{{{s}.invite-token}}/accept",
                 ACCEPT_INVITE[s], check=_check_accept(s)),
            # Presence is readable exactly where the `room` channel is (an outsider gets its 404).
            Case(f"GET {base}/presence", "GET", f"{base}/presence", READ[("pub", "room")],
                 check=lambda b, c, w: [a["username"] for a in b["agents"]] == ["ada"]),
            Case(f"POST {base}/route", "POST", f"{base}/route", STORY_WRITE[s],
                 body={"msg_type": "narration", "payload": {"text": "routed"}},
                 check=lambda b, c, w: b["routed_to"] == ["ada"]),
            Case(f"GET {base}/channels", "GET", f"{base}/channels", STORY_READ[s],
                 check=_check_channel_list(s)),
            Case(f"GET {base}/documents", "GET", f"{base}/documents", STORY_READ[s],
                 check=lambda b, c, w: [d["name"] for d in b["results"]] == ["main"]),
            Case(f"POST {base}/documents", "POST", f"{base}/documents", STORY_WRITE[s],
                 body={"name": "draft", "text": "a draft"},
                 check=lambda b, c, w: (b["name"], b["text"], b["created_by"])
                 == ("draft", "a draft", USERNAMES[c])),
            Case(f"GET {base}/documents/main", "GET", f"{base}/documents/main", STORY_READ[s],
                 check=lambda b, c, w, s=s: (b["text"], b["revision"]) == (f"{PREFIX[s]}-DOC-TEXT", 1)),
            Case(f"GET {base}/documents/main/export", "GET", f"{base}/documents/main/export?format=md", STORY_READ[s]),
            Case(f"GET {base}/export/book", "GET", f"{base}/export/book?format=txt", STORY_READ[s]),
            Case(f"GET {base}/documents/main/ops", "GET", f"{base}/documents/main/ops?after=0",
                 STORY_READ[s],
                 check=lambda b, c, w: ([ch["author"] for ch in b["results"]], b["revision"])
                 == (["olga"], 1)),
            Case(f"POST {base}/documents/main/ops", "POST", f"{base}/documents/main/ops",
                 {**STORY_WRITE[s], **{k: 200 for k, v in STORY_WRITE[s].items() if v == 201}},
                 body={"append": " More."}, check=lambda b, c, w: b["revision"] == 2),
            # Document versions (versions/): readers list and compare, editors (the agent included)
            # name, rename, delete and restore.
            Case(f"GET {base}/documents/main/versions", "GET", f"{base}/documents/main/versions", STORY_READ[s],
                 check=lambda b, c, w, s=s: [(v["name"], v["revision"]) for v in b["results"]]
                 == [(f"{PREFIX[s]}-VERSION", 1)]),
            Case(f"POST {base}/documents/main/versions", "POST", f"{base}/documents/main/versions", STORY_WRITE[s],
                 body={"name": "Empty page", "revision": 0},
                 check=lambda b, c, w: (b["name"], b["revision"], b["created_by"]) == ("Empty page", 0, USERNAMES[c])),
            Case(f"GET {base}/documents/main/versions/<version>", "GET",
                 f"{base}/documents/main/versions/{{{s}.version}}", STORY_READ[s],
                 check=lambda b, c, w, s=s: b["name"] == f"{PREFIX[s]}-VERSION"),
            Case(f"PATCH {base}/documents/main/versions/<version>", "PATCH",
                 f"{base}/documents/main/versions/{{{s}.version}}",
                 {**STORY_WRITE[s], **{k: 200 for k, v in STORY_WRITE[s].items() if v == 201}},
                 body={"note": "Changed."}, check=lambda b, c, w: (b["note"], b["revision"]) == ("Changed.", 1)),
            Case(f"DELETE {base}/documents/main/versions/<version>", "DELETE",
                 f"{base}/documents/main/versions/{{{s}.version}}",
                 {**STORY_WRITE[s], **{k: 204 for k, v in STORY_WRITE[s].items() if v == 201}}),
            Case(f"GET {base}/documents/main/compare", "GET", f"{base}/documents/main/compare?from=0", STORY_READ[s],
                 check=lambda b, c, w, s=s: b["diff"] == [{"op": "insert", "text": f"{PREFIX[s]}-DOC-TEXT"}]),
            Case(f"POST {base}/documents/main/restore", "POST", f"{base}/documents/main/restore",
                 {**STORY_WRITE[s], **{k: 200 for k, v in STORY_WRITE[s].items() if v == 201}},
                 body={"revision": 0}, check=lambda b, c, w: (b["revision"], b["changed"]) == (2, True)),
            # Suggestions (suggestions/): readers read them, writers (agents too) suggest, people decide.
            Case(f"GET {base}/documents/main/suggestions", "GET", f"{base}/documents/main/suggestions",
                 STORY_READ[s], check=lambda b, c, w, s=s: [x["note"] for x in b["results"]] == [f"{PREFIX[s]}-SUGGESTION"]),
            Case(f"POST {base}/documents/main/suggestions", "POST", f"{base}/documents/main/suggestions",
                 STORY_WRITE[s], body={"append": " more"}, check=lambda b, c, w: b["author"] == USERNAMES[c]),
            Case(f"GET {base}/documents/main/suggestions/<id>", "GET",
                 f"{base}/documents/main/suggestions/{{{s}.suggestion}}", STORY_READ[s],
                 check=lambda b, c, w: b["status"] == "open"),
            Case(f"POST {base}/documents/main/suggestions/<id>/accept", "POST",
                 f"{base}/documents/main/suggestions/{{{s}.suggestion}}/accept", HUMAN_WRITE[s], body={},
                 check=lambda b, c, w: (b["status"], b["decided_by"]) == ("accepted", USERNAMES[c])),
            Case(f"POST {base}/documents/main/suggestions/<id>/reject", "POST",
                 f"{base}/documents/main/suggestions/{{{s}.suggestion}}/reject", HUMAN_WRITE[s], body={},
                 check=lambda b, c, w: b["status"] == "rejected"),
            Case(f"POST {base}/documents/main/merge", "POST", f"{base}/documents/main/merge",
                 {**STORY_WRITE[s], **{k: 400 for k, v in STORY_WRITE[s].items() if v == 201}}, body={}),
            Case(f"POST {base}/documents/main/suggestions/decide", "POST",
                 f"{base}/documents/main/suggestions/decide", HUMAN_WRITE[s], body={"decision": "reject"},
                 check=lambda b, c, w, s=s: len(b["decided"]) == 1),
            # Comments (comments/): readers read them, writers (agents too) comment, reply and resolve.
            Case(f"GET {base}/documents/main/comments", "GET", f"{base}/documents/main/comments", STORY_READ[s],
                 check=lambda b, c, w, s=s: [x["first_comment"]["body"] for x in b["results"]]
                 == [f"{PREFIX[s]}-COMMENT"]),
            Case(f"POST {base}/documents/main/comments", "POST", f"{base}/documents/main/comments",
                 STORY_WRITE[s], body={"from": 0, "to": 5, "body": "a note"},
                 check=lambda b, c, w: b["created_by"] == USERNAMES[c]),
            Case(f"GET {base}/documents/main/comments/<id>", "GET",
                 f"{base}/documents/main/comments/{{{s}.comment}}", STORY_READ[s],
                 check=lambda b, c, w, s=s: [x["body"] for x in b["comments"]] == [f"{PREFIX[s]}-COMMENT"]),
            Case(f"POST {base}/documents/main/comments/<id>/replies", "POST",
                 f"{base}/documents/main/comments/{{{s}.comment}}/replies", STORY_WRITE[s], body={"body": "a reply"},
                 check=lambda b, c, w: b["author"] == USERNAMES[c]),
            Case(f"POST {base}/documents/main/comments/<id>/resolve", "POST",
                 f"{base}/documents/main/comments/{{{s}.comment}}/resolve",
                 {**STORY_WRITE[s], **{k: 200 for k, v in STORY_WRITE[s].items() if v == 201}},
                 body={"resolved": True}, check=lambda b, c, w: (b["resolved"], b["resolved_by"]) == (True, USERNAMES[c])),
            # The writers' room (writers/): readers see it; the owner adds and removes it; human
            # editors pause it (this story has no crew: allowed callers get 409 `conflict`).
            Case(f"GET {base}/crew", "GET", f"{base}/crew", STORY_READ[s],
                 check=lambda b, c, w: b["enabled"] is False and b["can_manage"] is (c == "owner")),
            Case(f"POST {base}/crew", "POST", f"{base}/crew", STORY_OWNER_ADD[s], body={"roles": []},
                 check=lambda b, c, w: b["roles"] == ["showrunner", "plot-planner", "narrator"]),
            Case(f"PATCH {base}/crew", "PATCH", f"{base}/crew",
                 {**STORY_OWNER[s], **{k: 409 for k in ("editor", "member", "chowner", "owner")}},
                 body={"paused": True}),
            Case(f"DELETE {base}/crew", "DELETE", f"{base}/crew", {**STORY_OWNER[s], "owner": 204}),
            # The outline (outline/): readers read it, editors (the agent included) change it.
            Case(f"GET {base}/outline", "GET", f"{base}/outline", STORY_READ[s],
                 check=lambda b, c, w, s=s: [x["title"] for x in b["results"]] == [f"{PREFIX[s]}-SCENE"]),
            Case(f"POST {base}/outline", "POST", f"{base}/outline", STORY_WRITE[s], body={"title": "A scene"},
                 check=lambda b, c, w: (b["position"], b["created_by"]) == (2, USERNAMES[c])),
            Case(f"GET {base}/outline/<scene>", "GET", f"{base}/outline/{{{s}.scene}}", STORY_READ[s],
                 check=lambda b, c, w, s=s: b["title"] == f"{PREFIX[s]}-SCENE"),
            Case(f"PATCH {base}/outline/<scene>", "PATCH", f"{base}/outline/{{{s}.scene}}",
                 {**STORY_WRITE[s], **{k: 200 for k, v in STORY_WRITE[s].items() if v == 201}},
                 body={"status": "drafting"}, check=lambda b, c, w: (b["status"], b["version"]) == ("drafting", 2)),
            Case(f"POST {base}/outline/<scene>/move", "POST", f"{base}/outline/{{{s}.scene}}/move",
                 {**STORY_WRITE[s], **{k: 200 for k, v in STORY_WRITE[s].items() if v == 201}},
                 body={"position": 1}, check=lambda b, c, w: b["position"] == 1),
            Case(f"DELETE {base}/outline/<scene>", "DELETE", f"{base}/outline/{{{s}.scene}}",
                 {**STORY_WRITE[s], **{k: 204 for k, v in STORY_WRITE[s].items() if v == 201}}),
            # The story bible (bible/): readers read it, editors (the agent included) change it.
            Case(f"GET {base}/bible", "GET", f"{base}/bible?scene=2", STORY_READ[s],
                 check=lambda b, c, w, s=s: [(x["name"], x["description"]) for x in b["results"]]
                 == [(f"{PREFIX[s]}-BIBLE", f"{PREFIX[s]}-LATER")]),
            Case(f"POST {base}/bible", "POST", f"{base}/bible", STORY_WRITE[s], body={"kind": "lore", "name": "Rule"},
                 check=lambda b, c, w: (b["slug"], b["created_by"]) == ("rule", USERNAMES[c])),
            Case(f"GET {base}/bible/<entry>", "GET", f"{base}/bible/{{{s}.entry}}", STORY_READ[s],
                 check=lambda b, c, w, s=s: b["name"] == f"{PREFIX[s]}-BIBLE"),
            Case(f"PATCH {base}/bible/<entry>", "PATCH", f"{base}/bible/{{{s}.entry}}",
                 {**STORY_WRITE[s], **{k: 200 for k, v in STORY_WRITE[s].items() if v == 201}},
                 body={"description": "Changed.", "version": 2},
                 check=lambda b, c, w: (b["description"], b["version"]) == ("Changed.", 3)),
            Case(f"DELETE {base}/bible/<entry>", "DELETE", f"{base}/bible/{{{s}.entry}}",
                 {**STORY_WRITE[s], **{k: 204 for k, v in STORY_WRITE[s].items() if v == 201}}),
            Case(f"POST {base}/bible/<entry>/progressions", "POST", f"{base}/bible/{{{s}.entry}}/progressions",
                 STORY_WRITE[s], body={"from_scene": 5, "fields": {"age": "40"}},
                 check=lambda b, c, w: [p["from_scene"] for p in b["progressions"]] == [2, 5]),
            Case(f"DELETE {base}/bible/<entry>/progressions/<id>", "DELETE",
                 f"{base}/bible/{{{s}.entry}}/progressions/{{{s}.progression}}",
                 {**STORY_WRITE[s], **{k: 204 for k, v in STORY_WRITE[s].items() if v == 201}}),
            Case(f"POST {base}/channels", "POST", f"{base}/channels", STORY_WRITE[s],
                 body={"name": "fresh", "kind": "public"}, check=lambda b, c, w: b["name"] == "fresh"),
        ]
        for ch, name in CHANNELS.items():
            if (s, ch) == ("priv", "room"):
                continue  # the same rules as the public story's room (an outsider gets 404 in both)
            key = (s, ch)
            cbase = f"{base}/channels/{name}"
            cases += [
                Case(f"GET {cbase}", "GET", cbase, READ[key],
                     check=lambda b, c, w, name=name: b["name"] == name),
                Case(f"PATCH {cbase}", "PATCH", cbase, MANAGE[key], body={"topic": "New topic"},
                     check=lambda b, c, w: b["topic"] == "New topic"),
                Case(f"GET {cbase}/members", "GET", f"{cbase}/members", READ[key],
                     check=_check_members(s, ch)),
                Case(f"POST {cbase}/members", "POST", f"{cbase}/members", ADD_MEMBER[key],
                     body={"username": "eddie"},
                     check=lambda b, c, w: b["username"] == "eddie"),
                Case(f"DELETE {cbase}/members/{REMOVE_TARGET[ch]}", "DELETE",
                     f"{cbase}/members/{REMOVE_TARGET[ch]}", REMOVE_MEMBER[key]),
                Case(f"GET {cbase}/messages", "GET", f"{cbase}/messages?after=0", READ[key],
                     check=_check_message_page(s, ch)),
                Case(f"POST {cbase}/messages", "POST", f"{cbase}/messages", POST_MESSAGE[key],
                     body={"msg_type": "text", "payload": {"text": "hello"}}, check=_check_post(s, ch)),
                Case(f"POST {cbase}/messages/batch", "POST", f"{cbase}/messages/batch",
                     {who: 200 if status == 201 else status for who, status in POST_MESSAGE[key].items()},
                     body={"messages": [{"msg_type": "text", "payload": {"text": "hello in a batch"}}]},
                     check=lambda b, c, w: [item["status"] for item in b["results"]] == [201]),
                Case(f"GET {cbase}/events (SSE)", "GET", f"{cbase}/events?after=0", READ[key],
                     check=_check_sse(s, ch)),
                Case(f"POST {cbase}/ack", "POST", f"{cbase}/ack", READ[key], body={"seq": 1},
                     check=lambda b, c, w: b["read_seq"] == 1),
                Case(f"GET /api/search?story={slug}&channel={name}", "GET",
                     f"/api/search?q={PREFIX[s].lower()}&story={slug}&channel={name}&limit=100", READ[key],
                     check=_check_search(s, ch)),
                # Streams (streaming/): readers list the open ones, posters open one.
                Case(f"GET {cbase}/streams", "GET", f"{cbase}/streams", READ[key],
                     check=lambda b, c, w, ch=ch, s=s: [x["text"] for x in b["results"]]
                     == ([f"{PREFIX[s]}-STREAM"] if STREAM_CHANNEL[s] == ch else [])),
                Case(f"POST {cbase}/streams", "POST", f"{cbase}/streams", POST_MESSAGE[key],
                     body={"msg_type": "narration"},
                     check=lambda b, c, w: (b["status"], b["sender"]["username"]) == ("open", USERNAMES[c])),
            ]
            message = f"{s}.{ch}"
            cases += [
                Case(f"GET /api/messages/<{message}>", "GET", f"/api/messages/{{{message}}}",
                     as_message_read(READ[key]), check=_check_message(message)),
                Case(f"GET /api/messages/<{message}>/thread", "GET", f"/api/messages/{{{message}}}/thread",
                     as_message_read(READ[key]), check=_check_thread(message)),
            ]
        # The world's open stream: only its opener writes it; channel managers (and the story owner)
        # cancel it; who may not read its channel does not know it (404).
        stream = f"/api/streams/{{{s}.stream}}"
        for action, ok in (("append", 200), ("complete", 201), ("cancel", 200)):
            expect = STREAM_WRITE[s](ok, cancel=action == "cancel")
            body = {"text": " more"} if action == "append" else None
            cases.append(Case(f"POST /api/streams/<{s}.stream>/{action}", "POST", f"{stream}/{action}", expect,
                              body=body, check=_check_stream(s, action)))
    return cases


STREAM_CHANNEL = {"pub": "general", "priv": "cabal"}


def _stream_write_pub(ok, cancel=False):  # eddie's, in the public story's general
    return cells(403, editor=ok, **({"owner": ok} if cancel else {}))


def _stream_write_priv(ok, cancel=False):  # carl's, in the private story's cabal (mia a member)
    return cells(404, member=403, chowner=ok, owner=ok if cancel else 403)


STREAM_WRITE = {"pub": _stream_write_pub, "priv": _stream_write_priv}


def _check_stream(story, action):
    def check(body, caller, world):
        sid = world.ids[f"{story}.stream"]
        if action == "append":
            assert body == {"id": sid, "length": len(f"{PREFIX[story]}-STREAM more")}
        elif action == "complete":
            assert (body["id"], body["payload"]) == (sid, {"text": f"{PREFIX[story]}-STREAM"})
        else:
            assert body == {"id": sid, "status": "cancelled"}
    return check


CASES = build_cases()
MATRIX = [pytest.param(case, caller, id=f"{case.label} | {caller} -> {case.expect[caller]}")
          for case in CASES for caller in CALLERS]


def test_every_api_route_is_in_the_matrix():
    """A new endpoint must join the matrix: every /api/ route (but schema and docs) has a case."""
    from mythline_site.urls import api_urls

    covered = {case.path.split("?")[0] for case in CASES}
    missing = []
    for pattern in api_urls:
        route = str(pattern.pattern)
        if route in ("api/schema", "api/docs", "api/asyncapi.json"):
            continue
        concrete = "/" + (route.replace("<str:story>", "open-tale").replace("<str:channel>", "general")
                          .replace("<str:username>", "mia").replace("<str:message_id>", "{pub.general}")
                          .replace("<str:doc>", "main").replace("<int:invite>", "{pub.invite}")
                          .replace("<str:token>", "{pub.invite-token}").replace("<int:scene>", "{pub.scene}")
                          .replace("<int:suggestion>", "{pub.suggestion}")
                          .replace("<int:thread>", "{pub.comment}")
                          .replace("<str:entry>", "{pub.entry}").replace("<int:progression>", "{pub.progression}")
                          .replace("<int:version>", "{pub.version}")
                          .replace("<str:stream_id>", "{pub.stream}"))
        if concrete not in covered:
            missing.append(route)
    assert missing == []


@pytest.mark.parametrize(("case", "caller"), MATRIX)
def test_access(world, case, caller):
    expected = case.expect[caller]
    response = call(world.client(caller), case.method, world.path(case.path), case.body)
    assert response.status_code == expected, body_text(response)[:500]
    if expected >= 400:
        assert error_code(response) == ERROR_CODES[expected]
    elif is_sse(response):
        case.check(body_text(response), caller, world)
    elif case.check is not None:
        assert case.check(body_json(response), caller, world) in (None, True)


# --- 2. Private channels and private stories never leak ----------------------------------------

# What each caller must never see. Texts of the private story all start with HUSH (title, premise,
# messages); its slug is hush-tale. The private channel is `cabal` (topic CABAL-TOPIC, texts
# *-SECRET-*); inbox texts are *-INBOX-WORK.
SECRET_CHANNEL = ("cabal", "CABAL-TOPIC", "SECRET")
INBOX = ("INBOX-WORK",)
PRIVATE_STORY = ("hush-tale", "HUSH")
FORBIDDEN = {
    "outsider": SECRET_CHANNEL + INBOX + PRIVATE_STORY,
    "viewer": SECRET_CHANNEL + INBOX,
    "editor": SECRET_CHANNEL + INBOX,
    "agent": SECRET_CHANNEL,
}
# What each caller must see somewhere (so the probe is not blind: the markers are really there).
SEEN = {
    "outsider": ("OPEN-GENERAL-ROOT", "OPEN-PUBLIC-REPLY", "open-tale", "OPEN-DOC-TEXT"),
    "viewer": ("HUSH-GENERAL-ROOT", "HUSH-TITLE", "hush-tale", "OPEN-ROOM-HELLO", "HUSH-DOC-TEXT"),
    "editor": ("HUSH-GENERAL-ROOT", "HUSH-PUBLIC-REPLY"),
    "agent": ("OPEN-INBOX-WORK", "HUSH-INBOX-WORK"),
    "owner": ("OPEN-SECRET-CABAL-REPLY", "HUSH-SECRET-ROOT", "cabal", "CABAL-TOPIC", "OPEN-INBOX-WORK",
              "HUSH-INBOX-WORK"),
}
PROBED_MESSAGES = [f"{s}.{name}" for s in SLUGS
                   for name in ("general", "cabal", "inbox", "room", "cabal-root", "public-reply")]
# Threads that mix channels: the general root (replies in cabal and in the inbox), an inbox task (its
# root is public, a sibling reply is secret) and a public reply to a secret root.
PROBED_THREADS = [f"{s}.{name}" for s in SLUGS for name in ("general", "inbox", "public-reply")]


def probe_requests(world):
    """Every read path (and route) a caller could use to learn of something."""
    reqs = [("GET", "/api/stories", None), ("GET", "/api/inbox", None), ("GET", "/api/activity", None),
            ("GET", "/api/activity?limit=4", None), ("GET", "/api/notifications", None)]
    reqs += [("GET", f"/api/search?q={q}&limit=100", None) for q in ("open", "hush", "secret", "inbox", "cabal")]
    for slug in SLUGS.values():
        base = f"/api/stories/{slug}"
        reqs += [("GET", base, None), ("GET", f"{base}/participants", None),
                 ("GET", f"{base}/presence", None), ("GET", f"{base}/channels", None),
                 ("GET", f"{base}/export", None), ("GET", f"/api/activity?story={slug}", None),
                 ("GET", f"/api/search?q=secret&story={slug}&limit=100", None),
                 ("GET", f"/api/search?q=inbox&story={slug}&limit=100", None),
                 ("GET", f"{base}/documents", None), ("GET", f"{base}/documents/main", None),
                 ("GET", f"{base}/documents/main?revision=1", None),
                 ("GET", f"{base}/documents/main/ops", None), ("GET", f"{base}/outline", None),
                 ("GET", f"{base}/documents/main/versions", None), ("GET", f"{base}/documents/main/compare?from=0", None),
                 ("POST", f"{base}/route", {"msg_type": "narration", "payload": {"text": "probe"}})]
        for name in CHANNELS.values():
            cbase = f"{base}/channels/{name}"
            # `messages` before `events`: the SSE replay is read for as many messages as REST showed.
            reqs += [("GET", cbase, None), ("GET", f"{cbase}/members", None),
                     ("GET", f"{cbase}/messages?after=0", None), ("GET", f"{cbase}/events?after=0", None)]
    reqs += [("GET", f"/api/messages/{world.ids[name]}", None) for name in PROBED_MESSAGES]
    reqs += [("GET", f"/api/messages/{world.ids[name]}/thread", None) for name in PROBED_THREADS]
    return reqs


def _follow_activity(client, path, first_body):
    """All the pages of an activity read (small pages must not leak either)."""
    texts, body = [], first_body
    for _ in range(100):
        if not body.get("results"):
            break
        sep = "&" if "?" in path else "?"
        response = client.get(f"{path}{sep}after={body['next_after']}")
        assert response.status_code == 200
        texts.append(body_text(response))
        body = response.json()
    return texts


@pytest.mark.parametrize("caller", ["outsider", "viewer", "editor", "agent", "owner"])
def test_private_things_never_leak(world, caller):
    client = world.client(caller)
    seen, rest_count = [], {}
    for method, path, body in probe_requests(world):
        response = call(client, method, path, body)
        assert response.status_code < 500, (path, body_text(response)[:300])
        if is_sse(response):
            # The whole replay: the `subscribed` chunk and one per message REST showed.
            count = rest_count[path.replace("/events?", "/messages?")]
            text = sse_head(response, 1 + count)
            assert text.count("event: message") == count
        else:
            text = body_text(response)
        if path.endswith("/messages?after=0"):
            rest_count[path] = len(json.loads(text).get("results", []))
        pages = [text]
        if path.startswith("/api/activity") and response.status_code == 200:
            pages += _follow_activity(client, path.split("&after=")[0], json.loads(text))
        for page in pages:
            seen.append(page)
            for marker in FORBIDDEN.get(caller, ()):
                if marker in path:  # an error may name what the caller typed; that is no leak
                    continue
                assert marker not in page, f"{caller} sees {marker!r} in {method} {path}: {page[:400]}"
    everything = "\n".join(seen)
    for marker in SEEN[caller]:
        assert marker in everything, f"{caller} should see {marker!r} somewhere"


@pytest.mark.parametrize("caller", ["outsider", "viewer", "editor", "agent"])
def test_private_story_and_channel_absent_from_lists(world, caller):
    """The list endpoints answer 200 and simply leave out what the caller may not know of."""
    client = world.client(caller)
    slugs = {s["slug"] for s in client.get("/api/stories").json()["results"]}
    assert ("hush-tale" in slugs) is (caller != "outsider")
    assert "open-tale" in slugs
    channels = {c["name"] for c in client.get("/api/stories/open-tale/channels").json()["results"]}
    assert "cabal" not in channels
    rows = client.get("/api/inbox").json()["results"]
    assert all(r["channel"] != "cabal" for r in rows)
    if caller == "outsider":  # only stories the caller takes part in
        assert rows == []
        assert client.get("/api/activity").json()["results"] == []
    else:
        listed = {(r["story"], r["channel"]) for r in rows}
        assert listed >= {("open-tale", "general"), ("hush-tale", "general")}
    assert ("inbox.ada" in {r["channel"] for r in rows}) is (caller == "agent")


def test_thread_of_public_reply_hides_secret_root(world):
    """The root of the thread is in a private channel: an outsider sees only the public reply."""
    for caller, expected in (("editor", ["OPEN-PUBLIC-REPLY"]), ("outsider", ["OPEN-PUBLIC-REPLY"]),
                             ("member", ["OPEN-SECRET-ROOT", "OPEN-PUBLIC-REPLY"])):
        response = world.client(caller).get(f"/api/messages/{world.ids['pub.public-reply']}/thread")
        assert response.status_code == 200
        assert _texts(response.json()) == expected, caller


def test_owner_and_channel_members_see_the_whole_thread(world):
    root = world.ids["pub.general"]
    want_for = {
        "owner": {"OPEN-SECRET-CABAL-REPLY", "OPEN-INBOX-WORK"},
        "chowner": {"OPEN-SECRET-CABAL-REPLY"},
        "agent": {"OPEN-INBOX-WORK"},
        "editor": set(),
    }
    for caller, private_texts in want_for.items():
        texts = set(_texts(world.client(caller).get(f"/api/messages/{root}/thread").json()))
        assert "OPEN-GENERAL-ROOT" in texts
        assert texts & {"OPEN-SECRET-CABAL-REPLY", "OPEN-INBOX-WORK"} == private_texts, caller


def test_references_to_unreadable_messages_are_unknown(world):
    """A post that points at a message the sender cannot read (reply_to, feedback.target,
    vote.proposal) gets the same answer as for an id that does not exist: the answer must not tell
    whether the message exists, nor its type."""
    general = "/api/stories/open-tale/channels/general/messages"
    unknown = str(uuid.uuid4())

    def answer(caller, msg_type, payload, **extra):
        response = world.client(caller).post(general, {"msg_type": msg_type, "payload": payload, **extra},
                                             format="json")
        return response.status_code, response.json()

    secret_proposal, secret_text = world.ids["pub.cabal-proposal"], world.ids["pub.cabal"]
    probes = [
        ("vote", lambda ref: {"proposal": ref, "choice": "yes"}, {}),
        ("feedback", lambda ref: {"text": "hmm", "target": ref}, {}),
        ("text", lambda ref: {"text": "re"}, "reply_to"),
    ]
    for msg_type, payload, reply in probes:
        def ask(caller, ref):
            extra = {"reply_to": ref} if reply else {}
            return answer(caller, msg_type, payload(ref), **extra)

        status, body = ask("editor", unknown)
        assert status == 400 and body["error"]["code"] == "invalid", (msg_type, body)
        for ref in (secret_proposal, secret_text):
            assert ask("editor", ref) == (status, body), (msg_type, ref)
        assert "SECRET" not in json.dumps(body)
        # A member of the private channel may point at it.
        status, body = ask("member", secret_proposal)
        assert status == 201, (msg_type, body)


# --- 3. Audience --------------------------------------------------------------------------------

AUDIENCE_MESSAGES = [  # (name, sender role, audience); all in open-tale/general, replies to its root
    ("agents", "editor", "agents"),
    ("humans", "editor", "humans"),
    ("to-mia", "editor", ["mia"]),
    ("to-vera-ada", "chowner", ["vera", "ada"]),
    ("humans-from-ada", "agent", "humans"),
]
AUDIENCE_READERS = {  # who reads each (the story owner and the sender always do)
    "agents": {"owner", "editor", "agent"},
    "humans": {"owner", "editor", "viewer", "member", "chowner", "outsider"},
    "to-mia": {"owner", "editor", "member"},
    "to-vera-ada": {"owner", "chowner", "viewer", "agent"},
    "humans-from-ada": {"owner", "editor", "viewer", "member", "chowner", "outsider", "agent"},
}
AUDIENCE_TEXTS = {f"AUD-{name.upper()}": name for name, _, _ in AUDIENCE_MESSAGES}


def _audience_seen(results) -> set:
    texts = [m["payload"].get("text") for m in results]
    return {AUDIENCE_TEXTS[t] for t in texts if t in AUDIENCE_TEXTS}


@pytest.mark.parametrize("caller", [c for c in CALLERS if c != "anon"])
def test_audience(world, caller):
    """On every read path the caller sees exactly the audience messages meant for them."""
    client = world.client(caller)
    expected = {name for name, readers in AUDIENCE_READERS.items() if caller in readers}
    general = "/api/stories/open-tale/channels/general"

    page = client.get(f"{general}/messages?after=0").json()
    assert _audience_seen(page["results"]) == expected
    descending = client.get(f"{general}/messages?before=1000&type=text").json()
    assert _audience_seen(descending["results"]) == expected
    thread = client.get(f"/api/messages/{world.ids['pub.general']}/thread").json()
    assert _audience_seen(thread["results"]) == expected
    activity = client.get("/api/activity?story=open-tale&limit=500").json()
    assert _audience_seen(activity["results"]) == expected
    everywhere = client.get("/api/activity?limit=500").json()  # only stories the caller takes part in
    assert _audience_seen(everywhere["results"]) == (set() if caller == "outsider" else expected)
    found = client.get("/api/search?q=aud&story=open-tale&limit=100").json()  # search: the same rule
    assert _audience_seen([r["message"] for r in found["results"]]) == expected

    # The SSE replay shows the same messages as the REST read, in the same order.
    sse = sse_head(client.get(f"{general}/events?after=0"), 1 + len(page["results"]))
    replayed = [json.loads(line.removeprefix("data: "))
                for line in sse.split("\n") if line.startswith("data: ")]
    assert [m["id"] for m in replayed] == [m["id"] for m in page["results"]]

    for name in AUDIENCE_READERS:
        message_id = world.ids[f"aud.{name}"]
        detail = client.get(f"/api/messages/{message_id}")
        if name in expected:
            assert detail.status_code == 200, name
            assert detail.json()["payload"]["text"] == f"AUD-{name.upper()}"
        else:
            assert detail.status_code == 404, name
            assert error_code(detail) == "not_found"
            assert client.get(f"/api/messages/{message_id}/thread").status_code == 404, name


@pytest.mark.parametrize("caller", [c for c in CALLERS if c not in ("anon", "outsider")])
def test_inbox_unread_counts_only_what_the_caller_may_read(world, caller):
    """Unread in /api/inbox = the messages of `general` the caller reads and did not send."""
    client = world.client(caller)
    messages = client.get("/api/stories/open-tale/channels/general/messages?after=0").json()["results"]
    readable = [m for m in messages if m["sender"]["username"] != USERNAMES[caller]]
    expected_hidden = {f"AUD-{n.upper()}" for n, _, _ in AUDIENCE_MESSAGES
                       if caller not in AUDIENCE_READERS[n]}
    assert not expected_hidden & set(_texts({"results": messages}))
    rows = {(r["story"], r["channel"]): r for r in client.get("/api/inbox").json()["results"]}
    assert rows[("open-tale", "general")]["unread"] == len(readable)
    assert rows[("open-tale", "general")]["read_seq"] == 0
