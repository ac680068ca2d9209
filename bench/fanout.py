#!/usr/bin/env python
"""Fan-out benchmark: one publisher, K WebSocket subscribers on one channel, real servers.

    .venv/bin/python bench/fanout.py                                   # K = 10,100,500; daphne; core layer
    .venv/bin/python bench/fanout.py --k 10,100,500 --server both --layer both --plots docs/img
    .venv/bin/python bench/fanout.py --k 1000 --targets ours,channels,ws
    .venv/bin/python bench/fanout.py --report bench/results/a.json bench/results/b.json --plots docs/img

What one run does, building everything from scratch and tearing it down at the end:

1. a temp dir (MYTHLINE_VAR_DIR: SQLite file, static root, server logs); `manage.py migrate`; a
   shell script creates the story `bench` (its `general` public channel), an editor `bench-pub`
   who publishes and max(K) viewers `bench-sub-NNNN`, each with a bearer token;
2. for each server command (--server daphne|uvicorn) and channel layer (--layer core|pubsub), for
   each K: a fresh server process (`daphne ...` or `uvicorn ... --lifespan off`) with
   REDIS_URL, MYTHLINE_CHANNEL_LAYER, a MYTHLINE_REDIS_PREFIX unique to that process, rate limits
   raised out of the way, MYTHLINE_BENCH_BASELINE=1 and the archive sweep off; on it two targets:
   * `ours`: K sockets on `/ws/` (Bearer token each) wait for `welcome`, send
     `{"type":"subscribe","topic":"channel:bench/general"}`, wait for `subscribed`; the publisher
     POSTs `{"msg_type":"narration","payload":{...}}` to the REST messages endpoint;
   * `channels`: K sockets on `/bench/ws/`, the Channels-tutorial consumer (bench/baseline_consumer.py);
     the publisher POSTs the same payload to `/bench/publish` (a bare view doing group_send);
3. `ws`: the bare `websockets` broadcast server (bench/baseline_ws.py), once per K (no Django, no
   layer, so neither --server nor --layer applies); the publisher sends the payload over a socket.

In every phase the subscribers are spread over --procs client processes (asyncio + `websockets`,
uvloop when installed, no compression, no client pings), and the publisher (this process) sends
--rate messages/s for --seconds after --warmup seconds of unrecorded messages. Each payload carries
`bench_i` (its index) and `bench_ts` (time.time() just before the send); a subscriber records
receive time - bench_ts for every message it gets (all processes share the machine's clock), and
counts unique and duplicate indexes. A phase ends when every subscriber has every message or
--drain seconds after the last publish, whichever comes first.

Reported per phase: delivered messages/s (unique deliveries / (last receive - first publish)),
delivered share of K x published, latency p50/p90/p99/max, publish latency, socket closes by code,
and the CPU of the server, Redis, the client processes and the whole machine. Everything shares
2 cores here, so the client's CPU is reported next to the server's.

Only 127.0.0.1 is contacted; each phase, wait and drain is bounded; every process, temp dir and
Redis key the script made is removed on exit, errors and Ctrl-C included. Results: a Markdown table
on stdout, JSON under bench/results/ (gitignored), PNG plots with --plots DIR.
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
from array import array
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# bench.common is stdlib-only at import, as this module is (the subscriber processes import it).
from bench.common import (DEFAULT_PG_URL, RESULTS_DIR, ROOT, ClientProcesses, Server, _on_sigterm,  # noqa: E402
                          client_process_main, django_env, machine_busy_seconds, manage, merge_counts,
                          merged_latencies, percentile,
                          pg_recreate, pg_url_with_db, proc_cpu_seconds, redis_cleanup, redis_server_pid,
                          run_meta, run_saving)

STORY, CHANNEL = "bench", "general"
TOPIC = f"channel:{STORY}/{CHANNEL}"
TEXT = "The lantern swung once, and every door in the corridor answered with the same low note."
MAX_K = 2000
TARGETS = ("ours", "channels", "ws")

# Limits far above this load, so no throttle or flood guard answers instead of the code under test.
SERVER_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(50),  # a key per run: with DEBUG off the development key is refused
    "MYTHLINE_POST_RATE": "100000/s", "MYTHLINE_POST_BURST": "100000",
    "MYTHLINE_WRITE_RATE": "100000/s", "MYTHLINE_WRITE_BURST": "100000",
    "MYTHLINE_READ_RATE": "100000/s", "MYTHLINE_READ_BURST": "100000",
    "MYTHLINE_WS_FRAME_RATE": "100000", "MYTHLINE_WS_FRAME_BURST": "100000",
    "MYTHLINE_BENCH_BASELINE": "1",
    "MYTHLINE_ARCHIVE_SWEEP_SECONDS": "0",
    "DEBUG": "0",
    "LOG_LEVEL": "WARNING",
}

SETUP_SCRIPT = r"""
import json, os, secrets
from accounts.models import ApiToken, User, hash_token
from stories.models import Participant
from stories.services import story_create

n = int(os.environ["BENCH_SUBSCRIBERS"])
owner = User.objects.create_user("bench-owner", password=None)
story = story_create(owner=owner, slug="%(story)s", title="Fan-out benchmark")
pub = User.objects.create_user("bench-pub", password=None)
Participant.objects.create(story=story, user=pub, role=Participant.Role.EDITOR)
subs = User.objects.bulk_create([User(username=f"bench-sub-{i:04d}", password="!") for i in range(n)])
subs = list(User.objects.filter(username__startswith="bench-sub-").order_by("username"))
Participant.objects.bulk_create([Participant(story=story, user=u, role=Participant.Role.VIEWER) for u in subs])
raws, rows = [], []
for user in [pub, *subs]:
    raw = "myth_" + secrets.token_urlsafe(32)
    raws.append(raw)
    rows.append(ApiToken(user=user, key_hash=hash_token(raw), prefix=raw[:12], label="bench-fanout"))
ApiToken.objects.bulk_create(rows)
print("BENCH-SETUP " + json.dumps({"publisher": raws[0], "subscribers": raws[1:]}))
""" % {"story": STORY}


# --- subscriber processes -------------------------------------------------------------------------

def _number_after(text: str, key: str):
    pos = text.find(key)
    if pos < 0:
        return None
    start = pos + len(key)
    end = start
    n = len(text)
    while end < n and text[end] not in ",}":
        end += 1
    return text[start:end]


def subscriber_process(index: int, url: str, tokens: list, protocol: str, n_max: int, concurrency: int,
                       connect_timeout: float, ctrl, out_q, deflate: bool = False) -> None:
    """One client process: open its share of the K sockets, read until told to stop, report."""
    client_process_main(_subscriber_main, index, url, tokens, protocol, n_max, concurrency, connect_timeout, ctrl,
                        out_q, deflate)


async def _subscriber_main(index, url, tokens, protocol, n_max, concurrency, connect_timeout, ctrl, out_q, deflate,
                           loop_kind):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    loop = asyncio.get_running_loop()
    n = len(tokens)
    conns: list = [None] * n
    seen = [bytearray(n_max) for _ in range(n)]
    latencies = array("d")
    stats = {"unique": 0, "dup": 0, "other": 0, "first": None, "last": None, "closes": {},
             "connect_errors": {}, "bad": 0}
    state = {"expected": None, "aborting": False}
    done = asyncio.Event()
    sem = asyncio.Semaphore(concurrency)

    async def reader(j, ws):
        mine = seen[j]
        lat_append = latencies.append
        now = time.time
        try:
            async for raw in ws:
                t = now()
                if not isinstance(raw, str):
                    stats["other"] += 1
                    continue
                i_text = _number_after(raw, '"bench_i":')
                if i_text is None:
                    stats["other"] += 1
                    continue
                i = int(i_text)
                if i < 0:
                    continue  # warm-up message
                if i >= n_max:
                    stats["bad"] += 1
                    continue
                if mine[i]:
                    stats["dup"] += 1
                    continue
                mine[i] = 1
                lat_append(t - float(_number_after(raw, '"bench_ts":')))
                stats["unique"] += 1
                if stats["first"] is None:
                    stats["first"] = t
                stats["last"] = t
                expected = state["expected"]
                if expected is not None and stats["unique"] >= expected:
                    done.set()
        except ConnectionClosed:
            pass
        finally:
            if not state["aborting"]:  # closed by the server (say 4008, slow consumer), not by us at the end
                key = str(ws.close_code)
                stats["closes"][key] = stats["closes"].get(key, 0) + 1

    async def open_one(j, token):
        headers = {"Authorization": f"Bearer {token}"} if protocol == "ours" else {}
        last_exc = None
        for attempt in range(4):
            try:
                async with sem:
                    ws = await connect(url, additional_headers=headers, compression="deflate" if deflate else None,
                                       open_timeout=30,
                                       ping_interval=None, close_timeout=5, max_size=2 ** 20, max_queue=4096)
                    if protocol == "ours":
                        welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
                        if welcome.get("type") != "welcome":
                            raise RuntimeError(f"first frame {welcome!r}")
                        await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC, "ref": "s"}))
                        while True:
                            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                            if frame.get("ref") == "s":
                                if frame.get("type") != "subscribed":
                                    raise RuntimeError(f"subscribe answered {frame!r}")
                                break
                conns[j] = ws
                tasks.append(asyncio.create_task(reader(j, ws)))
                return
            except Exception as exc:  # noqa: BLE001 - counted and retried, bounded
                last_exc = exc
                await asyncio.sleep(0.2 * (attempt + 1))
        name = type(last_exc).__name__
        stats["connect_errors"][name] = stats["connect_errors"].get(name, 0) + 1

    tasks: list = []
    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(open_one(j, t) for j, t in enumerate(tokens))), connect_timeout)
    except asyncio.TimeoutError:
        stats["connect_errors"]["timeout"] = stats["connect_errors"].get("timeout", 0) + 1
    connected = sum(1 for c in conns if c is not None)
    out_q.put(("ready", index, {"connected": connected, "connect_errors": stats["connect_errors"],
                                "connect_seconds": round(time.monotonic() - started, 2), "loop": loop_kind}))

    command = await loop.run_in_executor(None, ctrl.recv)  # ("drain", n_measured, deadline) or ("abort",)
    if command[0] == "drain":
        _, n_measured, deadline = command
        state["expected"] = connected * n_measured
        if stats["unique"] >= state["expected"]:
            done.set()
        try:
            await asyncio.wait_for(done.wait(), max(0.0, deadline - time.time()))
        except asyncio.TimeoutError:
            pass
    cpu = time.process_time()
    state["aborting"] = True
    for task in tasks:
        task.cancel()
    for ws in conns:
        if ws is not None:
            ws.transport.abort()  # no close handshake: K handshakes would only add noise at the end
    await asyncio.gather(*tasks, return_exceptions=True)
    out_q.put(("result", index, {
        "connected": connected, "unique": stats["unique"], "dup": stats["dup"], "other": stats["other"],
        "bad": stats["bad"], "first": stats["first"], "last": stats["last"], "closes": stats["closes"],
        "latencies": latencies.tobytes(), "cpu": cpu, "expected": state["expected"],
        "complete_conns": sum(1 for j in range(n) if conns[j] is not None and
                              (state["expected"] is None or sum(seen[j]) >= (state["expected"] // max(connected, 1)))),
    }))


class Subscribers(ClientProcesses):
    def __init__(self, *, url: str, tokens: list, protocol: str, procs: int, n_max: int, connect_timeout: float,
                 deflate: bool = False):
        self.connect_timeout = connect_timeout
        shares = [s for s in (tokens[i::procs] for i in range(procs)) if s]
        concurrency = max(4, 64 // len(shares))
        super().__init__(subscriber_process, shares, lambda index, share, ctrl, out_q: (
            index, url, share, protocol, n_max, concurrency, connect_timeout, ctrl, out_q, deflate), "subscriber")

    def wait_ready(self) -> dict:
        ready = self.reports("ready", self.connect_timeout + 60)
        return {"connected": sum(r["connected"] for r in ready.values()),
                "connect_seconds": max(r["connect_seconds"] for r in ready.values()),
                "connect_errors": merge_counts(r["connect_errors"] for r in ready.values()),
                "loop": next(iter(ready.values()))["loop"]}

    def drain(self, n_measured: int, deadline: float) -> dict:
        self.send(lambda index: ("drain", n_measured, deadline))
        return self.reports("result", max(0.0, deadline - time.time()) + 60)

    def stop(self) -> None:
        super().stop(("abort",))


# --- publisher ------------------------------------------------------------------------------------

class Publisher:
    """Sends on a fixed schedule with at most `inflight` sends open (1: each send waits for the answer
    to the previous one, as a single client would; more: the schedule holds when answers are slow,
    as with several writers - and messages may then reach the layer out of seq order)."""

    def __init__(self, target: str, base_url: str, ws_base: str, token: str | None, inflight: int = 1):
        self.target, self.base_url, self.ws_base, self.token = target, base_url, ws_base, token
        self.inflight = inflight
        self.latencies: list[float] = []
        self.errors: dict = {}
        self.late = 0.0

    async def __aenter__(self):
        import httpx

        if self.target == "ws":
            from websockets.asyncio.client import connect

            self.ws = await connect(self.ws_base + "/pub", compression=None, ping_interval=None, open_timeout=30)
        else:
            headers = {"Authorization": f"Bearer {self.token}"} if self.target == "ours" else {}
            self.http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30.0,
                                          limits=httpx.Limits(max_connections=self.inflight,
                                                              max_keepalive_connections=self.inflight))
        return self

    async def __aexit__(self, *exc):
        if self.target == "ws":
            await self.ws.close()
        else:
            await self.http.aclose()

    async def send(self, i: int) -> None:
        ts = time.time()
        payload = {"text": TEXT, "bench_i": i, "bench_ts": ts}
        try:
            if self.target == "ours":
                r = await self.http.post(f"/api/stories/{STORY}/channels/{CHANNEL}/messages",
                                         json={"msg_type": "narration", "payload": payload})
                ok = r.status_code == 201
            elif self.target == "channels":
                r = await self.http.post("/bench/publish", json=payload)
                ok = r.status_code == 202
            else:
                await self.ws.send(json.dumps(payload))
                ok, r = True, None
        except Exception as exc:  # noqa: BLE001 - counted
            self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
            return
        if ok:
            if i >= 0:
                self.latencies.append(time.time() - ts)
        else:
            self.errors[str(r.status_code)] = self.errors.get(str(r.status_code), 0) + 1

    async def run(self, first: int, count: int, rate: float, max_seconds: float) -> tuple[float, float, int]:
        """Send indexes first..first+count-1 at `rate`/s, stopping after max_seconds (a server too slow
        to answer holds a sequential publisher back); returns (first send time, last send time, sent)."""
        sem = asyncio.Semaphore(self.inflight)
        tasks = []

        async def one(i):
            try:
                await self.send(i)
            finally:
                sem.release()

        t0 = time.perf_counter()
        wall0 = time.time()
        last = wall0
        sent = 0
        for k in range(count):
            if time.perf_counter() - t0 > max_seconds:
                break
            due = t0 + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            self.late = max(self.late, time.perf_counter() - due)
            last = time.time()
            tasks.append(asyncio.create_task(one(first + k)))
            sent += 1
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return wall0, last, sent


# --- one phase ------------------------------------------------------------------------------------

def server_metrics(server: Server) -> dict:
    """Our /metrics counters (one process), by name; {} when unavailable."""
    import httpx

    try:
        text = httpx.get(server.base_url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("mythline_") and "{" not in line:
            name, _, value = line.partition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def wait_quiet(threshold: float, max_wait: float) -> float:
    """Wait (at most max_wait s) until the machine's busy cores over 1 s fall below threshold; returns the last reading.

    Other jobs on a shared machine skew a benchmark that needs both cores: start each phase in a lull.
    """
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = (machine_busy_seconds() - b0) / (time.monotonic() - t0)
        if busy < threshold or time.monotonic() >= deadline:
            if busy >= threshold:
                print(f"    warning: machine still {busy:.2f} cores busy after {max_wait:.0f}s; measuring anyway",
                      file=sys.stderr)
            return round(busy, 2)


def ms(value):
    return None if value is None else round(value * 1000, 2)


class Profiler:
    def __init__(self, py_spy: str | None):
        self.py_spy, self.proc = py_spy, None

    def start(self, pid: int, seconds: float, out: Path) -> None:
        if self.py_spy:
            self.proc = subprocess.Popen([self.py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                          "--rate", "250", "--format", "raw", "--output", str(out)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            self.proc = None


def run_phase(*, target: str, server: Server, k: int, setup: dict, args, profile_out: Path | None = None) -> dict:
    if target == "ours":
        url, tokens = server.ws_base + "/ws/", setup["subscribers"][:k]
    elif target == "channels":
        url, tokens = server.ws_base + "/bench/ws/", [None] * k
    else:
        url, tokens = server.ws_base + "/sub", [None] * k
    n_measured = int(round(args.rate * args.seconds))
    n_warm = int(round(args.rate * args.warmup))
    quiet = wait_quiet(args.quiet_cores, args.quiet_wait) if args.quiet_wait else None
    subs = Subscribers(url=url, tokens=tokens, protocol=target, procs=min(args.procs, k), n_max=n_measured,
                       connect_timeout=args.connect_timeout, deflate=args.client_deflate)
    profiler = Profiler(args.py_spy if profile_out is not None else None)
    redis_pid = redis_server_pid()
    try:
        ready = subs.wait_ready()
        metrics0 = server_metrics(server) if target == "ours" else {}
        if ready["connected"] < k:
            print(f"    warning: {ready['connected']}/{k} sockets connected ({ready['connect_errors']})", file=sys.stderr)
        time.sleep(0.5)

        async def publish():
            async with Publisher(target, server.base_url, server.ws_base, setup["publisher"], args.inflight) as pub:
                if n_warm:
                    await pub.run(-n_warm, n_warm, args.rate, 3 * args.warmup + 5)  # indexes < 0: not recorded
                    await asyncio.sleep(0.5)
                if profile_out is not None:
                    profiler.start(server.proc.pid, args.seconds + 2, profile_out)
                marks["cpu0"] = (server.cpu_seconds(), proc_cpu_seconds(redis_pid), subs.cpu_seconds(),
                                 machine_busy_seconds(), time.process_time(), time.time())
                first, last, sent = await pub.run(0, n_measured, args.rate, 3 * args.seconds + 10)
                return pub, first, last, sent

        marks: dict = {}
        pub, first_send, last_send, sent = asyncio.run(publish())
        results = subs.drain(sent, last_send + args.drain)
        end = time.time()
        cpu1 = (server.cpu_seconds(), proc_cpu_seconds(redis_pid), subs.cpu_seconds(), machine_busy_seconds(),
                time.process_time(), end)
        profiler.stop()
        metrics1 = server_metrics(server) if target == "ours" else {}
    finally:
        subs.stop()
        profiler.stop()
    lat = merged_latencies(results.values())
    unique = sum(r["unique"] for r in results.values())
    connected = sum(r["connected"] for r in results.values())
    last_recv = max((r["last"] for r in results.values() if r["last"]), default=None)
    span = (last_recv - first_send) if last_recv else None
    cpu0 = marks["cpu0"]
    wall = cpu1[5] - cpu0[5]

    def cores(i):
        return round((cpu1[i] - cpu0[i]) / wall, 2) if cpu0[i] is not None and cpu1[i] is not None and wall else None

    server_cpu = (cpu1[0] - cpu0[0]) if cpu0[0] is not None and cpu1[0] is not None else None
    pub_lat = sorted(pub.latencies)
    expected = connected * sent
    return {
        "target": target, "server": server.kind if target != "ws" else "websockets",
        "layer": args._layer if target != "ws" else "-", "k": k, "connected": connected,
        "connect_seconds": ready["connect_seconds"], "connect_errors": ready["connect_errors"],
        "rate": args.rate, "seconds": args.seconds, "planned": n_measured, "published": sent,
        "publish_seconds": round(last_send - first_send, 3),
        "published_per_s": round((sent - 1) / (last_send - first_send), 1) if sent > 1 and last_send > first_send else None, "publisher_late_ms": ms(pub.late),
        "publish_errors": pub.errors, "publish_p50_ms": ms(percentile(pub_lat, 0.5)),
        "publish_p99_ms": ms(percentile(pub_lat, 0.99)),
        "expected": expected, "delivered": unique, "duplicates": sum(r["dup"] for r in results.values()),
        "delivered_pct": round(100.0 * unique / expected, 2) if expected else None,
        "offered_per_s": round(connected * args.rate, 1),
        "delivered_per_s": round(unique / span, 1) if span and span > 0 else 0.0,
        "drain_seconds": round(last_recv - last_send, 3) if last_recv else None,
        "p50_ms": ms(percentile(lat, 0.5)), "p90_ms": ms(percentile(lat, 0.9)),
        "p99_ms": ms(percentile(lat, 0.99)), "max_ms": ms(lat[-1] if lat else None),
        "mean_ms": ms(statistics.fmean(lat)) if lat else None,
        "closes": merge_counts(r["closes"] for r in results.values()),
        "server_cores": cores(0), "redis_cores": cores(1), "client_cores": cores(2),
        "publisher_cores": cores(4), "machine_cores": cores(3),
        # Whatever else ran on the machine meanwhile (other jobs; for Postgres/SQLite nothing here).
        "others_cores": (round(cores(3) - sum(c for c in (cores(0), cores(1), cores(2), cores(4)) if c), 2)
                         if cores(3) is not None else None),
        "idle_before_cores": quiet,
        "server_us_per_delivery": round(server_cpu * 1e6 / unique, 1) if server_cpu is not None and unique else None,
        "client_loop": ready["loop"], "inflight": args.inflight, "tag": args.tag,
        "client_deflate": args.client_deflate,
        # ours only, from its /metrics: sends that found a seq gap and read the database first.
        "gaps_backfilled": (metrics1.get("mythline_gaps_backfilled_total", 0)
                            - metrics0.get("mythline_gaps_backfilled_total", 0)) if metrics1 else None,
        "slow_clients_closed": (metrics1.get("mythline_slow_clients_closed_total", 0)
                                - metrics0.get("mythline_slow_clients_closed_total", 0)) if metrics1 else None,
    }


# --- the matrix -----------------------------------------------------------------------------------

def bench(args, cleanup: list, save) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix="mythline-fanout-"))
    cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    run_prefix = f"bench-fanout-{uuid.uuid4().hex[:10]}"
    cleanup.append(lambda: redis_cleanup(args.redis_url, run_prefix))
    database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    if args.db == "postgres":  # a database of its own, recreated now and dropped at the end
        database_url = pg_url_with_db(args.pg_url, args.pg_db)
        pg_recreate(args.pg_url, args.pg_db)
        cleanup.append(lambda: pg_recreate(args.pg_url, args.pg_db, drop_only=True))
    env = django_env(workdir, database_url, SERVER_ENV, REDIS_URL=args.redis_url)
    kmax = max(args.k)
    print(f"migrate + setup ({kmax} subscribers) in {workdir}", file=sys.stderr)
    manage(env, "migrate", "--noinput")
    out = manage({**env, "BENCH_SUBSCRIBERS": str(kmax)}, "shell", "-c", SETUP_SCRIPT)
    setup = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("BENCH-SETUP "))[12:])

    runs: list[dict] = []
    counter = iter(range(10_000))

    def start(kind: str, layer: str | None) -> Server:
        label = f"{kind}-{layer or 'x'}-{next(counter)}"
        server_env = {**env, "MYTHLINE_REDIS_PREFIX": f"{run_prefix}-{label}"}
        if layer:
            server_env["MYTHLINE_CHANNEL_LAYER"] = layer
        server = Server(kind, server_env, workdir, label, args.workers if kind == "uvicorn" else 1)
        cleanup.append(server.stop)
        server.wait_healthy()
        return server

    def report(result):
        runs.append(result)
        save(runs)
        print(f"  K={result['k']:<5} {result['target']:<8} {result['server']:<10} {result['layer']:<6} "
              f"{result['delivered_per_s']:>9} msg/s of {result['offered_per_s']:>8} offered "
              f"({result['delivered_pct']}%, published {result['published_per_s']}/s)  p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  "
              f"server {result['server_cores']} cores, machine {result['machine_cores']} "
              f"(others {result['others_cores']})  publish p50 {result['publish_p50_ms']} ms "
              f"late {result['publisher_late_ms']} ms  "
              f"closes {result['closes'] or '-'}  pub errors {result['publish_errors'] or '-'}", file=sys.stderr)

    django_targets = [t for t in ("ours", "channels") if t in args.targets]
    for kind in args.servers:
        for layer in args.layers:
            if not django_targets:
                break
            args._layer = layer
            print(f"[{kind} / {layer}]", file=sys.stderr)
            for index, k in enumerate(args.k):
                server = start(kind, layer)
                try:
                    order = django_targets if index % 2 == 0 else list(reversed(django_targets))
                    for target in order:
                        profile_out = None
                        if args.py_spy and k == kmax:
                            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                            profile_out = RESULTS_DIR / (f"profile-fanout-{target}-{kind}-{layer}-k{k}-"
                                                         f"{datetime.now():%Y%m%d-%H%M%S}.txt")
                        result = run_with_retries(lambda: run_phase(target=target, server=server, k=k, setup=setup,
                                                                    args=args, profile_out=profile_out), args)
                        if profile_out is not None:
                            result["profile"] = str(profile_out.relative_to(ROOT))
                        report(result)
                        if server.proc.poll() is not None:
                            raise RuntimeError(f"{kind} died:\n{server.log_tail()}")
                finally:
                    server.stop()
                    log = server.log_tail(1500).strip()
                    if "Traceback" in log:
                        print(f"    server log tail:\n{log}", file=sys.stderr)
    if "ws" in args.targets:
        args._layer = "-"
        print("[bare websockets]", file=sys.stderr)
        for k in args.k:
            server = start("ws", None)
            try:
                report(run_with_retries(lambda: run_phase(target="ws", server=server, k=k, setup=setup, args=args),
                                        args))
            finally:
                server.stop()
    return runs


def run_with_retries(phase, args) -> dict:
    """Run a phase; while other jobs took more than --quiet-cores during it, run it again (--retries
    times at most) and keep the least disturbed attempt."""
    best = None
    for attempt in range(args.retries + 1):
        result = phase()
        result["attempt"] = attempt + 1
        others = result.get("others_cores")
        if best is None or (others is not None and others < (best.get("others_cores") or 0)):
            best = result
        if others is None or others <= args.quiet_cores or attempt == args.retries:
            break
        print(f"    other jobs took {others} cores during the phase: again", file=sys.stderr)
    return best


# --- report ---------------------------------------------------------------------------------------

def fmt(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def target_name(r: dict) -> str:
    return f"{r['target']} ({r['tag']})" if r.get("tag") and r["target"] == "ours" else r["target"]


def config_name(r: dict) -> str:
    if r["target"] == "ws":
        return "bare websockets"
    return f"{target_name(r)} · {r['server']} · {r['layer']}"


def markdown_tables(runs: list[dict]) -> str:
    """One row per phase (the JSON holds more: p90, mean, machine cores, publisher lateness, ...)."""
    show_gaps = any(r.get("gaps_backfilled") for r in runs)
    show_closes = any(r.get("closes") for r in runs)
    head = ("| K | target | server | layer | published msg/s | delivered msg/s | delivered % | p50 ms | p99 ms "
            "| max ms | server cores | server µs / delivery | Redis cores | client cores | other jobs' cores "
            "| publish p50 ms |")
    rule = "|--:|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    if show_gaps:
        head, rule = head + " gaps backfilled |", rule + "--:|"
    if show_closes:
        head, rule = head + " closed by server |", rule + "---|"
    lines = [head, rule]
    order = {"ours": 0, "channels": 1, "ws": 2}
    for r in sorted(runs, key=lambda r: (r["k"], r["server"] == "websockets", r["server"], r["layer"],
                                         order[r["target"]], r.get("tag") or "")):
        line = (f"| {r['k']} | {target_name(r)} | {r['server']} | {r['layer']} | {fmt(r.get('published_per_s'))} "
                f"| {fmt(r['delivered_per_s'])} | {fmt(r['delivered_pct'])} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} "
                f"| {fmt(r['max_ms'])} | {fmt(r['server_cores'])} | {fmt(r['server_us_per_delivery'])} "
                f"| {fmt(r['redis_cores'])} | {fmt(r['client_cores'])} | {fmt(r.get('others_cores'))} "
                f"| {fmt(r['publish_p50_ms'])} |")
        if show_gaps:
            line += f" {fmt(r.get('gaps_backfilled'))} |"
        if show_closes:
            line += " " + (", ".join(f"{c}×{n}" for c, n in r["closes"].items()) or "–") + " |"
        lines.append(line)
    return "\n".join(lines)


def goals_table(runs: list[dict]) -> str:
    """ours vs the Channels-tutorial consumer on the same server and layer, per K.

    Two ratios: delivered messages/s as measured (what the goal names; on a shared or saturated
    machine it also reflects how fast the publisher could publish), and deliveries per server
    CPU-second (the capacity each would have on a core of its own; steadier under other load)."""
    base_by = {(r["server"], r["layer"], r["k"]): r for r in runs if r["target"] == "channels"}
    lines = ["| K | ours | server | layer | ours msg/s | channels msg/s | ours / channels msg/s (goal ≥ 0.7) "
             "| ours / channels deliveries per CPU-s | ours p99 ms (goal < 100 at K=500) | channels p99 ms |",
             "|--:|---|---|---|--:|--:|--:|--:|--:|--:|"]
    ours_rows = [r for r in runs if r["target"] == "ours"]
    for ours in sorted(ours_rows, key=lambda r: (r["k"], r["server"], r["layer"], r.get("tag") or "")):
        base = base_by.get((ours["server"], ours["layer"], ours["k"]))
        ratio = (round(ours["delivered_per_s"] / base["delivered_per_s"], 2)
                 if base and base["delivered_per_s"] else None)
        cpu_ratio = (round(base["server_us_per_delivery"] / ours["server_us_per_delivery"], 2)
                     if base and base.get("server_us_per_delivery") and ours.get("server_us_per_delivery") else None)
        lines.append(f"| {ours['k']} | {target_name(ours)} | {ours['server']} | {ours['layer']} "
                     f"| {fmt(ours['delivered_per_s'])} | {fmt(base['delivered_per_s']) if base else '–'} "
                     f"| **{fmt(ratio)}** | {fmt(cpu_ratio)} | {fmt(ours['p99_ms'])} "
                     f"| {fmt(base['p99_ms']) if base else '–'} |")
    return "\n".join(lines)


def plot(runs: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    series: dict = {}
    for r in runs:
        series.setdefault(config_name(r), []).append(r)
    colors = {("daphne", "core"): "tab:blue", ("daphne", "pubsub"): "tab:orange",
              ("uvicorn", "core"): "tab:green", ("uvicorn", "pubsub"): "tab:red"}

    def style(r):
        if r["target"] == "ws":
            return {"color": "black", "linestyle": ":"}
        linestyle = "--" if r["target"] == "channels" else ("-." if r.get("tag") else "-")
        return {"color": colors.get((r["server"], r["layer"]), "tab:purple"), "linestyle": linestyle}
    paths = []
    for metric, fname, ylabel, title in (
            ("delivered_per_s", "fanout_rate.png", "delivered messages / s", "Fan-out: delivered messages per second"),
            ("p99_ms", "fanout_p99.png", "p99 publish→receive latency (ms)", "Fan-out: p99 latency")):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        for name, rows in sorted(series.items()):
            rows = sorted(rows, key=lambda r: r["k"])
            xs = [r["k"] for r in rows if r.get(metric) is not None]
            ys = [r[metric] for r in rows if r.get(metric) is not None]
            if xs:
                ax.plot(xs, ys, marker="o", label=name, **style(rows[0]))
        if metric == "delivered_per_s":
            ks = sorted({r["k"] for r in runs})
            rate = runs[0]["rate"]
            ax.plot(ks, [k * rate for k in ks], color="grey", linewidth=4, alpha=0.3, label=f"offered (K × {rate:g}/s)")
        else:
            ax.axhline(100, color="grey", linewidth=0.8, label="goal: 100 ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K subscribers (one channel)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", default="10,100,500", help="comma-separated subscriber counts (default 10,100,500)")
    parser.add_argument("--layer", choices=["core", "pubsub", "both"], default="core",
                        help="channels_redis layer for the Django targets (MYTHLINE_CHANNEL_LAYER; default core)")
    parser.add_argument("--server", choices=["daphne", "uvicorn", "both"], default="daphne",
                        help="server command for the Django targets (default daphne)")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes (--workers N; Redis layers only; default 1)")
    parser.add_argument("--targets", default="ours,channels,ws",
                        help="which of ours,channels,ws to measure (default all three)")
    parser.add_argument("--rate", type=float, default=20.0, help="published messages per second (default 20)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured publishing seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded publishing seconds first (default 1)")
    parser.add_argument("--drain", type=float, default=15.0,
                        help="at most this many seconds after the last publish to wait for deliveries (default 15)")
    parser.add_argument("--inflight", type=int, default=1,
                        help="publisher sends open at once (default 1: one sequential client)")
    parser.add_argument("--client-deflate", action="store_true",
                        help="subscribers offer permessage-deflate, as browsers do (default: no compression)")
    parser.add_argument("--procs", type=int, default=4, help="subscriber client processes (default 4)")
    parser.add_argument("--connect-timeout", type=float, default=180.0,
                        help="seconds for all K sockets to connect and subscribe (default 180)")
    parser.add_argument("--quiet-cores", type=float, default=0.3,
                        help="before each phase wait until the machine is below this many busy cores (default 0.3)")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="...but at most this many seconds (default 120; 0 = do not wait)")
    parser.add_argument("--retries", type=int, default=2,
                        help="run a phase again (this many times at most) when other jobs took more than "
                             "--quiet-cores during it (default 2)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="with --db postgres: where to create the bench database")
    parser.add_argument("--pg-db", default="mythline_bench_fanout", help="the database the bench recreates and drops")
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy binary: record the server during each Django target at the largest K "
                             "(collapsed stacks under bench/results/; the sampling slows the server a little)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write fanout_rate.png and fanout_p99.png here")
    parser.add_argument("--out", type=Path, help="result JSON (default bench/results/fanout-<time>.json)")
    parser.add_argument("--tag", default="",
                        help="a label for this code variant, shown next to 'ours' in the tables (say, a patch under test)")
    parser.add_argument("--report", nargs="+", type=Path, metavar="JSON",
                        help="no run: merge these result files into tables (and --plots)")
    args = parser.parse_args(argv)
    args.k = sorted({int(a) for a in args.k.split(",") if a.strip()})
    if not args.k or min(args.k) < 1 or max(args.k) > MAX_K:
        parser.error(f"--k: 1..{MAX_K}")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or set(args.targets) - set(TARGETS):
        parser.error(f"--targets: some of {','.join(TARGETS)}")
    if not 0 < args.rate <= 1000:
        parser.error("--rate: 0 < r <= 1000")
    if not 0 < args.seconds <= 120 or not 0 <= args.warmup <= 30 or not 0 < args.drain <= 120:
        parser.error("--seconds 0..120, --warmup 0..30, --drain 0..120")
    if not 1 <= args.inflight <= 64:
        parser.error("--inflight: 1..64")
    if not 1 <= args.procs <= 16:
        parser.error("--procs: 1..16")
    if not 0 <= args.retries <= 5:
        parser.error("--retries: 0..5")
    if not 0 <= args.quiet_wait <= 900:
        parser.error("--quiet-wait: 0..900")
    if not 1 <= args.connect_timeout <= 600:
        parser.error("--connect-timeout: 1..600")
    args.layers = ["core", "pubsub"] if args.layer == "both" else [args.layer]
    args.servers = ["daphne", "uvicorn"] if args.server == "both" else [args.server]
    host = args.redis_url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost"):
        parser.error("--redis-url: 127.0.0.1 only")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        runs = []
        for path in args.report:
            runs.extend(json.loads(path.read_text())["runs"])
    else:
        signal.signal(signal.SIGTERM, _on_sigterm)
        meta = run_meta(rate=args.rate, seconds=args.seconds, warmup=args.warmup, drain=args.drain, procs=args.procs,
                        server_env=SERVER_ENV)
        out = args.out or RESULTS_DIR / f"fanout-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
        runs = run_saving(bench, args, out, meta)
        if runs is None:
            return 130
        print(f"results: {out}", file=sys.stderr)
    print(markdown_tables(runs))
    print()
    print(goals_table(runs))
    if args.plots:
        for path in plot(runs, args.plots):
            print(f"plot: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
