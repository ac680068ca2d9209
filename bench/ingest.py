#!/usr/bin/env python
"""Ingest benchmark: N concurrent agents posting messages over REST to a real server.

    .venv/bin/python bench/ingest.py --db both            # SQLite and Postgres, N = 1, 8, 32, 10 s each
    .venv/bin/python bench/ingest.py --db sqlite --agents 8 --seconds 3
    .venv/bin/python bench/ingest.py --db both --agents 8 --batch 100   # + batch posts of 100 messages

For each database the script builds everything from scratch and tears it down at the end:

1. a fresh temp dir (MYTHLINE_VAR_DIR: the SQLite file, static root, server log); for Postgres a
   database `mythline_bench` (dropped and recreated on every run, so runs are comparable);
2. `manage.py migrate`, then `manage.py shell -c` creates the story `bench` (owner `bench-owner`),
   a public channel `bench-baseline` and max(N) agents through the `create_agent` command;
3. the server (`uvicorn`, or `daphne` with --server; --workers N processes) as a subprocess, with rate
   limits raised out of the way (MYTHLINE_POST_RATE=100000/s, MYTHLINE_POST_BURST=100000, the same
   for reads) and MYTHLINE_BENCH_BASELINE=1, which mounts the baseline view (bench/baseline.py);
4. for each N: N agents, one httpx.AsyncClient each (HTTP/1.1 keep-alive, one connection), post
   `{"msg_type": "narration", "payload": {"text": ...}}` to the story's `general` channel in a loop
   ("ours"), and N more post the same body to the baseline view ("baseline": a bare Django view
   that inserts the same Message row, see bench/baseline.py); after a short unrecorded warm-up the
   two sides take turns in --rounds slices of --seconds in all, so both see the same machine;
   with --batch K two more sides take their turns: "batch", each agent posting K messages per
   request to `.../messages/batch`, and "baseline-batch", the bare view storing K rows per
   request with one bulk INSERT; their rates count messages, not requests;
5. posts/s, p50/p99 latency, errors, and CPU per post of the server (and of Postgres, and what
   else kept the machine busy); the queries one post costs (counted in-process with
   CaptureQueriesContext); a check that the `general` channel's seqs are gapless.

The load generator and the server share the machine (2 cores here): the client is kept light (plain
httpx async, one event loop) and its own CPU time is reported too. Output: a Markdown table on
stdout and a JSON file under bench/results/ (gitignored). Only 127.0.0.1 is contacted; every loop is
bounded by time and count; every process, temp dir and database the script made is removed on exit,
Ctrl-C included.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (CLK_TCK, DEFAULT_PG_URL, RESULTS_DIR, ROOT, Server, _on_sigterm,  # noqa: E402
                          _proc_stat, connections_by_process, django_env, machine_busy_seconds, manage,
                          percentile, pg_recreate, pg_url_with_db, proc_cpu_seconds, redis_cleanup, run_meta,
                          run_saving, server_processes)

STORY, CHANNEL, BASELINE_CHANNEL = "bench", "general", "bench-baseline"
MAX_REQUESTS_PER_AGENT = 1_000_000  # a hard bound besides the clock

# Rate limits far above anything two cores can do, so the throttle never answers 429.
SERVER_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(50),  # a key per run: with DEBUG off the development key is refused
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",  # the in-process baseline uses Django's test client
    "MYTHLINE_POST_RATE": "100000/s", "MYTHLINE_POST_BURST": "100000",
    "MYTHLINE_WRITE_RATE": "100000/s", "MYTHLINE_WRITE_BURST": "100000",
    "MYTHLINE_READ_RATE": "100000/s", "MYTHLINE_READ_BURST": "100000",
    "MYTHLINE_BENCH_BASELINE": "1",
    "DEBUG": "0",
    "LOG_LEVEL": "WARNING",
}

SETUP_SCRIPT = r"""
import io, json, os
from django.core.management import call_command
from accounts.models import User
from messaging.models import Channel
from messaging.services import channel_create
from stories.services import story_create

owner = User.objects.create_user("bench-owner", password=None)
story = story_create(owner=owner, slug="%(story)s", title="Ingest benchmark")
base = channel_create(story=story, creator=owner, name="%(baseline)s", kind="public")
agents = []
for i in range(int(os.environ["BENCH_AGENTS"])):
    name = f"bench-agent-{i:02d}"
    out = io.StringIO()
    call_command("create_agent", name, story=[story.slug], stdout=out, stderr=io.StringIO())
    agents.append({"username": name, "id": User.objects.get(username=name).pk,
                   "token": out.getvalue().strip().splitlines()[-1]})
general = Channel.objects.get(story=story, name="%(channel)s")
print("BENCH-SETUP " + json.dumps({"story_id": story.pk, "channel_id": general.pk,
                                   "baseline_channel_id": base.pk, "agents": agents}))
""" % {"story": STORY, "channel": CHANNEL, "baseline": BASELINE_CHANNEL}

# Counts the queries of one post through each path, in-process (the same code the server runs).
QUERIES_SCRIPT = r"""
import json, os
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

token, story_id, sender_id, base_id = (os.environ["BENCH_TOKEN"], os.environ["BENCH_STORY_ID"],
                                       os.environ["BENCH_SENDER_ID"], os.environ["BENCH_BASELINE_ID"])
client = Client()
out = {}
for name, url, headers in (
        ("ours", "/api/stories/%(story)s/channels/%(channel)s/messages", {"HTTP_AUTHORIZATION": "Bearer " + token}),
        ("baseline", f"/bench/baseline/{base_id}?story={story_id}&sender={sender_id}", {})):
    for text in ("warming up: token last_used_at, caches", "counting the queries of one post"):
        body = json.dumps({"msg_type": "narration", "payload": {"text": f"{name} {text}"}})
        with CaptureQueriesContext(connection) as ctx:
            response = client.post(url, body, content_type="application/json", **headers)
        assert response.status_code == 201, (name, response.status_code, response.content[:300])
    out[name] = [q["sql"] for q in ctx.captured_queries]
print("BENCH-QUERIES " + json.dumps(out))
""" % {"story": STORY, "channel": CHANNEL}

CHECK_SCRIPT = r"""
import json
from django.db.models import Count, Max, Min
from messaging.models import Channel, Message

channel = Channel.objects.get(story__slug="%(story)s", name="%(channel)s")
agg = Message.objects.filter(channel=channel).aggregate(n=Count("id"), lo=Min("seq"), hi=Max("seq"))
print("BENCH-CHECK " + json.dumps({"messages": agg["n"], "min_seq": agg["lo"], "max_seq": agg["hi"],
                                   "last_seq": channel.last_seq,
                                   "gapless": agg["n"] == channel.last_seq == (agg["hi"] or 0) and (agg["lo"] or 1) == 1}))
""" % {"story": STORY, "channel": CHANNEL}


# --- processes and databases ----------------------------------------------------------------

def shell_json(env: dict, script: str, marker: str, extra_env: dict | None = None) -> dict:
    out = manage({**env, **(extra_env or {})}, "shell", "-c", script)
    for line in reversed(out.splitlines()):
        if line.startswith(marker + " "):
            return json.loads(line[len(marker) + 1:])
    raise RuntimeError(f"no {marker} line in:\n{out[-2000:]}")


def postgres_cpu_seconds() -> float:
    """CPU of the local Postgres: every live `postgres` process, plus what the postmaster's exited
    children used (Django's CONN_MAX_AGE=0 means one short-lived backend per request).

    It is the whole cluster: anything else using the same server meanwhile is counted too.
    """
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        fields = _proc_stat(int(entry.name))
        if fields is None:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        try:
            parent_is_postgres = Path(f"/proc/{fields[1]}/comm").read_text().strip() == "postgres"
        except OSError:
            parent_is_postgres = False
        if not parent_is_postgres:  # the postmaster: add its reaped children (cutime + cstime)
            total += (int(fields[13]) + int(fields[14])) / CLK_TCK
    return total


PG_ACTIVITY_SCRIPT = r"""
import json, select, sys, psycopg
url, dbname = sys.argv[1], sys.argv[2]
n = waiting = idle_in_transaction = active = 0
with psycopg.connect(url, autocommit=True) as conn:
    while not select.select([sys.stdin], [], [], 0.01)[0]:  # until the parent writes a line
        rows = conn.execute("SELECT state, wait_event_type FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", [dbname]).fetchall()
        n += 1
        for state, wait in rows:
            waiting += wait == "Lock"
            idle_in_transaction += state == "idle in transaction"
            active += state == "active" and wait != "Lock"
print(json.dumps([n, waiting, idle_in_transaction, active]))
"""


class PgActivity:
    """Samples pg_stat_activity of the bench database every 10 ms while a slice runs (in a process
    of its own, off the load generator's GIL): how many backends wait for a lock (posts to one
    channel queue on its row lock: the gapless seq) and how many sit idle in a transaction (a
    transaction waiting for its process: with the lock held, every other post of the channel waits
    for that process too)."""

    def __init__(self, url: str, dbname: str):
        self.url, self.dbname = url, dbname
        self.totals = [0, 0, 0, 0]  # samples, waiting, idle in transaction, active
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-c", PG_ACTIVITY_SCRIPT, self.url, self.dbname],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            out, _ = proc.communicate("stop\n", timeout=30)
        except (subprocess.TimeoutExpired, OSError):
            proc.kill()
            proc.wait(10)
            raise RuntimeError("the pg_stat_activity sampler did not stop") from None
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the pg_stat_activity sampler failed (exit code {proc.returncode})")
        self.totals = [a + b for a, b in zip(self.totals, json.loads(lines[-1]))]

    def means(self) -> dict:
        n, waiting, idle, active = self.totals
        n = n or 1
        return {"samples": self.totals[0], "lock_waiting": round(waiting / n, 3),
                "idle_in_transaction": round(idle / n, 3), "active": round(active / n, 3)}


class Profiler:
    """Optional: py-spy records the server (GIL-holding samples, collapsed stacks) during an extra
    phase of ours alone at the largest N, after the measured rounds."""

    def __init__(self, py_spy: str | None):
        self.py_spy = py_spy
        self.proc = None

    def start(self, pid: int, seconds: float, out: Path):
        if not self.py_spy:
            return
        self.proc = subprocess.Popen([self.py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                      "--rate", "200", "--format", "raw", "--gil", "--output", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.proc = None

    def wait(self):
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            self.proc = None


# --- load -------------------------------------------------------------------------------------

def narration(agent_no: int, i: int) -> dict:
    # Every text differs in its letters, not only its numbers: the loop-prevention policies
    # (messaging/loops.py) refuse an agent's repeated or near-identical payloads, as they should.
    return {"msg_type": "narration", "payload": {"text": f"Agent {agent_no} tells part {i} of the tale: {uuid.uuid4().hex}."}}


def stored_count(response: httpx.Response, batch: int) -> int:
    """Messages a 2xx answer stored: 1 for a post; for a batch, its items answered 201 (ours) or
    `stored` (the bare bulk insert)."""
    if not batch:
        return 1
    body = response.json()
    if "stored" in body:
        return body["stored"]
    return sum(1 for item in body["results"] if item["status"] == 201)


async def agent_loop(client: httpx.AsyncClient, url: str, agent_no: int, deadline: float, latencies: list | None,
                     errors: dict, batch: int = 0) -> int:
    """Post until the deadline, one request in flight: a message, or `batch` messages in one request.
    Returns the messages stored."""
    ok = 0
    for i in range(MAX_REQUESTS_PER_AGENT):
        if time.perf_counter() >= deadline:
            break
        if batch:
            body = {"messages": [narration(agent_no, i * batch + k) for k in range(batch)]}
        else:
            body = narration(agent_no, i)
        started = time.perf_counter()
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            await asyncio.sleep(0.05)
            continue
        elapsed = time.perf_counter() - started
        if response.status_code in (200, 201):
            stored = stored_count(response, batch)
            ok += stored
            if stored < (batch or 1):
                errors["item"] = errors.get("item", 0) + (batch or 1) - stored
            if latencies is not None:
                latencies.append(elapsed)
        else:
            errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
    return ok


class Side:
    """One side of the comparison at one N: its clients and its tallies. `kind`: 'ours' (a post per
    request), 'baseline' (the bare view, a row per request), 'batch' (ours, `batch` messages per
    request) or 'baseline-batch' (the bare view's bulk insert of `batch` rows)."""

    def __init__(self, server: Server, kind: str, agents: list[dict], setup: dict, batch: int = 0):
        self.kind = kind
        self.batch = batch if kind.endswith("batch") else 0
        self.clients, self.urls = [], []
        for agent in agents:
            if kind in ("ours", "batch"):
                url = f"/api/stories/{STORY}/channels/{CHANNEL}/messages" + ("/batch" if self.batch else "")
                headers = {"Authorization": f"Bearer {agent['token']}"}
            else:
                url = f"/bench/baseline/{setup['baseline_channel_id']}?story={setup['story_id']}&sender={agent['id']}"
                headers = {}
            # One plain HTTP/1.1 keep-alive connection per agent, as a real agent would hold.
            self.clients.append(httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30.0,
                                                  limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)))
            self.urls.append(url)
        self.posts = 0
        self.wall = 0.0
        self.latencies: list[float] = []
        self.errors: dict = {}
        self.cpu = {"server": 0.0, "client": 0.0, "postgres": 0.0, "machine": 0.0}
        self.worker_cpu: dict[int, float] = {}  # per serving process
        self.worker_connections: dict[int, int] = {}
        self.pg: PgActivity | None = None

    async def run(self, seconds: float, *, record: bool = True) -> None:
        deadline = time.perf_counter() + seconds
        latencies = self.latencies if record else None
        errors = self.errors if record else {}
        counts = await asyncio.gather(*(agent_loop(c, u, i, deadline, latencies, errors, self.batch)
                                        for i, (c, u) in enumerate(zip(self.clients, self.urls))))
        if record:
            self.posts += sum(counts)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients), return_exceptions=True)

    def result(self, n: int) -> dict:
        posts, wall = self.posts, self.wall
        latencies = sorted(self.latencies)
        def per_post(cpu):
            return round(cpu * 1000 / posts, 3) if posts and cpu is not None else None
        cpu = self.cpu
        return {
            "kind": self.kind, "agents": n, "batch": self.batch, "seconds": round(wall, 3), "posts": posts,
            "posts_per_s": round(posts / wall, 1) if wall else 0.0,
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
            "errors": self.errors,
            "server_cpu_ms_per_post": per_post(cpu["server"]),
            # All of Postgres, shared with anything else that uses the same cluster meanwhile.
            "postgres_cpu_ms_per_post": per_post(cpu["postgres"]) if cpu["postgres"] else None,
            "client_cpu_ms_per_post": per_post(cpu["client"]),
            # Everything on the machine, in cores (2.0 = both cores of this machine busy), and what
            # was neither the server, nor the client, nor Postgres: other work on a shared machine.
            "machine_busy_cores": round(cpu["machine"] / wall, 2) if wall else None,
            "others_busy_cores": round((cpu["machine"] - cpu["server"] - cpu["client"] - cpu["postgres"]) / wall, 2)
            if wall else None,
            # Each serving process: its cores and the agents' connections it holds (most busy first).
            "workers": sorted(({"cores": round(c / wall, 2) if wall else None,
                                "connections": self.worker_connections.get(pid, 0)}
                               for pid, c in self.worker_cpu.items()), key=lambda w: -(w["cores"] or 0)),
            "pg_activity": self.pg.means() if self.pg is not None else None,
        }


def cpu_snapshot(server: Server, with_pg: bool) -> dict:
    return {"server": server.cpu_seconds() or 0.0, "client": time.process_time(),
            "postgres": postgres_cpu_seconds() if with_pg else 0.0, "machine": machine_busy_seconds()}


async def run_level(server: Server, *, n: int, agents: list[dict], setup: dict, seconds: float, warmup: float,
                    rounds: int, with_baseline: bool, with_pg: bool, profiler: Profiler | None = None,
                    profile_out: Path | None = None, batch: int = 0,
                    pg_activity: tuple[str, str] | None = None) -> list[dict]:
    """Both sides at N agents, in `rounds` alternating slices (ours, baseline, baseline, ours, ...)

    so both see the same machine: on a shared 2-core box, other work comes and goes by the second.
    """
    sides = [Side(server, "ours", agents[:n], setup)]
    if with_baseline:
        sides.append(Side(server, "baseline", agents[:n], setup))
    if batch:
        sides.append(Side(server, "batch", agents[:n], setup, batch))
        if with_baseline:
            sides.append(Side(server, "baseline-batch", agents[:n], setup, batch))
    try:
        if warmup > 0:
            for side in sides:
                await side.run(warmup, record=False)
        slice_seconds = seconds / rounds
        for r in range(rounds):
            for side in (sides if r % 2 == 0 else sides[::-1]):
                pids = server_processes(server)
                before = cpu_snapshot(server, with_pg)
                before_workers = {pid: proc_cpu_seconds(pid) for pid in pids}
                if pg_activity is not None:
                    side.pg = side.pg or PgActivity(*pg_activity)
                    side.pg.start()
                started = time.perf_counter()
                try:
                    await side.run(slice_seconds)
                finally:
                    side.wall += time.perf_counter() - started
                    if side.pg is not None:
                        side.pg.stop()
                after = cpu_snapshot(server, with_pg)
                for key in side.cpu:
                    side.cpu[key] += after[key] - before[key]
                for pid, cpu in before_workers.items():
                    now = proc_cpu_seconds(pid)
                    if cpu is not None and now is not None:
                        side.worker_cpu[pid] = side.worker_cpu.get(pid, 0.0) + now - cpu
                side.worker_connections = connections_by_process(pids, server.port)  # open between slices
                if server.proc.poll() is not None:
                    raise RuntimeError(f"{server.kind} died:\n{server.log_tail()}")
        if profiler is not None and profile_out is not None:
            # An extra, unrecorded phase of ours alone, sampled by py-spy (which slows the server).
            profiler.start(server.proc.pid, seconds, profile_out)
            await sides[0].run(seconds, record=False)
            profiler.wait()
    finally:
        if profiler is not None:
            profiler.stop()
        for side in sides:
            await side.aclose()
    return [side.result(n) for side in sides]


# --- one database -----------------------------------------------------------------------------

def bench_database(db: str, args, cleanup: list) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"mythline-bench-{db}-"))
    cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    if db == "sqlite":
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    else:
        database_url = pg_url_with_db(args.pg_url, args.pg_db)
        pg_recreate(args.pg_url, args.pg_db)
        if not args.keep:
            cleanup.append(lambda: pg_recreate(args.pg_url, args.pg_db, drop_only=True))
    env = django_env(workdir, database_url, SERVER_ENV)
    if args.no_housekeeping:
        env["MYTHLINE_ARCHIVE_SWEEP_SECONDS"] = "0"
    if args.workers > 1 or args.redis:  # processes share what one keeps in memory through Redis, as deployed
        # The bare view numbers its rows with a counter of its process: it runs in one process only.
        args.no_baseline = args.no_baseline or args.workers > 1
        prefix = f"mythline-bench-ingest-{uuid.uuid4().hex[:8]}"
        env.update(REDIS_URL=args.redis_url, MYTHLINE_REDIS_PREFIX=prefix)
        cleanup.append(lambda: redis_cleanup(args.redis_url, prefix))

    print(f"[{db}] migrate + setup ({max(args.agents)} agents) in {workdir}", file=sys.stderr)
    manage(env, "migrate", "--noinput")
    setup = shell_json(env, SETUP_SCRIPT, "BENCH-SETUP", {"BENCH_AGENTS": str(max(args.agents))})
    agents = setup["agents"]
    first = agents[0]
    queries = shell_json(env, QUERIES_SCRIPT, "BENCH-QUERIES", {
        "BENCH_TOKEN": first["token"], "BENCH_STORY_ID": str(setup["story_id"]),
        "BENCH_SENDER_ID": str(first["id"]), "BENCH_BASELINE_ID": str(setup["baseline_channel_id"])})

    server = Server(args.server, env, workdir, args.server, workers=args.workers)
    cleanup.append(server.stop)
    server.wait_healthy()
    print(f"[{db}] {server.kind} on {server.base_url} (pid {server.proc.pid})", file=sys.stderr)
    profiler = Profiler(args.py_spy)
    runs = []
    try:
        for n in args.agents:
            profile_out = None
            if args.py_spy and n == max(args.agents):
                RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                profile_out = RESULTS_DIR / f"profile-{db}-n{n}-{datetime.now():%Y%m%d-%H%M%S}.txt"
            results = asyncio.run(run_level(server, n=n, agents=agents, setup=setup, seconds=args.seconds,
                                            warmup=args.warmup, rounds=args.rounds,
                                            with_baseline=not args.no_baseline, with_pg=db == "postgres",
                                            profiler=profiler, profile_out=profile_out, batch=args.batch,
                                            pg_activity=(args.pg_url, args.pg_db) if db == "postgres"
                                            and args.pg_activity else None))
            for result in results:
                if profile_out is not None:
                    result["profile"] = str(profile_out.relative_to(ROOT))
                result["db"] = db
                runs.append(result)
                print(f"[{db}] N={n:<3} {result['kind']:<8} {result['posts_per_s']:>8} posts/s"
                      f"  p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  errors {result['errors'] or 0}"
                      f"  server {result['server_cpu_ms_per_post']} ms CPU/post"
                      f"  (machine busy {result['machine_busy_cores']} cores, others {result['others_busy_cores']})"
                      + (f"  workers' cores {'/'.join(str(w['cores']) for w in result['workers'])}, connections "
                         f"{'/'.join(str(w['connections']) for w in result['workers'])}" if args.workers > 1 else "")
                      + (f"  pg: waiting for a lock {result['pg_activity']['lock_waiting']}, idle in transaction "
                         f"{result['pg_activity']['idle_in_transaction']}, active {result['pg_activity']['active']}"
                         if result["pg_activity"] else ""),
                      file=sys.stderr)
    finally:
        server.stop()
    check = shell_json(env, CHECK_SCRIPT, "BENCH-CHECK")
    return {"db": db, "database_url": database_url.replace(str(workdir), "<tmp>"), "runs": runs,
            "queries_per_post": {k: len(v) for k, v in queries.items()}, "queries": queries,
            "seq_check": check}


# --- report -----------------------------------------------------------------------------------

def ratio(a, b, digits=2):
    return round(a / b, digits) if a is not None and b else None


def summarize(results: list[dict]) -> list[dict]:
    rows = []
    for result in results:
        by = {(r["kind"], r["agents"]): r for r in result["runs"]}
        for n in sorted({r["agents"] for r in result["runs"]}):
            ours, base = by.get(("ours", n)), by.get(("baseline", n))
            batch, base_batch = by.get(("batch", n)), by.get(("baseline-batch", n))
            rows.append({
                "db": result["db"], "agents": n, "ours": ours, "baseline": base,
                "throughput_ratio": ratio(ours["posts_per_s"], base["posts_per_s"]) if base else None,
                "p50_ratio": ratio(ours["p50_ms"], base["p50_ms"]) if base else None,
                "cpu_ratio": ratio(ours["server_cpu_ms_per_post"], base["server_cpu_ms_per_post"]) if base else None,
                "batch": batch, "baseline_batch": base_batch,
                "batch_ratio": ratio(batch["posts_per_s"], ours["posts_per_s"], 1) if batch else None,
                "batch_cpu_ratio": ratio(ours["server_cpu_ms_per_post"], batch["server_cpu_ms_per_post"], 1)
                if batch else None,
                "batch_vs_bare": ratio(batch["posts_per_s"], base_batch["posts_per_s"]) if batch and base_batch
                else None,
            })
    return rows


def fmt(value, suffix=""):
    return "–" if value is None else f"{value:g}{suffix}" if isinstance(value, (int, float)) else str(value)


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| DB | N | ours posts/s | baseline posts/s | ours/baseline posts/s | ours p50 ms | baseline p50 ms "
        "| ours/baseline p50 | ours p99 ms | baseline p99 ms | server CPU ms/post (ours / baseline) | errors "
        "| other load (cores) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        o, b = row["ours"], row["baseline"] or {}
        cpu = f"{fmt(o['server_cpu_ms_per_post'])} / {fmt(b.get('server_cpu_ms_per_post'))}"
        errors = sum(o["errors"].values()) + sum((b.get("errors") or {}).values())
        others = max((r["others_busy_cores"] for r in (o, b) if r and r.get("others_busy_cores") is not None),
                     default=None)
        lines.append(
            f"| {row['db']} | {row['agents']} | {fmt(o['posts_per_s'])} | {fmt(b.get('posts_per_s'))} "
            f"| **{fmt(row['throughput_ratio'])}** | {fmt(o['p50_ms'])} | {fmt(b.get('p50_ms'))} "
            f"| {fmt(row['p50_ratio'])} | {fmt(o['p99_ms'])} | {fmt(b.get('p99_ms'))} | {cpu} | {errors} "
            f"| {fmt(others)} |")
    if any(row["batch"] for row in rows):
        lines += ["", "| DB | N | batch | ours single msg/s | ours batch msg/s | **batch / single msg/s** "
                  "| server CPU ms/msg single / batch (ratio) | bare bulk insert msg/s | ours batch / bare bulk "
                  "| batch p50 / p99 ms per request | errors |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for row in rows:
            o, b, bb = row["ours"], row["batch"], row["baseline_batch"] or {}
            if not b:
                continue
            lines.append(
                f"| {row['db']} | {row['agents']} | {b['batch']} | {fmt(o['posts_per_s'])} | {fmt(b['posts_per_s'])} "
                f"| **{fmt(row['batch_ratio'])}** | {fmt(o['server_cpu_ms_per_post'])} / "
                f"{fmt(b['server_cpu_ms_per_post'])} ({fmt(row['batch_cpu_ratio'])}) | {fmt(bb.get('posts_per_s'))} "
                f"| {fmt(row['batch_vs_bare'])} | {fmt(b['p50_ms'])} / {fmt(b['p99_ms'])} "
                f"| {sum(b['errors'].values()) + sum((bb.get('errors') or {}).values())} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--agents", default="1,8,32", help="comma-separated concurrency levels (default 1,8,32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per N and side (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="unrecorded seconds per side before each N (default 1)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="split --seconds into this many slices, alternating ours and baseline (default 5)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help=f"an existing Postgres database to connect to for DROP/CREATE (default {DEFAULT_PG_URL})")
    parser.add_argument("--pg-db", default="mythline_bench", help="the database the bench recreates (default mythline_bench)")
    parser.add_argument("--keep", action="store_true", help="keep the Postgres bench database at the end")
    parser.add_argument("--no-baseline", action="store_true", help="only measure the real endpoint")
    parser.add_argument("--batch", type=int, default=0, metavar="K",
                        help="also post K messages per request to .../messages/batch (and K rows per request to "
                             "the bare view's bulk insert); 0: single posts only (default)")
    parser.add_argument("--server", choices=["uvicorn", "daphne", "uvicorn-shared"], default="uvicorn",
                        help="uvicorn (default; several --workers as `manage.py serve` runs them, each on its own "
                             "SO_REUSEPORT socket), daphne, or uvicorn-shared: `uvicorn --workers N`, one socket")
    parser.add_argument("--pg-activity", action="store_true",
                        help="Postgres: sample pg_stat_activity every 10 ms during the measured slices (backends "
                             "waiting for a lock, idle in a transaction, active); its own backend's CPU counts in "
                             "Postgres's, so compare CPU figures only between runs that both had it")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (uvicorn only; default 1); more than one use Redis (--redis-url) "
                             "and run without the baseline (its seq counter is per process)")
    parser.add_argument("--redis", action="store_true", help="use Redis (--redis-url) with one worker too")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-housekeeping", action="store_true", help="turn the idle-archive sweep off in the server")
    parser.add_argument("--py-spy", metavar="PATH",
                        help="py-spy binary: after the largest N, record the server during an extra, unrecorded "
                             "phase of ours alone (bench/results/profile-*.txt, collapsed stacks)")
    parser.add_argument("--out", type=Path, help="result JSON (default bench/results/ingest-<time>.json)")
    args = parser.parse_args(argv)
    args.agents = sorted({int(a) for a in args.agents.split(",") if a.strip()})
    if not args.agents or min(args.agents) < 1 or max(args.agents) > 200:
        parser.error("--agents: 1..200")
    if not 0 < args.seconds <= 600:
        parser.error("--seconds: 0 < s <= 600")
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds: 1..100")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    meta = run_meta(seconds=args.seconds, warmup=args.warmup, rounds=args.rounds, agents=args.agents,
                    batch=args.batch, server=args.server, workers=args.workers, server_env=SERVER_ENV)
    out = args.out or RESULTS_DIR / f"ingest-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    results = run_saving(lambda args, cleanup, save: [bench_database(db, args, cleanup) for db in dbs], args, out, meta)
    if results is None:
        return 130
    rows = summarize(results)
    table = markdown_table(rows)
    out.write_text(json.dumps({"meta": meta, "summary": rows, "databases": results}, indent=2))
    print(table)
    print()
    for result in results:
        q = result["queries_per_post"]
        print(f"{result['db']}: queries per post: ours {q['ours']}, baseline {q['baseline']}; "
              f"seq check: {result['seq_check']}")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
