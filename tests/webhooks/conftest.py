"""Webhook fixtures: a real HTTP receiver on 127.0.0.1 (started by the test, scripted answers), a
story with an agent (and its inbox), and the settings that let a test send to 127.0.0.1 over http."""
import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from messaging.policies import access_channel
from messaging.services import message_post


@dataclass
class Received:
    path: str
    headers: dict  # lower-case names
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on a free port of 127.0.0.1 that records every request and answers each with
    the next status of `script` (200 once the script is used up)."""

    def __init__(self):
        self.requests: list[Received] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    status = receiver.script.pop(0) if receiver.script else 200
                data = b"ok" if status < 300 else b"try again later"
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hooks/mythline"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} request(s) received, waited for {count}"
            time.sleep(0.05)
        return self.requests


def verify(secret: str, headers: dict, body: bytes) -> bool:
    """The receiver's check, written from the Standard Webhooks spec (not with Mythline's code)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(sig.split(",", 1)[1], expected)
               for sig in headers["webhook-signature"].split() if sig.startswith("v1,"))


@pytest.fixture
def receiver():
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(autouse=True)
def _local_webhooks(settings):
    """Tests send to 127.0.0.1 over plain http; the refusals set these back to see them work."""
    settings.MYTHLINE_WEBHOOK_ALLOW_INSECURE = True
    settings.MYTHLINE_WEBHOOK_ALLOW_PRIVATE = True
    settings.MYTHLINE_WEBHOOK_TIMEOUT_SECONDS = 5


@pytest.fixture
def world(db, make_user, make_story, make_agent, api):
    """alice owns the story `tale`; scout is an agent editor there (inbox `inbox.scout`); bob a human editor."""
    alice = make_user("alice")
    bob = make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    scout = make_agent("scout", stories=[story])
    return {"alice": alice, "bob": bob, "scout": scout, "story": story, "scout_api": api(scout), "api": api}


def post(user, channel: str, text: str, *, story="tale", msg_type="text", **extra):
    access = access_channel(user, story, channel, for_write=True)
    return message_post(sender=user, access=access,
                        data={"msg_type": msg_type, "payload": {"text": text}, **extra}).message


def register(client, url: str) -> dict:
    r = client.put("/api/agents/me/webhook", {"url": url}, format="json")
    assert r.status_code in (200, 201), r.content
    return r.json()
