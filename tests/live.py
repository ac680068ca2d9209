"""Real server processes for tests: Daphne on a free port, on the test database.

Tests that use these must be `django_db(transaction=True)`, so that what they create is
committed and visible to the server process.
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEST_REDIS = os.environ.get("MYTHLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def redis_available(url: str = DEFAULT_TEST_REDIS) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


class LiveServer:
    def __init__(self, *, redis_url: str | None = None, env: dict | None = None, port: int | None = None,
                 root: Path = ROOT):
        self.root = root  # the checkout the server runs from
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws/"
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mythline_site.settings",
                    "DATABASE_URL": test_database_url(), "DEBUG": "0", "PYTHONUNBUFFERED": "1",
                    "SECRET_KEY": settings.SECRET_KEY, "MYTHLINE_ARCHIVE_SWEEP_SECONDS": "0",
                    "ALLOWED_HOSTS": "127.0.0.1,localhost",
                    "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{self.port},http://localhost:{self.port}"}
        self.env.pop("REDIS_URL", None)
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.env.update(env or {})
        self.log = tempfile.NamedTemporaryFile(prefix="mythline-live-", suffix=".log", delete=False)
        self.proc = None

    def command(self) -> list[str]:
        """How the server is started (Daphne here; a subclass may run uvicorn as `serve` does)."""
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                "mythline_site.asgi:application"]

    def start(self, timeout: float = 30) -> "LiveServer":
        self.proc = subprocess.Popen(self.command(), cwd=self.root, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.output()[-3000:]}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self):
        """SIGKILL: no shutdown hooks run, as when a machine dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        Path(self.log.name).unlink(missing_ok=True)


@contextmanager
def layered_server(layer: str, *, name: str, env: dict | None = None):
    """A LiveServer on the in-process channel layer (`layer` "memory") or on Redis ("redis", with a
    key prefix of its own; skipped where Redis is absent, a failure under MYTHLINE_REQUIRE_ALL):
    the two ways a server delivers across its sockets."""
    from tests.conftest import require

    env = dict(env or {})
    if layer == "memory":
        with LiveServer(env=env) as live:
            yield live
        return
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_TEST_REDIS
    require(redis_available(redis_url), f"Redis at {redis_url}")
    env["MYTHLINE_REDIS_PREFIX"] = f"mythline-test-{name}-{time.monotonic_ns()}"
    with LiveServer(redis_url=redis_url, env=env) as live:
        yield live


# --- clients' helpers ---------------------------------------------------------------------------

async def until(predicate, timeout=20.0, interval=0.05, what="condition"):
    """Wait until `predicate()` (a function or a coroutine function) is true; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def frames_until(ws, predicate, timeout=10):
    """Read JSON frames from a `websockets` client until `predicate(frame)`; return every frame read."""
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            seen.append(frame)
            if predicate(frame):
                return seen


def sse_events(lines, count):
    """The first `count` events of an SSE stream's lines (comments and `retry` skipped), each as
    a dict of its fields (`id`, `event`, `data`); fewer if the stream ends first."""
    events, event = [], {}
    for line in lines:
        if line.startswith(":") or line.startswith("retry:"):
            continue
        if line == "":
            if event:
                events.append(event)
                event = {}
                if len(events) == count:
                    return events
            continue
        field, _, value = line.partition(": ")
        event[field] = value
    return events

