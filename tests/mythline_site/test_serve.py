"""`manage.py serve` (docs/deploy.md): the production launcher, as a real process tree.

The live test runs it with two uvicorn workers over Postgres and Redis, opens sockets until both
workers hold one (found through /proc: which worker process owns each accepted TCP socket), posts
over REST and checks every socket gets every message, then stops it with SIGTERM.
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import connect

from accounts.services import token_issue
from tests.conftest import require
from tests.live import DEFAULT_TEST_REDIS, ROOT, frames_until, free_port, redis_available
from tests.live import test_database_url as database_url  # not collected as a test

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def serve_env(**extra) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mythline_site.settings", "DATABASE_URL": database_url(),
           "SECRET_KEY": settings.SECRET_KEY, "DEBUG": "0", "PYTHONUNBUFFERED": "1",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "MYTHLINE_ARCHIVE_SWEEP_SECONDS": "0"}
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def test_several_workers_without_redis_are_refused():
    result = subprocess.run([sys.executable, "manage.py", "serve", "--workers", "2", "--no-collectstatic",
                             "--port", str(free_port())],
                            cwd=ROOT, env=serve_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--workers 2 needs REDIS_URL" in result.stderr
    assert "cannot span" in result.stderr


# --- /proc: the process tree and who owns which socket ------------------------------------------

def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running (a zombie, or a process that is gone, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def uvicorn_workers(serve_pid: int) -> tuple[int | None, list[int]]:
    for child in children(serve_pid):
        if "uvicorn" in cmdline(child):
            return child, [pid for pid in children(child) if "multiprocessing.spawn" in cmdline(pid)]
    return None, []


def server_side_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the accepted socket of the TCP connection 127.0.0.1:client_port -> server_port."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                return inode
    return None


def socket_owner(pids: list[int], inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


# --- the live test ----------------------------------------------------------------------------

def test_two_workers_over_postgres_and_redis_deliver_across_workers_and_stop_on_sigterm(
        make_user, make_story, make_agent):
    if connection.vendor != "postgresql":
        pytest.skip("`serve --workers 2` is tested over Postgres (DATABASE_URL=postgres://...); this run's "
                    "database is SQLite, which CI's Postgres pass covers instead")
    require(redis_available(), f"Redis at {DEFAULT_TEST_REDIS}")

    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    narrator = make_agent("narrator", capabilities=["narration"], stories=[story])
    alice_token, narrator_token = token_issue(user=alice), token_issue(user=narrator)

    port = free_port()
    base, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws/"
    env = serve_env(REDIS_URL=DEFAULT_TEST_REDIS, MYTHLINE_REDIS_PREFIX=f"serve-test-{uuid.uuid4().hex[:12]}",
                    CSRF_TRUSTED_ORIGINS=f"http://127.0.0.1:{port}", MYTHLINE_LOOP_WINDOW_SECONDS="0")
    log = tempfile.NamedTemporaryFile(prefix="mythline-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--workers", "2", "--no-collectstatic",
                             "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output():
        return Path(log.name).read_text(errors="replace")[-4000:]

    tree = []
    try:
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{output()}"
            uvicorn, workers = uvicorn_workers(proc.pid)
            try:
                healthy = httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy and len(workers) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"serve did not come up with two healthy workers:\n{output()}")
        assert uvicorn is not None and len(workers) == 2, output()
        tree = [uvicorn, *children(uvicorn)]  # the workers and multiprocessing's resource tracker

        async def go():
            sockets, owners = [], {}
            try:
                # Open sockets until both workers hold at least one (the kernel spreads the accepts).
                while len(set(owners.values())) < 2:
                    assert len(sockets) < 24, f"24 sockets, all on one worker: {owners}\n{output()}"
                    ws = await connect(ws_url, additional_headers={"Authorization": f"Bearer {alice_token}"})
                    sockets.append(ws)
                    await ws.send(json.dumps({"type": "subscribe", "topic": "channel:tale/general", "ref": "s"}))
                    await frames_until(ws, lambda f: f["type"] == "subscribed", timeout=15)
                    client_port = ws.local_address[1]
                    inode = server_side_inode(port, client_port)
                    owner = socket_owner(workers, inode) if inode else None
                    assert owner in workers, f"no worker owns the socket from port {client_port}"
                    owners[client_port] = owner

                # Each post on a fresh connection: it may land on either worker; every socket, on
                # either worker, must get every message.
                for i in range(6):
                    def post(text=f"line {i}"):
                        r = httpx.post(f"{base}/api/stories/tale/channels/general/messages", timeout=10,
                                       headers={"Authorization": f"Bearer {narrator_token}"},
                                       json={"msg_type": "narration", "payload": {"text": text}})
                        assert r.status_code == 201, r.text
                    await asyncio.to_thread(post)
                for ws in sockets:
                    got = await frames_until(ws, lambda f: f.get("type") == "message" and f["message"]["seq"] == 6,
                                             timeout=15)
                    assert [f["message"]["seq"] for f in got if f["type"] == "message"] == [1, 2, 3, 4, 5, 6]

                # SIGTERM with the sockets still open: a clean stop, in time, nothing left behind.
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(proc.wait, 15)
                assert code == 0, output()
                assert time.monotonic() - started < 15
            finally:
                for ws in sockets:
                    await ws.close()

        asyncio.run(go())
        for _ in range(50):  # orphans, if any, would be reaped by init: give it a moment
            if not any(alive(pid) for pid in tree):
                break
            time.sleep(0.1)
        assert not [pid for pid in tree if alive(pid)], f"left running: {tree}\n{output()}"
        assert "Stopped (server exit code" in output()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
        Path(log.name).unlink(missing_ok=True)
