"""A database or Redis outage answers 503 `unavailable` with Retry-After, and the API recovers.

The live test runs a real server (Daphne) on a private PostgreSQL cluster it creates and stops
itself (initdb + pg_ctl on a free port; never the shared one): a restart between two requests is
invisible (the pool checks connections: CONN_HEALTH_CHECKS), a post during the outage gets 503
with `Retry-After` and the error envelope, the same post retried after the restart is stored once,
and nothing acknowledged is lost. The other test points the rate-limit cache at a Redis port where
nothing listens. Fault drills under load: bench/faults.py, docs/reliability.md.
"""
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from bench.faults import PrivatePostgres, pg_bin
from tests.conftest import error_code, require
from tests.live import ROOT, LiveServer, free_port

SETUP = r"""
from accounts.services import token_issue
from agents.services import agent_create
from accounts.models import User
from stories.services import story_create
owner = User.objects.create_user("outage-owner", password=None)
story = story_create(owner=owner, slug="outage", title="Outage")
agent = agent_create(username="outage-agent", capabilities=["narration"], stories=[story])
print("TOKEN " + token_issue(user=agent, label="outage"))
"""

MESSAGES = "/api/stories/outage/channels/general/messages"


def assert_unavailable(response):
    assert response.status_code == 503, response.text
    assert error_code(response) == "unavailable"
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    assert response.json()["error"]["details"] == {"retry_after": retry_after}
    for cause in ("OperationalError", "PoolTimeout", "ConnectionError", "127.0.0.1"):  # logged, never sent
        assert cause not in response.text
    return retry_after


@pytest.fixture
def private_postgres():
    require(pg_bin("initdb") is not None and pg_bin("pg_ctl") is not None, "PostgreSQL (initdb, pg_ctl)")
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


def manage(env, *args):
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.live
def test_postgres_outage_503_then_recovery_nothing_lost(private_postgres, settings):
    pg = private_postgres
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mythline_site.settings", "DATABASE_URL": pg.url,
           "SECRET_KEY": settings.SECRET_KEY, "DEBUG": "0"}
    env.pop("REDIS_URL", None)
    manage(env, "migrate", "--noinput")
    token = next(line for line in manage(env, "shell", "-c", SETUP).splitlines() if line.startswith("TOKEN "))[6:]
    auth = {"Authorization": f"Bearer {token}"}

    with LiveServer(env={"DATABASE_URL": pg.url}) as server, httpx.Client(base_url=server.base, timeout=60) as client:
        first = client.post(MESSAGES, headers={**auth, "Idempotency-Key": "first"},
                            json={"msg_type": "narration", "payload": {"text": "Before the storm."}})
        assert first.status_code == 201, first.text

        # A restart between two requests: the pooled connection is dead, checked, replaced.
        pg.stop("fast")
        pg.start()
        read = client.get(MESSAGES, headers=auth)
        assert read.status_code == 200, read.text
        assert [m["seq"] for m in read.json()["results"]] == [1]

        # During the outage: 503 `unavailable` with Retry-After, nothing stored.
        pg.stop("fast")
        key = f"during-{uuid.uuid4().hex}"
        body = {"msg_type": "narration", "payload": {"text": "The lamp went dark."}}
        retry_after = assert_unavailable(client.post(MESSAGES, headers={**auth, "Idempotency-Key": key}, json=body))
        pg.start()

        # Back: the same post, retried as told, is stored once; nothing acknowledged is lost.
        deadline = time.monotonic() + 60
        while True:
            time.sleep(retry_after)
            retried = client.post(MESSAGES, headers={**auth, "Idempotency-Key": key}, json=body)
            if retried.status_code != 503 or time.monotonic() > deadline:
                break
            retry_after = assert_unavailable(retried)
        assert retried.status_code == 201, retried.text
        again = client.post(MESSAGES, headers={**auth, "Idempotency-Key": key}, json=body)
        assert again.status_code == 200 and again.json()["id"] == retried.json()["id"]

        log = client.get(MESSAGES, headers=auth).json()["results"]
        assert [(m["seq"], m["payload"]["text"]) for m in log] == [(1, "Before the storm."), (2, "The lamp went dark.")]
        assert "unavailable: OperationalError" in server.output()  # the cause is logged, never sent


def test_redis_unreachable_answers_503_with_retry_after(make_user, make_story, api, settings):
    """Rate limits live in Redis: a POST while it is down is 503 `unavailable`, not a 500."""
    user = make_user("writer")
    make_story(user, slug="tale")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}  # nothing listens there
    response = api(user).post("/api/stories/tale/channels/general/messages",
                              {"msg_type": "narration", "payload": {"text": "Into the dark."}}, format="json")
    assert_unavailable(response)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}}
    assert api(user).get("/api/stories/tale/channels/general/messages").json()["results"] == []
