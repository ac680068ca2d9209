"""`manage.py serve` (docs/deploy.md): the production launcher, as a real process tree.

The live test runs it with two uvicorn workers over Postgres and Redis, opens sockets until both
workers hold one (found through /proc: which worker process owns each accepted TCP socket), posts
over REST and checks every socket gets every message, then stops it with SIGTERM. The server
process it starts, `python -m mythline_site.workers` (each worker on its own SO_REUSEPORT socket),
is tested on its own too: a burst of connections spread over both workers, a second server on the
port refused, a killed worker replaced, a clean stop on SIGTERM, a broken app stopping it.
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
from bench import procnet
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


def kill_all(proc, pids, log) -> None:
    """A test's clean-up: the process group it started, any process of `pids` left, its log file."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    log.close()
    Path(log.name).unlink(missing_ok=True)


def alive(pid: int) -> bool:
    """Running (a zombie, or a process that is gone, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def worker_pids(server_pid: int) -> list[int]:
    """The running workers of a `python -m mythline_site.workers` process."""
    return [pid for pid in children(server_pid) if "--serve-fd" in cmdline(pid) and alive(pid)]


def server_and_workers(serve_pid: int) -> tuple[int | None, list[int]]:
    """`serve`'s server process (python -m mythline_site.workers) and its workers."""
    for child in children(serve_pid):
        if "mythline_site.workers" in cmdline(child):
            return child, worker_pids(child)
    return None, []


def server_side_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the accepted socket of the TCP connection 127.0.0.1:client_port -> server_port."""
    return next((sock.inode for sock in procnet.tcp_sockets(server_port) if sock.remote_port == client_port), None)


def socket_owner(pids: list[int], inode: str) -> int | None:
    return procnet.socket_holders(pids).get(inode)


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
            server, workers = server_and_workers(proc.pid)
            try:
                healthy = httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy and len(workers) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"serve did not come up with two healthy workers:\n{output()}")
        assert server is not None and len(workers) == 2, output()
        tree = [server, *children(server)]  # the server process and its workers

        async def go():
            sockets, owners = [], {}
            try:
                # Open sockets until both workers hold at least one (the kernel spreads the connections
                # over the workers' SO_REUSEPORT sockets).
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
        kill_all(proc, tree, log)


# --- the server process: python -m mythline_site.workers ----------------------------------------

def listening_sockets(port: int) -> int:
    """How many sockets listen on `port`: one per worker."""
    return sum(1 for sock in procnet.tcp_sockets(port) if sock.state == procnet.LISTEN)


def accepted_by(port: int, client_ports: list[int], workers: list[int], timeout: float = 20) -> dict[int, int]:
    """{client port: the worker pid that accepted that connection}, once every one is accepted."""
    deadline = time.monotonic() + timeout
    while True:
        inodes = {sock.remote_port: sock.inode for sock in procnet.tcp_sockets(port)}
        holders = procnet.socket_holders(workers)
        owners = {cp: holders.get(inodes.get(cp)) for cp in client_ports}
        if all(owners.values()) or time.monotonic() > deadline:
            return owners
        time.sleep(0.05)


def burst(port: int, workers: list[int], n: int = 32) -> dict[int, int]:
    """Open `n` TCP connections at once, then ask /healthz on each: {worker pid: connections it
    accepted}. Every connection must be accepted by a worker and answered 200."""
    import socket

    conns = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(n)]
    try:
        client_ports = [c.getsockname()[1] for c in conns]
        owners = accepted_by(port, client_ports, workers)
        assert all(owners.values()), f"not accepted by a worker: {[cp for cp, o in owners.items() if not o]}"
        for c in conns:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for c in conns:
            head = b""
            while b"\r\n" not in head:
                chunk = c.recv(4096)
                assert chunk, "the server closed the connection without an answer"
                head += chunk
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
    finally:
        for c in conns:
            c.close()
    return {pid: sum(1 for o in owners.values() if o == pid) for pid in workers}


def wait_for(condition, what: str, output, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout:g} s\n{output()}")


def healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_workers_spread_a_burst_refuse_a_second_server_replace_a_dead_worker_and_stop_on_sigterm():
    """The server `serve` runs, on its own (no Redis needed to serve /healthz on each worker)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="mythline-workers-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "mythline_site.workers", "--host", "127.0.0.1", "--port",
                             str(port), "--workers", "2", "--graceful-timeout", "3"],
                            cwd=ROOT, env=serve_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output():
        return Path(log.name).read_text(errors="replace")[-4000:]

    seen = set()
    try:
        workers = wait_for(lambda: proc.poll() is None and len(worker_pids(proc.pid)) == 2 and healthy(base)
                           and worker_pids(proc.pid), "two workers answering /healthz", output)
        seen.update(workers)
        assert proc.poll() is None, output()
        assert listening_sockets(port) == 2, "each worker listens on its own socket"

        # (a) 32 connections opened at once land on both workers. The kernel hashes each
        # connection onto one of the 2 sockets: a worker gets fewer than 6 of 32 with probability
        # 2 * P(Binomial(32, 1/2) <= 5) = 1.1e-4. One shared socket gave 32/0 often.
        per_worker = burst(port, workers)
        assert min(per_worker.values()) >= 6, f"connections per worker: {per_worker}"

        # (b) A second server on the same port is refused: it must not join the SO_REUSEPORT group.
        second = subprocess.run([sys.executable, "-m", "mythline_site.workers", "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "2"],
                                cwd=ROOT, env=serve_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode == 3, second.stdout + second.stderr
        assert f"127.0.0.1:{port} is already in use" in second.stderr
        assert "Refusing to start" in second.stderr
        again = subprocess.run([sys.executable, "manage.py", "serve", "--workers", "1", "--no-collectstatic",
                                "--no-crew-worker", "--no-webhook-worker", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=ROOT, env=serve_env(), capture_output=True, text=True, timeout=60)
        assert again.returncode == 1, again.stdout + again.stderr
        assert f"127.0.0.1:{port} is already in use" in again.stderr
        assert listening_sockets(port) == 2, "the refused servers left a socket in the group"
        assert sorted(worker_pids(proc.pid)) == sorted(workers)

        # (c) A worker killed with SIGKILL is replaced: a new worker, on a new socket, gets its share.
        victim, survivor = workers
        os.kill(victim, signal.SIGKILL)
        workers = wait_for(lambda: (len(pids := worker_pids(proc.pid)) == 2 and victim not in pids
                                    and listening_sockets(port) == 2 and pids),
                           "the killed worker replaced", output)
        seen.update(workers)
        assert survivor in workers and proc.poll() is None, output()
        assert f"Worker process [{victim}] died (exit code -9); replacing it." in output()
        for _ in range(8):  # fresh connections, on either socket
            assert healthy(base), output()
        per_worker = burst(port, workers)
        assert min(per_worker.values()) >= 6, f"connections per worker after the replacement: {per_worker}"

        # (d) SIGTERM stops the workers and the server process, exit code 0.
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, output()
        assert time.monotonic() - started < 15
        wait_for(lambda: not [pid for pid in seen if alive(pid)], "every worker gone", output, timeout=5)
        assert listening_sockets(port) == 0
        assert not healthy(base)
    finally:
        kill_all(proc, seen, log)


def test_workers_that_cannot_import_the_app_stop_the_server():
    """A worker that dies before it imported the app is not replaced over and over: the server
    stops, exit code 3 (uvicorn's STARTUP_FAILURE)."""
    result = subprocess.run([sys.executable, "-m", "mythline_site.workers", "--host", "127.0.0.1",
                             "--port", str(free_port()), "--workers", "2"],
                            cwd=ROOT, env=serve_env(DJANGO_SETTINGS_MODULE="mythline_site.no_such_settings"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "before it imported the app" in result.stderr
    assert "stopping the server" in result.stderr
    assert "replacing it" not in result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the claim is an abstract Unix socket name (Linux)")
def test_a_server_starting_on_a_port_another_claimed_a_moment_ago_is_refused():
    """The probe alone leaves a window: two servers started at the same instant could both find the
    port free, then both join one SO_REUSEPORT group. Each holds a claim on (host, port) from its
    first step (mythline_site.workers.claim_port), so the second is refused even before the first
    listens. Here the test process holds the claim on a free port, as a server starting would."""
    import socket

    from mythline_site.workers import answer_claim_checks, claim_name

    port = free_port()
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(claim_name("127.0.0.1", port))
    holder.listen(8)
    answer_claim_checks(holder)
    try:
        for workers in ("2", "1"):
            refused = subprocess.run([sys.executable, "-m", "mythline_site.workers", "--host", "127.0.0.1",
                                      "--port", str(port), "--workers", workers],
                                     cwd=ROOT, env=serve_env(), capture_output=True, text=True, timeout=60)
            assert refused.returncode == 3, refused.stdout + refused.stderr
            assert f"127.0.0.1:{port} is already in use: another `manage.py serve` is starting" in refused.stderr
        refused = subprocess.run([sys.executable, "manage.py", "serve", "--workers", "1", "--no-collectstatic",
                                  "--no-crew-worker", "--no-webhook-worker", "--host", "127.0.0.1", "--port", str(port)],
                                 cwd=ROOT, env=serve_env(), capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"127.0.0.1:{port} is already in use" in refused.stderr
        assert listening_sockets(port) == 0 and not healthy(f"http://127.0.0.1:{port}")
    finally:
        holder.shutdown(socket.SHUT_RDWR)
        holder.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the claim is an abstract Unix socket name (Linux)")
def test_a_claim_held_by_another_user_does_not_stop_the_server():
    """Abstract socket names have no owner: anyone could take a server's claim first. A claim whose
    holder is another user (SO_PEERCRED) is passed over, with a warning: the port probe still guards
    the port, and the kernel lets only one user's sockets share a SO_REUSEPORT group anyway."""
    import socket

    from mythline_site import workers

    if os.geteuid() != 0:
        pytest.skip("needs root, to hold the claim as another user (CI runs as root)")
    port = free_port()
    name = workers.claim_name("127.0.0.1", port)
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    child = os.fork()
    if child == 0:  # another user squats on the claim
        try:
            os.setgid(65534)
            os.setuid(65534)
            squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            squatter.bind(name)
            squatter.listen(8)
            os.write(ready_w, b"r")
            os.read(stop_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"r"
        assert workers.serving_problem("127.0.0.1", port) is None
        holder, problem = workers.claim_port("127.0.0.1", port)
        assert (holder, problem) == (None, None)
        # The same user's claim is refused, as from a second server of this user.
        os.write(stop_w, b"s")
        os.waitpid(child, 0)
        mine, problem = workers.claim_port("127.0.0.1", port)
        assert mine is not None and problem is None
        workers.answer_claim_checks(mine)
        try:
            for _ in range(20):  # more than the claim's backlog: each check is answered and closed
                assert "another `manage.py serve` is starting or running" in workers.serving_problem("127.0.0.1", port)
        finally:
            mine.shutdown(socket.SHUT_RDWR)
            mine.close()
    finally:
        for fd in (ready_r, ready_w, stop_r, stop_w):
            os.close(fd)
        try:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
