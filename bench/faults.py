#!/usr/bin/env python
"""Fault drills: restart Redis, restart PostgreSQL, SIGKILL a server process, all under load, and
count what clients saw. Figures and method: docs/reliability.md.

    .venv/bin/python bench/faults.py --scenario redis|postgres|sigkill|all
    .venv/bin/python bench/faults.py --scenario postgres --pg-down 15 --seconds 40

Everything runs on private instances this script starts and removes (never the shared ones): a
PostgreSQL cluster (`initdb` into a temp dir, `pg_ctl` on a free port; as the `postgres` OS user
when run as root) and a `redis-server` on a free port (no persistence, so a restart loses every
key, channel-layer group memberships included). Then, per scenario:

1. `manage.py migrate` (once) and a setup script: a story per scenario (`drill-redis`, ...) whose
   `general` channel takes the load, --agents agents (editors) and --subscribers viewers, each with
   a bearer token;
2. 2 uvicorn processes (3 for `sigkill`) on that database and Redis;
3. the subscribers (asyncio + `websockets`, in this process) each open `/ws/` on a server (split
   evenly), `subscribe` to `channel:drill-<scenario>/general` with `after: 0` and send `heartbeat`
   every `heartbeat_seconds`. When a socket closes or fails they do what the SDK does: reconnect with
   exponential backoff and jitter (to the next server when theirs refuses: a load balancer's
   failover) and subscribe again with `after` = the highest seq they saw;
4. the agents POST `narration` messages over REST at --rate each, one at a time, each with its own
   `Idempotency-Key` kept across retries; a 503/5xx/429 or a broken connection is retried after
   `Retry-After` (or a backoff), to the next server when theirs refuses connections. A message is
   acknowledged when a 201 (or 200: a repeat of a stored post) comes back;
5. after --fault-at seconds the fault: `redis` stops redis-server (SIGTERM) and starts it again
   after --redis-down seconds; `postgres` runs `pg_ctl stop -m fast` and starts it again after
   --pg-down seconds; `sigkill` sends SIGKILL to the first of the three server processes (it stays
   dead);
6. posting stops after --seconds; the channel's log is read from the database, and the subscribers
   get up to --drain seconds to reach its last seq.

Counted per scenario: messages posted (started), acknowledged, acknowledged but missing from the
log (lost), stored twice (the same Idempotency-Key under two seqs), holes in the log's seqs; per
subscriber the seqs it never received (gaps), seqs received twice on one subscription and across
resumes (duplicates), reconnects; 503s (with and without Retry-After) and other errors the agents
got; and the times to recover: the longest stretch without an acknowledgement, from the end of the
fault to the next acknowledgement, and to every subscriber holding that message.

Prints a summary per scenario and writes bench/results/faults.json (gitignored). Every process and
temp dir this script made is removed on exit, errors and Ctrl-C included.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from glob import glob
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RESULTS_DIR, Interrupted, Server, _on_sigterm, django_env, free_port, manage  # noqa: E402

SCENARIOS = ("redis", "postgres", "sigkill")
SERVERS = {"redis": 2, "postgres": 2, "sigkill": 3}

# Limits far above this load, so no throttle or loop policy answers instead of the fault under test.
SERVER_ENV = {
    "MYTHLINE_POST_RATE": "100000/s", "MYTHLINE_POST_BURST": "100000",
    "MYTHLINE_WRITE_RATE": "100000/s", "MYTHLINE_WRITE_BURST": "100000",
    "MYTHLINE_READ_RATE": "100000/s", "MYTHLINE_READ_BURST": "100000",
    "MYTHLINE_WS_FRAME_RATE": "100000", "MYTHLINE_WS_FRAME_BURST": "100000",
    "MYTHLINE_LOOP_MAX_SIMILAR": "0",
    "MYTHLINE_ARCHIVE_SWEEP_SECONDS": "0",
    "DEBUG": "0",
    "LOG_LEVEL": "WARNING",
}

SETUP_SCRIPT = r"""
import json, os
from accounts.models import User
from accounts.services import token_issue
from agents.services import agent_create
from stories.models import Participant
from stories.services import story_create

n_agents, n_subs = int(os.environ["DRILL_AGENTS"]), int(os.environ["DRILL_SUBSCRIBERS"])
owner = User.objects.create_user("drill-owner", password=None)
stories = [story_create(owner=owner, slug=f"drill-{name}", title=f"Fault drill: {name}")
           for name in os.environ["DRILL_SCENARIOS"].split(",")]
agents = [agent_create(username=f"drill-agent-{i}", capabilities=["narration"], stories=stories)
          for i in range(n_agents)]
subs = User.objects.bulk_create([User(username=f"drill-sub-{i:04d}", password="!") for i in range(n_subs)])
subs = list(User.objects.filter(username__startswith="drill-sub-").order_by("username"))
Participant.objects.bulk_create([Participant(story=s, user=u, role=Participant.Role.VIEWER)
                                 for s in stories for u in subs])
print("DRILL-SETUP " + json.dumps({"agents": [token_issue(user=a, label="drill") for a in agents],
                                   "subscribers": [token_issue(user=u, label="drill") for u in subs]}))
"""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- private PostgreSQL and Redis -------------------------------------------------------------------

def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:`port` (trust auth, user `postgres`), in its own
    temp dir. PostgreSQL refuses to run as root: then initdb and pg_ctl run as the `postgres` user."""

    def __init__(self, workdir: Path | None = None):
        self.initdb, self.pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise RuntimeError("initdb / pg_ctl not found (install PostgreSQL)")
        self.dir = Path(tempfile.mkdtemp(prefix="mythline-pg-", dir=workdir))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chmod(self.dir, 0o700)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", timeout=120)

    def _run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=timeout,
                                cwd=self.dir)
        if check and result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr[-2000:]}"
                               f"{self.log_tail()}")
        return result

    def log_tail(self) -> str:
        path = self.dir / "postgres.log"
        return ("\n" + path.read_text(errors="replace")[-2000:]) if path.exists() else ""

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.dir / "postgres.log"),
                  "-w", "-t", "60", "start", timeout=90)

    def stop(self, mode: str = "fast") -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", timeout=90)

    def running(self) -> bool:
        return self._run(self.pg_ctl, "-D", str(self.data), "status", check=False).returncode == 0

    def remove(self) -> None:
        try:
            if self.data.exists() and self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A `redis-server` on 127.0.0.1:`port` without persistence: a restart starts it empty."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = workdir / "redis.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> None:
        import redis

        with open(self.log_path, "a") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"], stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer PING in {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# --- clients ------------------------------------------------------------------------------------

class Subscriber:
    """One WebSocket client resuming the way the SDK's listener does."""

    def __init__(self, index: int, token: str, servers: list, topic: str):
        self.index, self.token, self.servers, self.topic = index, token, servers, topic
        self.server = index % len(servers)
        self.counts: dict[int, int] = {}  # seq -> times received
        self.received_at: dict[int, float] = {}  # seq -> first receive time
        self.max_seq = 0
        self.dup_within = 0  # the same seq twice on one subscription (the protocol forbids it)
        self.out_of_order = 0
        self.reconnects = 0
        self.subscribed_at: list[float] = []
        self.closes: dict[str, int] = {}
        self.connect_errors: dict[str, int] = {}
        self.stopping = False

    def _count(self, table: dict, key: str) -> None:
        table[key] = table.get(key, 0) + 1

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        attempt = 0
        while not self.stopping:
            server = self.servers[self.server]
            try:
                async with connect(server.ws_base + "/ws/", additional_headers={"Authorization": f"Bearer {self.token}"},
                                   open_timeout=10, ping_interval=None, close_timeout=2, max_size=2 ** 22,
                                   max_queue=None) as ws:
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if welcome.get("type") != "welcome":
                        raise RuntimeError(f"first frame {welcome.get('type')}")
                    beat = float(welcome.get("heartbeat_seconds") or 15)
                    await ws.send(json.dumps({"type": "subscribe", "topic": self.topic, "after": self.max_seq,
                                              "ref": "s"}))
                    seen_here: set[int] = set()
                    last_here = self.max_seq
                    next_beat = time.monotonic() + beat
                    while True:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), max(0.1, next_beat - time.monotonic()))
                        except asyncio.TimeoutError:
                            await ws.send('{"type":"heartbeat"}')
                            next_beat = time.monotonic() + beat
                            continue
                        frame = json.loads(raw)
                        kind = frame.get("type")
                        if kind == "message":
                            seq = frame["message"]["seq"]
                            now = time.time()
                            if seq in seen_here:
                                self.dup_within += 1
                            seen_here.add(seq)
                            if seq <= last_here:
                                self.out_of_order += 1
                            last_here = max(last_here, seq)
                            self.counts[seq] = self.counts.get(seq, 0) + 1
                            self.received_at.setdefault(seq, now)
                            self.max_seq = max(self.max_seq, seq)
                        elif kind == "subscribed" and frame.get("ref") == "s":
                            self.subscribed_at.append(time.time())
                            attempt = 0
                        elif kind == "error" and frame.get("ref") == "s":
                            raise RuntimeError(f"subscribe refused: {frame.get('code')}")
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                self._count(self.closes, str(code))
            except (OSError, asyncio.TimeoutError, InvalidStatus, RuntimeError, json.JSONDecodeError) as exc:
                name = type(exc).__name__
                if isinstance(exc, InvalidStatus):
                    name = f"HTTP {exc.response.status_code}"
                self._count(self.connect_errors, name)
                if isinstance(exc, OSError):  # refused: this server is gone; the balancer picks another
                    self.server = (self.server + 1) % len(self.servers)
            except Exception as exc:  # noqa: BLE001 - counted; a client keeps resuming whatever broke
                self._count(self.connect_errors, f"unexpected {type(exc).__name__}")
            if self.stopping:
                return
            self.reconnects += 1
            delay = min(5.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            await asyncio.sleep(delay)


class Agent:
    """Posts one message at a time at `rate`, retrying each until it is acknowledged."""

    def __init__(self, index: int, token: str, servers: list, story: str, rate: float):
        self.index, self.token, self.servers, self.story, self.rate = index, token, servers, story, rate
        self.server = index % len(servers)
        self.posts: list[dict] = []
        self.statuses: dict[str, int] = {}
        self.retry_after_missing = 0
        self.stopping = False

    async def run(self, client, give_up_after: float) -> None:
        import httpx

        path = f"/api/stories/{self.story}/channels/general/messages"
        start = time.monotonic()
        n = 0
        while not self.stopping:
            due = start + n / self.rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            if self.stopping:
                break
            key = f"drill-{self.index}-{n}-{uuid.uuid4().hex[:8]}"
            body = {"msg_type": "narration", "payload": {"text": f"Agent {self.index} line {n}: {key}"}}
            post = {"key": key, "agent": self.index, "n": n, "sent": time.time(), "ack": None, "status": None,
                    "seq": None, "id": None, "attempts": 0}
            self.posts.append(post)
            n += 1
            attempt = 0
            while post["ack"] is None and time.time() - post["sent"] < give_up_after:
                server = self.servers[self.server]
                post["attempts"] += 1
                wait = None
                try:
                    r = await client.post(server.base_url + path, json=body,
                                          headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key})
                except httpx.TransportError as exc:
                    self.statuses[type(exc).__name__] = self.statuses.get(type(exc).__name__, 0) + 1
                    if isinstance(exc, httpx.ConnectError):  # refused: fail over to the next server
                        self.server = (self.server + 1) % len(self.servers)
                else:
                    self.statuses[str(r.status_code)] = self.statuses.get(str(r.status_code), 0) + 1
                    if r.status_code in (200, 201):
                        data = r.json()
                        post.update(ack=time.time(), status=r.status_code, seq=data["seq"], id=data["id"])
                        break
                    if r.status_code in (429, 503):
                        if r.headers.get("retry-after"):
                            wait = float(r.headers["retry-after"])
                        else:
                            self.retry_after_missing += 1
                    elif r.status_code < 500:
                        post["error"] = r.text[:300]  # final: retrying cannot help
                        break
                delay = wait if wait is not None else min(5.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                await asyncio.sleep(delay)


# --- one scenario -----------------------------------------------------------------------------------

async def drive(scenario: str, args, servers: list, tokens: dict, faults) -> dict:
    import httpx

    story = f"drill-{scenario}"
    topic = f"channel:{story}/general"
    subs = [Subscriber(i, t, servers, topic) for i, t in enumerate(tokens["subscribers"][:args.subscribers])]
    agents = [Agent(i, t, servers, story, args.rate) for i, t in enumerate(tokens["agents"][:args.agents])]
    sub_tasks = [asyncio.create_task(s.run()) for s in subs]
    deadline = time.monotonic() + 60
    while any(not s.subscribed_at for s in subs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(1 for s in subs if not s.subscribed_at)} subscribers never subscribed")
        await asyncio.sleep(0.1)
    log(f"  {len(subs)} subscribers subscribed; {len(agents)} agents posting {args.rate}/s each for {args.seconds}s, "
        f"fault at {args.fault_at}s")
    limits = httpx.Limits(max_connections=len(agents) * 2, max_keepalive_connections=len(agents) * 2)
    timing: dict = {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), limits=limits) as client:
        t0 = time.time()
        agent_tasks = [asyncio.create_task(a.run(client, args.give_up)) for a in agents]
        await asyncio.sleep(args.fault_at)
        timing = await faults(scenario)
        await asyncio.sleep(max(0.0, t0 + args.seconds - time.time()))
        for a in agents:
            a.stopping = True
        await asyncio.wait_for(asyncio.gather(*agent_tasks), args.give_up + 60)
    # The log, from the database.
    rows = read_log(args._pg_url, story)
    last_seq = rows[-1][0] if rows else 0
    drain_start = time.time()
    while time.time() - drain_start < args.drain and any(s.max_seq < last_seq for s in subs):
        await asyncio.sleep(0.2)
    drained_s = time.time() - drain_start
    for s in subs:
        s.stopping = True
    for task in sub_tasks:
        task.cancel()
    await asyncio.gather(*sub_tasks, return_exceptions=True)
    return tally(scenario, args, servers, subs, agents, rows, timing, t0, drained_s)


def read_log(pg_url: str, story: str) -> list[tuple[int, str, str]]:
    """(seq, id, Idempotency-Key text) of every message in the scenario's channel, by seq."""
    import psycopg

    with psycopg.connect(pg_url, connect_timeout=10) as conn:
        return [(seq, str(mid), text) for seq, mid, text in conn.execute(
            "SELECT m.seq, m.id, m.payload->>'text' FROM messaging_message m "
            "JOIN messaging_channel c ON c.id = m.channel_id JOIN stories_story s ON s.id = c.story_id "
            "WHERE s.slug = %s AND c.name = 'general' ORDER BY m.seq", (story,))]


def tally(scenario, args, servers, subs, agents, rows, timing, t0, drained_s) -> dict:
    posts = [p for a in agents for p in a.posts]
    acked = [p for p in posts if p["ack"] is not None]
    by_id = {mid: seq for seq, mid, _ in rows}
    lost = [p for p in acked if by_id.get(p["id"]) != p["seq"]]
    keys_in_log: dict[str, int] = {}
    for _, _, text in rows:
        key = (text or "").rsplit(": ", 1)[-1]
        keys_in_log[key] = keys_in_log.get(key, 0) + 1
    stored_twice = sum(1 for n in keys_in_log.values() if n > 1)
    seqs = [seq for seq, _, _ in rows]
    log_holes = (seqs[-1] - len(seqs)) if seqs else 0
    last_seq = seqs[-1] if seqs else 0
    statuses: dict[str, int] = {}
    for a in agents:
        for k, v in a.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    # Subscribers: every seq of the log, once.
    log_set = set(seqs)
    gaps = [sorted(log_set - set(s.counts)) for s in subs]
    subs_with_gaps = [(s.index, g) for s, g in zip(subs, gaps) if g]
    dup_across = sum(sum(n - 1 for n in s.counts.values()) for s in subs) - sum(s.dup_within for s in subs)
    closes: dict[str, int] = {}
    connect_errors: dict[str, int] = {}
    for s in subs:
        for k, v in s.closes.items():
            closes[k] = closes.get(k, 0) + v
        for k, v in s.connect_errors.items():
            connect_errors[k] = connect_errors.get(k, 0) + v
    # Recovery: the longest stretch without an acknowledgement, the first acknowledgement after the
    # fault ended, and when every subscriber held that message.
    ack_times = sorted(p["ack"] for p in acked)
    stalls = [(b - a, a) for a, b in zip(ack_times, ack_times[1:])]
    longest_stall = max(stalls) if stalls else (None, None)
    fault_end = timing.get("fault_end")
    recovered = {}
    if fault_end is not None:
        after = sorted((p for p in acked if p["ack"] >= fault_end), key=lambda p: p["ack"])
        if after:
            first = after[0]
            got = [s.received_at.get(first["seq"]) for s in subs]
            have = sorted(g - fault_end for g in got if g is not None)
            recovered = {
                "first_ack_after_fault_s": round(first["ack"] - fault_end, 2),
                "first_ack_sent_s": round(first["sent"] - fault_end, 2),
                "all_subscribers_have_it_s": (round(max(got) - fault_end, 2) if all(got) else None),
                "half_the_subscribers_have_it_s": round(have[len(have) // 2], 2) if have else None,
                "subscribers_missing_it": sum(1 for g in got if g is None),
            }
    fault_start = timing.get("fault_start")
    if fault_start is not None:  # live delivery before the fault: ack -> receive, every subscriber
        lat = sorted(s.received_at[p["seq"]] - p["ack"] for p in acked if p["ack"] < fault_start - 1
                     for s in subs if p["seq"] in s.received_at)
        if lat:
            recovered["latency_before_fault_p50_s"] = round(lat[len(lat) // 2], 3)
            recovered["latency_before_fault_p99_s"] = round(lat[int(len(lat) * 0.99)], 3)
        resubscribed = sorted(min(t for t in s.subscribed_at if t > fault_start) - fault_start
                              for s in subs if any(t > fault_start for t in s.subscribed_at))
        if resubscribed:
            recovered["resubscribed_p50_s"] = round(resubscribed[len(resubscribed) // 2], 2)
            recovered["resubscribed_max_s"] = round(resubscribed[-1], 2)
    result = {
        "scenario": scenario,
        "servers": len(servers),
        "agents": len(agents),
        "rate_per_agent": args.rate,
        "subscribers": len(subs),
        "seconds": args.seconds,
        "fault": {k: (round(v - t0, 2) if isinstance(v, float) else v) for k, v in timing.items()},
        "posted": len(posts),
        "acknowledged": len(acked),
        "acknowledged_201": sum(1 for p in acked if p["status"] == 201),
        "acknowledged_200_repeat": sum(1 for p in acked if p["status"] == 200),
        "unacknowledged": len(posts) - len(acked),
        "final_errors": sorted({p.get("error", "")[:120] for p in posts if p.get("error")}),
        "lost": len(lost),
        "lost_examples": [{"key": p["key"], "seq": p["seq"], "id": p["id"]} for p in lost[:5]],
        "log_messages": len(rows),
        "log_last_seq": last_seq,
        "log_holes": log_holes,
        "stored_twice": stored_twice,
        "responses": dict(sorted(statuses.items())),
        "responses_503": statuses.get("503", 0),
        "responses_503_without_retry_after": sum(a.retry_after_missing for a in agents),
        "retries": sum(p["attempts"] - 1 for p in posts),
        "subscriber_gaps": sum(len(g) for g in gaps),
        "subscribers_with_gaps": len(subs_with_gaps),
        "gap_examples": [{"subscriber": i, "missing": g[:10], "count": len(g)} for i, g in subs_with_gaps[:5]],
        "duplicates_within_subscription": sum(s.dup_within for s in subs),
        "duplicates_across_resumes": dup_across,
        "out_of_order": sum(s.out_of_order for s in subs),
        "reconnects": sum(s.reconnects for s in subs),
        "subscribers_reconnected": sum(1 for s in subs if s.reconnects),
        "ws_closes": dict(sorted(closes.items())),
        "ws_connect_errors": dict(sorted(connect_errors.items())),
        "longest_ack_stall_s": round(longest_stall[0], 2) if longest_stall[0] is not None else None,
        "longest_ack_stall_from_s": round(longest_stall[1] - t0, 2) if longest_stall[1] is not None else None,
        "drain_s": round(drained_s, 2),
        **recovered,
    }
    return result


def summary(r: dict) -> str:
    f = r["fault"]
    lines = [
        f"== {r['scenario']}: {r['servers']} servers, {r['agents']} agents x {r['rate_per_agent']}/s, "
        f"{r['subscribers']} subscribers, {r['seconds']}s; fault {json.dumps(f)}",
        f"  posted {r['posted']}, acknowledged {r['acknowledged']} ({r['acknowledged_201']} x 201, "
        f"{r['acknowledged_200_repeat']} x 200 repeat), lost {r['lost']}, stored twice {r['stored_twice']}, "
        f"log {r['log_messages']} messages up to seq {r['log_last_seq']} ({r['log_holes']} holes)",
        f"  responses {r['responses']}; 503s {r['responses_503']} "
        f"({r['responses_503_without_retry_after']} without Retry-After); retries {r['retries']}",
        f"  subscribers: gaps {r['subscriber_gaps']} (in {r['subscribers_with_gaps']}), duplicates "
        f"{r['duplicates_within_subscription']} within a subscription / {r['duplicates_across_resumes']} across "
        f"resumes, out of order {r['out_of_order']}; reconnects {r['reconnects']} "
        f"({r['subscribers_reconnected']} subscribers), closes {r['ws_closes']}, connect errors {r['ws_connect_errors']}",
        f"  recovery: longest stretch without an ack {r['longest_ack_stall_s']}s (from t={r['longest_ack_stall_from_s']}s); "
        f"first ack {r.get('first_ack_after_fault_s')}s after the fault ended, every subscriber had it "
        f"{r.get('all_subscribers_have_it_s')}s after (half {r.get('half_the_subscribers_have_it_s')}s); "
        f"resubscribed after the fault p50 {r.get('resubscribed_p50_s')}s, max {r.get('resubscribed_max_s')}s; "
        f"drain {r['drain_s']}s; before the fault ack->receive p50 {r.get('latency_before_fault_p50_s')}s "
        f"p99 {r.get('latency_before_fault_p99_s')}s",
    ]
    if r["gap_examples"]:
        lines.append(f"  gap examples: {r['gap_examples']}")
    if r["lost_examples"]:
        lines.append(f"  LOST: {r['lost_examples']}")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------------

def run(args, cleanup: list) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix="mythline-faults-"))
    if args.keep_logs:
        log(f"server logs kept in {workdir}")
    else:
        cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]

    log(f"private PostgreSQL and Redis in {workdir}")
    pg = PrivatePostgres()
    cleanup.append(pg.remove)
    pg.start()
    redis_server = PrivateRedis(workdir)
    cleanup.append(redis_server.stop)
    redis_server.start()
    args._pg_url = pg.url

    env = django_env(workdir, pg.url, SERVER_ENV, REDIS_URL=redis_server.url, SECRET_KEY=uuid.uuid4().hex * 2,
                     MYTHLINE_REDIS_PREFIX="drill", PYTHONUNBUFFERED="1")
    log("migrate + setup")
    manage(env, "migrate", "--noinput")
    out = manage({**env, "DRILL_AGENTS": str(args.agents), "DRILL_SUBSCRIBERS": str(args.subscribers),
                  "DRILL_SCENARIOS": ",".join(scenarios)}, "shell", "-c", SETUP_SCRIPT)
    tokens = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("DRILL-SETUP "))[12:])

    results = []
    for scenario in scenarios:
        log(f"[{scenario}]")
        servers = []
        for i in range(SERVERS[scenario]):
            server = Server("uvicorn", env, workdir, f"{scenario}-{i}")
            cleanup.append(server.stop)
            servers.append(server)
        for server in servers:
            server.wait_healthy()

        async def faults(name: str, servers=servers) -> dict:
            t = {"fault_start": time.time()}
            if name == "redis":
                log(f"  stopping Redis for {args.redis_down}s")
                await asyncio.to_thread(redis_server.stop)
                t["down_at"] = time.time()
                await asyncio.sleep(args.redis_down)
                await asyncio.to_thread(redis_server.start)
            elif name == "postgres":
                log(f"  pg_ctl stop -m fast; starting again after {args.pg_down}s")
                await asyncio.to_thread(pg.stop, "fast")
                t["down_at"] = time.time()
                await asyncio.sleep(args.pg_down)
                await asyncio.to_thread(pg.start)
            elif name == "sigkill":
                victim = servers[0]
                log(f"  SIGKILL server 0 (pid {victim.proc.pid})")
                os.killpg(victim.proc.pid, signal.SIGKILL)
                victim.proc.wait(10)
            t["fault_end"] = time.time()
            log(f"  fault over after {t['fault_end'] - t['fault_start']:.1f}s")
            return t

        result = asyncio.run(drive(scenario, args, servers, tokens, faults))
        result["server_log_errors"] = {s.log_path.name: s.log_tail(100000).count("Traceback") for s in servers}
        for server in servers:
            server.stop()
        print(summary(result), flush=True)
        results.append(result)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--agents", type=int, default=4, help="agents posting (default 4)")
    parser.add_argument("--rate", type=float, default=2.0, help="messages/s per agent (default 2)")
    parser.add_argument("--subscribers", type=int, default=200, help="WebSocket subscribers (default 200)")
    parser.add_argument("--seconds", type=float, default=40.0, help="posting time per scenario (default 40)")
    parser.add_argument("--fault-at", type=float, default=10.0, help="seconds into the load (default 10)")
    parser.add_argument("--redis-down", type=float, default=5.0, help="seconds Redis stays down (default 5)")
    parser.add_argument("--pg-down", type=float, default=15.0,
                        help="seconds PostgreSQL stays down (default 15: longer than the 10 s pool timeout)")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds subscribers get to catch up (default 60)")
    parser.add_argument("--give-up", type=float, default=120.0, help="an agent gives up a message after (default 120)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "faults.json"))
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the server and Redis logs")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _on_sigterm)
    cleanup: list = []
    started = datetime.now(timezone.utc)
    try:
        results = run(args, cleanup)
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}); cleaning up")
        return 130
    finally:
        for step in reversed(cleanup):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep cleaning
                log(f"cleanup step failed: {exc!r}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"started": started.isoformat(timespec="seconds"), "machine": {
        "python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "results": results}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {out}")
    bad = [r["scenario"] for r in results if r["lost"] or r["subscriber_gaps"] or r["stored_twice"]
           or r["log_holes"] or r["duplicates_within_subscription"]]
    if bad:
        log(f"FAILED: {', '.join(bad)} lost, duplicated or left a gap")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
