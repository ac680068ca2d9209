"""Shared fixtures: real database (SQLite file or Postgres from DATABASE_URL), real channel layer.

`make_user`, `make_agent`, `make_story` build data through the services, as production does.
`api(user)` is a DRF client authenticated with a real bearer token.
"""
import os
import uuid

import pytest
from channels.layers import channel_layers
from rest_framework.test import APIClient

from accounts.services import token_issue
from agents.services import agent_create
from stories.models import Participant
from stories.services import participant_add, story_create

REQUIRE_ALL = os.environ.get("MYTHLINE_REQUIRE_ALL") == "1"


def require(available: bool, what: str):
    """Skip with a message when `what` is missing, or fail under MYTHLINE_REQUIRE_ALL=1 (CI)."""
    if available:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required here (MYTHLINE_REQUIRE_ALL=1) but is not available")
    pytest.skip(f"{what} is not available")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real hashing costs ~0.3 s per user; tests create hundreds."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Each test starts with a full rate budget. The cache may be a shared Redis: give each test
    its own key prefix rather than flushing a database others may use."""
    settings.MYTHLINE_RATE_KEY_PREFIX = f"rl-test-{uuid.uuid4().hex[:12]}"
    # Likewise the per-user connection leases (messaging/connections.py) on a shared Redis.
    settings.MYTHLINE_LEASE_KEY_PREFIX = f"{settings.MYTHLINE_RATE_KEY_PREFIX}:leases"


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets a channel layer of its own (and `tests.messaging.test_consumers.run`, each event
    loop). The process's layer is made once and kept, while tests run many short event loops
    (asyncio.run, async_to_sync). channels-redis keeps asyncio locks across loops: a receive cancelled
    while it waits for the lock on its process's channels (as a loop's end cancels the fan-out's
    receive) leaves that lock's waiter count up, so the lock, bound to the finished loop, is never
    dropped, and the next loop's first receive that has to wait for it fails ("bound to a different
    event loop"; the fan-out then logs "fan-out receive failed" and closes its sockets). A server
    process runs one loop for good, so only tests meet this."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def make_user(db, django_user_model):
    counter = {"n": 0}

    def make(username=None, **extra):
        counter["n"] += 1
        username = username or f"user{counter['n']}"
        return django_user_model.objects.create_user(username=username, password="pw-" + username + "-123456", **extra)

    return make


@pytest.fixture
def make_agent(db):
    def make(username, capabilities=("narration",), stories=()):
        return agent_create(username=username, capabilities=list(capabilities), stories=list(stories))

    return make


@pytest.fixture
def make_story(db):
    counter = {"n": 0}

    def make(owner, slug=None, visibility="public", editors=(), viewers=(), **extra):
        counter["n"] += 1
        story = story_create(owner=owner, slug=slug or f"story-{counter['n']}", title=extra.pop("title", "A story"),
                             visibility=visibility, **extra)
        for user in editors:
            participant_add(story=story, user=user, role=Participant.Role.EDITOR)
        for user in viewers:
            participant_add(story=story, user=user, role=Participant.Role.VIEWER)
        return story

    return make


@pytest.fixture
def api(db):
    """api(user) -> an APIClient sending `Authorization: Bearer <a fresh token>`; api(None) is anonymous."""

    def make(user):
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user)}")
        return client

    return make


def error_code(response):
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]["code"]
