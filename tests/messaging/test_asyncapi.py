"""The AsyncAPI document of `/ws/` and SSE (messaging/asyncapi.py, served at /api/asyncapi.json).

(a) It is an AsyncAPI 3.0 document in shape (no AsyncAPI validator is installed: the structure
is checked here against the 3.0 specification's objects, and every `$ref` resolves); (b) every
frame of a real session with a live server, and every frame the client sent in it, validates
against the schema the document gives for its `type`, and so does every message of an SSE stream.
"""
import asyncio
import json
import re
import threading

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from websockets.asyncio.client import connect

from accounts.services import token_issue
from messaging import frames
from messaging import schemas as payloads
from messaging.asyncapi import (CLIENT_EXAMPLES, CLIENT_REPLIES, PAYLOAD_CHECKS, SERVER_DESCRIPTIONS, SSE_CHANNEL,
                                WS_CHANNEL, asyncapi_document, client_schemas, payload_schema)
from tests.live import LiveServer, sse_events

DOC_URI = "urn:mythline:asyncapi"
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")
EXTENSION = re.compile(r"^x-[\w\d.\-_]+$")
# The fixed fields of the AsyncAPI 3.0.0 objects used here.
FIELDS = {
    "document": {"asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations", "components"},
    "info": {"title", "version", "description", "termsOfService", "contact", "license", "tags", "externalDocs"},
    "server": {"host", "protocol", "protocolVersion", "pathname", "description", "title", "summary", "variables",
               "security", "tags", "externalDocs", "bindings"},
    "channel": {"address", "messages", "title", "summary", "description", "servers", "parameters", "tags",
                "externalDocs", "bindings"},
    "operation": {"action", "channel", "title", "summary", "description", "security", "tags", "externalDocs",
                  "bindings", "traits", "messages", "reply"},
    "reply": {"address", "channel", "messages"},
    "message": {"headers", "payload", "correlationId", "contentType", "name", "title", "summary", "description",
                "tags", "externalDocs", "bindings", "examples", "traits"},
    "components": {"schemas", "servers", "channels", "operations", "messages", "securitySchemes",
                   "serverVariables", "parameters", "correlationIds", "replies", "replyAddresses",
                   "externalDocs", "tags", "operationTraits", "messageTraits", "serverBindings",
                   "channelBindings", "operationBindings", "messageBindings"},
}
FORMATS = jsonschema.Draft7Validator.FORMAT_CHECKER  # uuid, date-time...
SECURITY_TYPES = {"userPassword", "apiKey", "X509", "symmetricEncryption", "asymmetricEncryption", "httpApiKey",
                  "http", "oauth2", "openIdConnect", "plain", "scramSha256", "scramSha512", "gssapi"}


def pointer(doc: dict, ref: str):
    """The object a local `$ref` names (JSON Pointer), or KeyError."""
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def deref(doc: dict, obj: dict):
    while isinstance(obj, dict) and "$ref" in obj:
        obj = pointer(doc, obj["$ref"])
    return obj


def all_refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from all_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_refs(value)


def only_fields(obj: dict, kind: str) -> None:
    extra = {k for k in obj if k not in FIELDS[kind] and not EXTENSION.match(k)}
    assert not extra, f"{kind} has fields AsyncAPI 3.0 does not define: {extra}"


# --- the document's frame schemas, as a client would use them ---------------------------------------

class Contract:
    """Validators for each frame `type`, read from the document as a client would read it."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT7))
        self.server, self.client = {}, {}
        for op in doc["operations"].values():
            if op["channel"]["$ref"] != f"#/channels/{WS_CHANNEL}":
                continue
            own = self.client if op["action"] == "receive" else self.server
            for ref in op["messages"]:
                self._add(own, ref)
            for ref in op.get("reply", {}).get("messages", []):
                self._add(self.server, ref)
        sse = [op for op in doc["operations"].values() if op["channel"]["$ref"] == f"#/channels/{SSE_CHANNEL}"]
        assert len(sse) == 1 and sse[0]["action"] == "send"
        message = deref(doc, sse[0]["messages"][0])
        self.sse_event = message["name"]
        self.sse = self._validator(message["payload"])

    def _validator(self, payload: dict) -> jsonschema.Draft7Validator:
        assert set(payload) == {"$ref"}, "message payloads are references to components/schemas"
        return jsonschema.Draft7Validator({"$ref": DOC_URI + payload["$ref"]}, registry=self.registry,
                                          format_checker=FORMATS)

    def _add(self, table: dict, ref: dict) -> None:
        message = deref(self.doc, ref)
        type_ = deref(self.doc, message["payload"])["properties"]["type"]["const"]
        assert message["name"] == type_
        table[type_] = self._validator(message["payload"])

    def check_server(self, frame: dict) -> None:
        assert frame.get("type") in self.server, f"a server frame the document does not list: {frame}"
        self._check(self.server[frame["type"]], frame)

    def check_client(self, frame: dict) -> None:
        assert frame.get("type") in self.client, f"a client frame the document does not list: {frame}"
        self._check(self.client[frame["type"]], frame)

    @staticmethod
    def _check(validator, instance) -> None:
        errors = list(validator.iter_errors(instance))
        assert not errors, f"{instance} breaks the document: {[e.message for e in errors][:5]}"


# --- (a) the document ---------------------------------------------------------------------------------

def test_document_is_asyncapi_3_in_shape():
    doc = asyncapi_document()
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    only_fields(doc, "document")
    assert doc["asyncapi"] == "3.0.0"
    only_fields(doc["info"], "info")
    assert isinstance(doc["info"]["title"], str) and isinstance(doc["info"]["version"], str)
    assert {"channels", "operations", "components"} <= set(doc)

    for ref in all_refs(doc):  # every reference resolves
        pointer(doc, ref)

    components = doc["components"]
    only_fields(components, "components")
    for section in components.values():
        assert all(COMPONENT_KEY.match(key) for key in section), section.keys()
    for scheme in components["securitySchemes"].values():
        assert scheme["type"] in SECURITY_TYPES
    for schema in components["schemas"].values():
        jsonschema.Draft7Validator.check_schema(schema)  # AsyncAPI schemas are a superset of draft 07

    for name, server in doc["servers"].items():
        only_fields(server, "server")
        assert isinstance(server["host"], str) and isinstance(server["protocol"], str)
        for variable in re.findall(r"{(\w+)}", server["host"]):
            assert variable in server["variables"]
        for scheme in server.get("security", []):
            assert scheme["$ref"].startswith("#/components/securitySchemes/")

    for channel_id, channel in doc["channels"].items():
        only_fields(channel, "channel")
        assert COMPONENT_KEY.match(channel_id)
        assert set(re.findall(r"{(\w+)}", channel["address"])) == set(channel.get("parameters", {}))
        for server in channel.get("servers", []):
            assert server["$ref"].startswith("#/servers/")
        for message in channel["messages"].values():
            resolved = deref(doc, message)
            only_fields(resolved, "message")
            assert "payload" in resolved

    used = set()
    for op_id, op in doc["operations"].items():
        only_fields(op, "operation")
        assert op["action"] in ("send", "receive")
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        # An operation's messages are those of its channel (AsyncAPI 3.0 requires it).
        for ref in op["messages"]:
            assert ref["$ref"].startswith(channel_ref + "/messages/"), (op_id, ref)
            used.add(ref["$ref"])
        if "reply" in op:
            only_fields(op["reply"], "reply")
            reply_channel = op["reply"]["channel"]["$ref"]
            for ref in op["reply"]["messages"]:
                assert ref["$ref"].startswith(reply_channel + "/messages/"), (op_id, ref)
                used.add(ref["$ref"])
    every_message = {f"#/channels/{c}/messages/{m}" for c, channel in doc["channels"].items()
                     for m in channel["messages"]}
    assert used == every_message, f"messages no operation uses: {every_message - used}"


def test_document_covers_every_frame_and_example():
    doc = asyncapi_document()
    contract = Contract(doc)
    assert set(contract.server) == set(frames.SCHEMAS)  # generated from the table: nothing left out
    assert set(contract.client) == set(client_schemas()) == set(CLIENT_REPLIES)
    assert set(SERVER_DESCRIPTIONS) == set(frames.SCHEMAS)
    assert contract.sse_event == "message"
    for type_, example in CLIENT_EXAMPLES.items():
        contract.check_client(example)
    assert deref(doc, {"$ref": "#/components/schemas/server.event"})["properties"]["event"]["enum"] == \
        frames.STORY_EVENTS
    # Every client frame type the socket handles is in the document, and no other; so is every close code.
    from messaging import consumers
    assert set(consumers.FRAMES) == set(client_schemas())
    codes = {str(getattr(consumers, name)) for name in dir(consumers) if name.startswith("CLOSE_")}
    assert codes | {"4403"} == set(doc["channels"][WS_CHANNEL]["x-close-codes"])


@pytest.mark.parametrize("msg_type", payloads.BUILT_IN_TYPES)
def test_payload_schemas_agree_with_the_server(msg_type):
    """The document's payload schemas say what messaging/schemas.py checks."""
    schema = payload_schema(msg_type)
    for field in payloads.SCHEMAS[msg_type]:
        assert field.check in PAYLOAD_CHECKS, f"payload.{msg_type}.{field.name}: a check the document does not describe"
    samples = [{}, {"extra": 1}, {"text": "", "task": " ", "title": "x" * 201, "beats": []},
               {"text": "Hi", "title": "T", "beats": ["a", "b"], "character": "Mara", "line": "No.",
                "task": "Plan", "status": "started", "progress": 0.5,
                "proposal": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "choice": "yes", "rating": 5, "target": None, "direction": None},
               {"text": "Hi", "rating": 6, "progress": 2, "beats": ["ok", " "], "title": "T", "character": "M",
                "line": "L", "task": "t", "status": "s", "proposal": "not-a-uuid", "choice": "c"},
               {"text": 3, "title": ["x"], "beats": "a", "character": "", "line": None, "task": "t", "status": "s",
                "choice": "", "proposal": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}]
    for sample in samples:
        valid = jsonschema.Draft7Validator(schema, format_checker=FORMATS).is_valid(sample)
        assert valid == (payloads.payload_errors(msg_type, sample) == {}), (msg_type, sample)


def test_served_publicly_at_api_asyncapi_json(client, db):
    response = client.get("/api/asyncapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == asyncapi_document()
    response = client.post("/api/asyncapi.json")
    assert response.status_code == 405 and response.json()["error"]["code"] == "invalid"


# --- (b) a live session against the document ---------------------------------------------------------

@pytest.fixture
def tale(make_user, make_story):
    alice, bob = make_user("alice"), make_user("bob")
    make_story(alice, slug="tale", editors=[bob])
    return {"alice": token_issue(user=alice), "bob": token_issue(user=bob)}


class Socket:
    """A websockets client that checks every frame it sends and receives against the document."""

    def __init__(self, ws, contract: Contract, seen: list):
        self.ws, self.contract, self.seen = ws, contract, seen
        self.buffer: list[dict] = []

    async def send(self, **frame):
        self.contract.check_client(frame)
        await self.ws.send(json.dumps(frame))

    async def next(self, timeout=10) -> dict:
        async with asyncio.timeout(timeout):
            frame = json.loads(await self.ws.recv())
        self.contract.check_server(frame)
        self.seen.append(frame)
        return frame

    async def until(self, predicate, timeout=10) -> dict:
        """The first buffered or new frame matching `predicate`; others are kept for later."""
        for i, frame in enumerate(self.buffer):
            if predicate(frame):
                return self.buffer.pop(i)
        while True:
            frame = await self.next(timeout)
            if predicate(frame):
                return frame
            self.buffer.append(frame)

    async def request(self, ref: str, **frame) -> dict:
        await self.send(ref=ref, **frame)
        return await self.until(lambda f: f.get("ref") == ref)


def typed(type_, **fields):
    return lambda f: f["type"] == type_ and all(f.get(k) == v for k, v in fields.items())


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_frames_of_a_live_session_validate_against_the_document(tale):
    contract = Contract(asyncapi_document())
    seen: list[dict] = []
    with LiveServer() as server:
        rest = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['alice']}"}, timeout=10)
        first = rest.post("/api/stories/tale/channels/general/messages",
                          json={"msg_type": "narration", "payload": {"text": "Before anyone listened."}})
        assert first.status_code == 201, first.text

        async def go():
            headers = {"Authorization": f"Bearer {tale['alice']}"}
            async with connect(server.ws, additional_headers=headers) as ws_a, \
                    connect(server.ws, additional_headers={"Authorization": f"Bearer {tale['bob']}"}) as ws_b:
                a, b = Socket(ws_a, contract, seen), Socket(ws_b, contract, seen)
                assert (await a.next())["type"] == "welcome" and (await b.next())["type"] == "welcome"

                assert (await a.request("s1", type="subscribe", topic="story:tale"))["type"] == "subscribed"
                sub = await a.request("s2", type="subscribe", topic="channel:tale/general", after=0)
                assert sub == {"type": "subscribed", "topic": "channel:tale/general", "last_seq": 1, "ref": "s2"}
                replayed = await a.until(typed("message", replay=True))
                assert replayed["message"]["payload"] == {"text": "Before anyone listened."}
                await a.request("s3", type="subscribe", topic="channel:tale/room")
                await a.until(typed("presence.state"))
                doc_sub = await a.request("s4", type="subscribe", topic="doc:tale/main")
                assert doc_sub["revision"] == 0
                state = await a.until(typed("doc.state"))
                assert state["max_insert_chars"] > 0 and state["max_chars"] > 0 and state["max_changes"] > 0
                for i, topic in enumerate(("channel:tale/general", "channel:tale/room", "doc:tale/main")):
                    await b.request(f"b{i}", type="subscribe", topic=topic)
                await a.until(typed("presence.diff"))  # bob joined the room

                published = await a.request("p1", type="publish", topic="channel:tale/general", msg_type="dialogue",
                                            payload={"character": "Mara", "line": "Who's there?"},
                                            correlation_id="scene-1")
                assert published["type"] == "published" and published["seq"] == 2 and published["created"]
                live = await b.until(typed("message"))
                assert live["message"]["id"] == published["id"] and "replay" not in live
                await a.until(lambda f: f["type"] == "message" and f["message"]["seq"] == 2)
                assert (await a.request("k1", type="ack", topic="channel:tale/general", seq=2))["type"] == "acked"
                assert (await a.request("h1", type="heartbeat", state="idle"))["type"] == "heartbeat_ack"
                assert (await a.request("g1", type="ping"))["type"] == "pong"

                await b.send(type="typing", topic="channel:tale/general", typing=True)
                typing = await a.until(typed("typing", topic="channel:tale/general"))
                assert typing["user"]["username"] == "bob" and typing["typing"] is True

                await b.send(ref="d1", type="doc.push", topic="doc:tale/main", revision=0,
                             changes=[[0, "Once."]], client_id="bob-1")
                change = await a.until(typed("doc.change"))
                assert change["revision"] == 1 and change["client_id"] == "bob-1" and change["author"] == "bob"
                await b.until(typed("doc.change"))  # the sender hears its own change
                conflict = await a.request("d2", type="doc.push", topic="doc:tale/main", revision=0,
                                           changes=[[0, "Twice."]], client_id="alice-1")
                assert conflict["type"] == "error" and conflict["code"] == "conflict" and conflict["revision"] == 1
                pulled = await a.request("d3", type="doc.pull", topic="doc:tale/main", after=0)
                assert pulled["type"] == "doc.changes" and [c["revision"] for c in pulled["changes"]] == [1]
                await b.send(type="cursor", topic="doc:tale/main", anchor=5, head=5)
                assert (await a.until(typed("cursor")))["user"]["username"] == "bob"

                created = await asyncio.to_thread(rest.post, "/api/stories/tale/channels",
                                                  json={"name": "plots", "kind": "public"})
                assert created.status_code == 201, created.text
                assert (await a.until(typed("event")))["event"] == "channel.created"

                # Suggestions and comments: their answers (their story events come to `a` as well).
                made = await b.request("x1", type="suggest", topic="doc:tale/main", revision=1,
                                       changes=[4, [1, "!"]], note="louder")
                assert made["type"] == "suggestion" and made["suggestion"]["status"] == "open"
                one = await a.request("x2", type="suggestion.decide", topic="doc:tale/main", decision="reject",
                                      id=made["suggestion"]["id"], version=made["suggestion"]["version"])
                assert one["type"] == "suggestion" and one["suggestion"]["status"] == "rejected"
                every = await a.request("x3", type="suggestion.decide", topic="doc:tale/main", decision="accept")
                assert every["type"] == "suggestions.decided" and every["decided"] == []
                thread = await b.request("x4", type="comment", topic="doc:tale/main", revision=1, body="Why?",
                                         **{"from": 0, "to": 4})
                assert thread["type"] == "comment.thread" and thread["thread"]["quote"] == "Once"
                reply = await a.request("x5", type="comment.reply", topic="doc:tale/main",
                                        thread=thread["thread"]["id"], body="Because.")
                assert reply["type"] == "comment"
                resolved = await a.request("x6", type="comment.resolve", topic="doc:tale/main",
                                           thread=thread["thread"]["id"], resolved=True)
                assert resolved["type"] == "comment.thread" and resolved["thread"]["resolved"] is True

                # A streaming message (streaming/frames.py): bob's, watched by alice on general.
                opened = await b.request("m1", type="stream.open", topic="channel:tale/general", msg_type="narration")
                assert opened["type"] == "stream.opened"
                grown = await b.request("m2", type="stream.append", id=opened["id"], text="Dusk.", offset=0)
                assert grown["type"] == "stream.appended" and grown["length"] == 5
                done = await b.request("m3", type="stream.complete", id=opened["id"])
                assert done["type"] == "published" and done["id"] == opened["id"]
                dropped = await b.request("m4", type="stream.open", topic="channel:tale/general",
                                          msg_type="narration")
                assert (await b.request("m5", type="stream.cancel", id=dropped["id"]))["type"] == "stream.cancelled"
                await a.until(lambda f: f["type"] == "stream.ended" and f["id"] == dropped["id"])

                # Notifications (notifications/): alice mentions bob (in `plots`: general's SSE is counted
                # below); bob marks it read.
                assert (await b.request("n1", type="subscribe", topic="notifications:bob"))["unread"] == 0
                mention = await asyncio.to_thread(rest.post, "/api/stories/tale/channels/plots/messages",
                                                  json={"msg_type": "text", "payload": {"text": "@bob, your turn"}})
                assert mention.status_code == 201, mention.text
                told = await b.until(typed("notification"))
                bob_rest = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {tale['bob']}"},
                                        timeout=10)
                await asyncio.to_thread(bob_rest.post, "/api/notifications/read",
                                        json={"ids": [told["notification"]["id"]]})
                assert (await b.until(typed("notifications.read")))["unread"] == 0

                # An error: a frame type the server does not know (sent raw: the document has no such frame).
                await ws_a.send(json.dumps({"type": "nonsense", "ref": "e1"}))
                error = await a.until(lambda f: f.get("ref") == "e1")
                assert error["type"] == "error" and error["code"] == "invalid"
                assert (await a.request("u1", type="unsubscribe", topic="channel:tale/general"))["type"] == \
                    "unsubscribed"

                # Rights follow changes: bob removed from the story loses the room (a presence channel).
                removed = await asyncio.to_thread(rest.delete, "/api/stories/tale/participants/bob")
                assert removed.status_code == 204, removed.text
                revoked = await b.until(typed("unsubscribed", topic="channel:tale/room"))
                assert revoked["reason"] == "access_revoked" and "ref" not in revoked

        asyncio.run(go())

        # SSE: the same messages as the data of `message` events.
        with httpx.stream("GET", f"{server.base}/api/stories/tale/channels/general/events", params={"after": 0},
                          headers={"Authorization": f"Bearer {tale['alice']}"}, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            own_type = {"msg_type": "my.own-type", "payload": {"any": [1]}}  # not built in: any object
            timer = threading.Timer(0.5, lambda: rest.post("/api/stories/tale/channels/general/messages",
                                                           json=own_type))
            timer.start()
            events = sse_events(response.iter_lines(), 4)  # the completed stream is a narration
            timer.join()
        rest.close()

    for event in events:
        assert event["event"] == contract.sse_event
        message = json.loads(event["data"])
        errors = list(contract.sse.iter_errors(message))
        assert not errors, [e.message for e in errors]
        assert event["id"] == str(message["seq"])
    assert [json.loads(e["data"])["msg_type"] for e in events] == ["narration", "dialogue", "narration",
                                                                   "my.own-type"]
    assert {f["type"] for f in seen} == set(frames.SCHEMAS), "every server frame type was seen and checked"
