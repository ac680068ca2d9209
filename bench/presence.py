#!/usr/bin/env python
"""Presence benchmark: N WebSocket connections in one story's `room`, real server, two stores.

    .venv/bin/python bench/presence.py                       # 1,000 conns, 15 s heartbeat, memory + redis
    .venv/bin/python bench/presence.py --quick               # 200 conns, 2 s heartbeat, short phases
    .venv/bin/python bench/presence.py --store redis --conns 1000 --idle-seconds 45 --churn-seconds 30

What one run does, from scratch, and tears down at the end (errors and Ctrl-C included):

1. a temp dir with a SQLite database (`manage.py migrate`), a story `bench` (its `room` presence
   channel), N users `pres-NNNN` and an observer, each an editor with a bearer token (one
   `manage.py shell -c` script);
2. per store (`memory`: REDIS_URL unset, in-process store and channel layer; `redis`: REDIS_URL
   set, the Redis presence store and channels-redis, a key prefix of its own), one server process
   (`--server daphne` by default, or `uvicorn`)
   with MYTHLINE_HEARTBEAT_SECONDS=--heartbeat and rate limits raised out of the way;
3. --procs client processes (asyncio + `websockets`) open the N sockets, each subscribes to
   `channel:bench/room` (and gets `presence.state`), then heartbeats every interval at a random
   phase; a separate observer process holds one more socket and timestamps every update;
4. phase `idle` (--idle-seconds): heartbeats only; phase `churn` (--churn-seconds): heartbeats
   plus --change-share of the connections (10%) changing state each second (a `heartbeat` frame
   with a new state, its send time recorded).

Reported per store and phase: server CPU (utime+stime delta of the server process from
/proc/<pid>/stat, as % of one core), Redis CPU for the redis store, diff latency (change sent ->
the observer's presence.diff carrying that user's new state: p50/p99/max, over the changes the
observer saw; changes undone inside one coalescing window are never sent and are counted apart),
presence.diff frames per change (as broadcast, and as delivered to all N+1 sockets), heartbeat
frames per second, and joins/leaves seen during the phases (should be 0: nobody expires).

Only 127.0.0.1 is contacted. Every wait is bounded. The machine may be shared: the whole machine's
CPU is reported next to the server's.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (RESULTS_DIR, Server, machine_busy_seconds, manage, percentile,  # noqa: E402
                          proc_cpu_seconds, redis_server_pid)  # stdlib-only at import, as this module is

TOPIC = "channel:bench/room"
STATES = ("active", "idle", "away")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

SERVER_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(50),  # a key per run: with DEBUG off the development key is refused
    "MYTHLINE_POST_RATE": "100000/s", "MYTHLINE_POST_BURST": "100000",
    "MYTHLINE_WRITE_RATE": "100000/s", "MYTHLINE_WRITE_BURST": "100000",
    "MYTHLINE_READ_RATE": "100000/s", "MYTHLINE_READ_BURST": "100000",
    "MYTHLINE_WS_FRAME_RATE": "100000", "MYTHLINE_WS_FRAME_BURST": "100000",
    "MYTHLINE_ARCHIVE_SWEEP_SECONDS": "0", "DEBUG": "0", "LOG_LEVEL": "WARNING",
}

SETUP_SCRIPT = r"""
import json, os, secrets
from accounts.models import ApiToken, User, hash_token
from messaging.models import Channel, Membership
from stories.models import Participant
from stories.services import story_create

n = int(os.environ["BENCH_CONNS"])
owner = User.objects.create_user("pres-owner", password=None)
story = story_create(owner=owner, slug="bench", title="Presence benchmark")
User.objects.bulk_create([User(username=f"pres-{i:04d}", password="!") for i in range(n)]
                         + [User(username="pres-observer", password="!")])
users = list(User.objects.filter(username__startswith="pres-").exclude(username="pres-owner").order_by("username"))
Participant.objects.bulk_create([Participant(story=story, user=u, role=Participant.Role.EDITOR) for u in users])
room = Channel.objects.get(story=story, name="room")  # what participant_add does, in bulk
Membership.objects.bulk_create([Membership(channel=room, user=u) for u in users])
tokens, rows = {}, []
for user in users:
    raw = "myth_" + secrets.token_urlsafe(32)
    tokens[user.username] = raw
    rows.append(ApiToken(user=user, key_hash=hash_token(raw), prefix=raw[:12], label="bench-presence"))
ApiToken.objects.bulk_create(rows)
print("BENCH-SETUP " + json.dumps(tokens))
"""


# --- processes ----------------------------------------------------------------------------------

def runqueue_wait_seconds(pid: int | None) -> float | None:
    """Time the process's threads spent runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat):
    how much a busy machine held it back."""
    if pid is None:
        return None
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return None
    return total / 1e9


# --- client processes -----------------------------------------------------------------------------

def client_process(index, url, accounts, observer, cfg, ctrl, out_q):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_client_main(index, url, accounts, observer, cfg, ctrl, out_q))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass


async def _client_main(index, url, accounts, observer, cfg, ctrl, out_q):
    """`accounts`: [(username, token)]. The observer process holds one socket and records, for every
    presence.diff update, (receive time, username, state)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    loop = asyncio.get_running_loop()
    n = len(accounts)
    conns = [None] * n
    state = ["active"] * n
    hb = cfg["heartbeat"]
    # per phase counters: "setup", "idle", "churn", "tail"
    phase_of = {"t0": None}
    counts = {}
    seen_updates = []  # observer: (t, username, state)
    pings = []  # observer: (t, round trip of a ping frame): how responsive the server is, presence aside
    stopping = {"now": False}
    changes = []  # (t_sent, username, state)
    closes = {}
    connect_errors = {}
    sem = asyncio.Semaphore(16)

    def phase(t):
        t0 = phase_of["t0"]
        if t0 is None or t < t0:
            return "setup"
        if t < t0 + cfg["idle_seconds"]:
            return "idle"
        if t < t0 + cfg["idle_seconds"] + cfg["churn_seconds"]:
            return "churn"
        return "tail"

    def count(key, t):
        k = (phase(t), key)
        counts[k] = counts.get(k, 0) + 1

    async def reader(j, ws):
        try:
            async for raw in ws:
                t = time.time()
                if raw.startswith('{"type":"presence.diff"'):
                    count("diff", t)
                    if observer:
                        frame = json.loads(raw)
                        for e in frame["updates"]:
                            seen_updates.append((t, e["username"], e.get("state")))
                        counts[(phase(t), "joins")] = counts.get((phase(t), "joins"), 0) + len(frame["joins"])
                        counts[(phase(t), "leaves")] = counts.get((phase(t), "leaves"), 0) + len(frame["leaves"])
                elif raw.startswith('{"type":"heartbeat_ack"'):
                    count("ack", t)
                elif observer and raw.startswith('{"type":"pong"'):
                    sent = json.loads(raw).get("ref")
                    pings.append((t, t - float(sent)))
                else:
                    count("other", t)
        except ConnectionClosed:
            pass
        finally:
            if not stopping["now"]:
                key = str(ws.close_code)
                closes[key] = closes.get(key, 0) + 1

    async def open_one(j, username, token):
        for attempt in range(5):
            try:
                async with sem:
                    ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None,
                                       open_timeout=60, ping_interval=None, close_timeout=2, max_size=2 ** 24)
                    json.loads(await asyncio.wait_for(ws.recv(), 60))  # welcome
                    await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC, "ref": "s"}))
                    while True:  # subscribed, then presence.state
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                        if frame.get("type") == "presence.state":
                            break
                        if frame.get("type") == "error":
                            raise RuntimeError(frame)
                conns[j] = ws
                tasks.append(asyncio.create_task(reader(j, ws)))
                beats.append(asyncio.create_task(beat(j)))  # from its subscribe on, as a real client
                return
            except Exception as exc:  # noqa: BLE001 - retried, bounded; the last error is reported
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                await asyncio.sleep(0.5 * (attempt + 1))
        connect_errors[error] = connect_errors.get(error, 0) + 1

    async def beat(j):
        await asyncio.sleep(random.uniform(0, hb))
        while True:
            ws = conns[j]
            if ws is None:
                return
            t = time.time()
            try:
                await ws.send('{"type":"heartbeat","state":"%s"}' % state[j])
            except ConnectionClosed:
                return
            count("heartbeat", t)
            await asyncio.sleep(hb)

    async def churn(start, seconds, share):
        """Each second, `share` of this process's connections change state (fractions carried)."""
        owed = 0.0
        tick = start
        end = start + seconds
        live = [j for j in range(n) if conns[j] is not None]
        while tick < end:
            await asyncio.sleep(max(0.0, tick - time.time()))
            owed += share * len(live)
            k, owed = int(owed), owed - int(owed)
            # spread the second's changes over the second, as independent users would
            picks = random.sample(live, min(k, len(live)))
            for p, j in enumerate(picks):
                target = tick + p / max(1, len(picks))
                await asyncio.sleep(max(0.0, target - time.time()))
                new = random.choice([s for s in STATES if s != state[j]])
                state[j] = new
                t = time.time()
                try:
                    await conns[j].send('{"type":"heartbeat","state":"%s"}' % new)
                except ConnectionClosed:
                    continue
                changes.append((t, accounts[j][0], new))
            tick += 1.0

    tasks: list = []
    beats: list = []
    started = time.monotonic()
    await asyncio.gather(*(open_one(j, u, tok) for j, (u, tok) in enumerate(accounts)))
    connected = sum(1 for c in conns if c is not None)

    async def pinger():
        while True:
            await asyncio.sleep(0.5)
            try:
                await conns[0].send('{"type":"ping","ref":"%r"}' % time.time())
            except (ConnectionClosed, AttributeError):
                return

    if observer:
        beats.append(asyncio.create_task(pinger()))
    out_q.put(("ready", index, {"connected": connected, "seconds": round(time.monotonic() - started, 1),
                                "errors": connect_errors}))

    while True:
        command = await loop.run_in_executor(None, ctrl.recv)
        if command[0] != "probe":
            break
        # The observer: wait until the server answers pings promptly again (setup's backlog of
        # presence.state frames and joins worked off), then tell the parent.
        _, threshold, timeout = command
        since, deadline, quiet = time.time(), time.time() + timeout, False
        while time.time() < deadline:
            recent = [rtt for t, rtt in pings if t >= since][-5:]
            if len(recent) == 5 and max(recent) < threshold:
                quiet = True
                break
            await asyncio.sleep(0.25)
        out_q.put(("quiet", index, {"quiet": quiet, "seconds": round(time.time() - since, 1)}))
    if command[0] == "go":
        _, t0 = command
        phase_of["t0"] = t0
        churn_start = t0 + cfg["idle_seconds"]
        end = churn_start + cfg["churn_seconds"]
        if not observer and cfg["churn_seconds"] > 0:
            await asyncio.sleep(max(0.0, churn_start - time.time()))
            await churn(churn_start, cfg["churn_seconds"], cfg["change_share"])
        await asyncio.sleep(max(0.0, end + cfg["tail_seconds"] - time.time()))
    stopping["now"] = True
    for task in beats:
        task.cancel()
    still_open = sum(1 for c in conns if c is not None and c.close_code is None)
    for ws in conns:
        if ws is not None:
            ws.transport.abort()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*beats, *tasks, return_exceptions=True)
    out_q.put(("result", index, {
        "connected": connected, "still_open": still_open, "closes": closes,
        "counts": {f"{p}:{k}": v for (p, k), v in counts.items()},
        "changes": changes, "updates": seen_updates, "pings": pings,
    }))


class Clients:
    def __init__(self, url, accounts, observer_account, procs, cfg):
        ctx = mp.get_context("spawn")
        self.out_q = ctx.Queue()
        self.procs, self.ctrls = [], []
        shares = [accounts[i::procs] for i in range(procs)]
        jobs = [(share, False) for share in shares if share] + [([observer_account], True)]
        for index, (share, observer) in enumerate(jobs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_process, daemon=True,
                               args=(index, url, share, observer, cfg, child, self.out_q))
            proc.start()
            child.close()
            self.procs.append(proc)
            self.ctrls.append(parent)

    def collect(self, kind, timeout):
        got = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.procs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"clients: {len(got)}/{len(self.procs)} sent {kind!r} in {timeout:.0f}s")
            try:
                k, index, data = self.out_q.get(timeout=1.0)
            except Exception:  # noqa: BLE001 - queue.Empty
                if any(p.exitcode not in (None, 0) for p in self.procs):
                    raise RuntimeError("a client process died") from None
                continue
            if k == kind:
                got[index] = data
        return got

    def wait_quiet(self, threshold=0.1, timeout=300.0) -> dict:
        self.ctrls[-1].send(("probe", threshold, timeout))  # the observer is the last process
        deadline = time.monotonic() + timeout + 30
        while time.monotonic() < deadline:
            try:
                kind, index, data = self.out_q.get(timeout=1.0)
            except Exception:  # noqa: BLE001 - queue.Empty
                continue
            if kind == "quiet":
                return data
        raise RuntimeError("the observer never reported")

    def go(self, t0):
        for ctrl in self.ctrls:
            ctrl.send(("go", t0))

    def stop(self):
        for ctrl in self.ctrls:
            try:
                ctrl.send(("abort",))
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


# --- one store --------------------------------------------------------------------------------------

def match_latencies(changes, updates):
    """For each change (t, user, state): the first observer update of that user, with that state,
    received after t. Changes the observer never saw as such (undone in the same window, or
    overtaken by the user's next change) are counted apart."""
    by_user = {}
    for t, user, state in sorted(updates):
        by_user.setdefault(user, []).append((t, state))
    latencies, unseen = [], 0
    changes = sorted(changes)
    for i, (t, user, state) in enumerate(changes):
        hit = next((rt for rt, st in by_user.get(user, []) if rt >= t and st == state), None)
        if hit is None:
            unseen += 1
        else:
            latencies.append(hit - t)
    return latencies, unseen


def run_store(store, args, tokens, workdir, base_env):
    env = {**base_env, "MYTHLINE_HEARTBEAT_SECONDS": str(args.heartbeat)}
    prefix = None
    if store == "redis":
        prefix = f"bench-presence-{uuid.uuid4().hex[:10]}"
        env.update(REDIS_URL=REDIS_URL, MYTHLINE_REDIS_PREFIX=prefix, MYTHLINE_CHANNEL_LAYER=args.layer)
    else:
        env.pop("REDIS_URL", None)
    server = Server(args.server, env, workdir, f"{args.server}-{store}")
    clients = None
    try:
        server.wait_healthy()
        names = sorted(n for n in tokens if n != "pres-observer")[:args.conns]
        accounts = [(n, tokens[n]) for n in names]
        cfg = {"heartbeat": args.heartbeat, "idle_seconds": args.idle_seconds, "churn_seconds": args.churn_seconds,
               "change_share": args.change_share, "tail_seconds": 2.0}
        t_setup = time.monotonic()
        clients = Clients(server.ws_base + "/ws/", accounts, ("pres-observer", tokens["pres-observer"]),
                          args.procs, cfg)
        ready = clients.collect("ready", 600)
        connected = sum(r["connected"] for r in ready.values())
        errors = {k: v for r in ready.values() for k, v in r["errors"].items()}
        if connected < 0.98 * (len(accounts) + 1):
            raise RuntimeError(f"only {connected}/{len(accounts) + 1} sockets subscribed: {errors}")
        if errors:
            print(f"  [{store}] {len(accounts) + 1 - connected} sockets failed to subscribe: {errors}", flush=True)
        setup_seconds = time.monotonic() - t_setup
        quiet = clients.wait_quiet()
        print(f"  [{store}] {connected}/{len(accounts) + 1} sockets in the room after {setup_seconds:.0f}s; server "
              f"answering pings within 100 ms after {quiet['seconds']}s more ({quiet}); settling {args.settle:.0f}s",
              flush=True)
        t0 = time.time() + args.settle
        clients.go(t0)
        rpid = redis_server_pid() if store == "redis" else None
        marks = {}
        for name, at in (("start", t0), ("idle_end", t0 + args.idle_seconds),
                         ("churn_end", t0 + args.idle_seconds + args.churn_seconds)):
            time.sleep(max(0.0, at - time.time()))
            marks[name] = (time.time(), proc_cpu_seconds(server.proc.pid), proc_cpu_seconds(rpid),
                           machine_busy_seconds(), runqueue_wait_seconds(server.proc.pid))
        results = clients.collect("result", args.idle_seconds + args.churn_seconds + 120)
        log_text = server.log_path.read_text(errors="replace")
        log_errors = log_text.count("Traceback")
        if log_errors:  # keep the evidence: the temp dir goes at the end
            kept = RESULTS_DIR / f"presence-{store}-{args.server}-{int(time.time())}.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(log_text[-200_000:])
            print(f"  [{store}] {log_errors} tracebacks in the server log, its tail kept in {kept}", flush=True)
    finally:
        if clients:
            clients.stop()
        server.stop()
        if prefix:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()

    counts = {}
    for r in results.values():
        for k, v in r["counts"].items():
            counts[k] = counts.get(k, 0) + v
    observer = results[max(results)]
    changes = [c for r in results.values() for c in r["changes"]]
    latencies, unseen = match_latencies(changes, observer["updates"])
    latencies.sort()
    observer_counts = observer["counts"]
    rows = []
    for phase, a, b in (("idle", "start", "idle_end"), ("churn", "idle_end", "churn_end")):
        (ta, ca, ra, ma, wa), (tb, cb, rb, mb, wb) = marks[a], marks[b]
        secs = tb - ta
        if secs <= 0:
            continue
        n_changes = len(changes) if phase == "churn" else 0
        diffs_broadcast = observer_counts.get(f"{phase}:diff", 0)
        diffs_delivered = counts.get(f"{phase}:diff", 0) + (counts.get("tail:diff", 0) if phase == "churn" else 0)
        row = {
            "store": store if store == "memory" else f"redis ({args.layer} layer)", "phase": phase, "conns": connected, "seconds": round(secs, 1),
            "server_cpu_pct": round(100 * (cb - ca) / secs, 1),
            "redis_cpu_pct": round(100 * (rb - ra) / secs, 1) if ra is not None and rb is not None else None,
            "machine_cpu_pct": round(100 * (mb - ma) / secs, 1),
            "server_wait_pct": round(100 * (wb - wa) / secs, 1) if wa is not None and wb is not None else None,
            "heartbeats_per_s": round(counts.get(f"{phase}:heartbeat", 0) / secs, 1),
            "changes_per_s": round(n_changes / secs, 1),
            "diffs_broadcast": diffs_broadcast,
            "joins": observer_counts.get(f"{phase}:joins", 0),
            "leaves": observer_counts.get(f"{phase}:leaves", 0),
        }
        rtts = sorted(rtt for t, rtt in observer["pings"] if ta <= t < tb)
        row["ping_p99_ms"] = round(1000 * percentile(rtts, 0.99), 1) if rtts else None
        if phase == "churn" and n_changes:
            row.update({
                "latency_p50_ms": round(1000 * percentile(latencies, 0.50), 1) if latencies else None,
                "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 1) if latencies else None,
                "latency_max_ms": round(1000 * max(latencies), 1) if latencies else None,
                "changes_seen": len(latencies), "changes_unseen": unseen,
                "diffs_per_change": round(diffs_broadcast / n_changes, 3),
                "frames_per_change": round(diffs_delivered / n_changes, 1),
            })
        rows.append(row)
    extra = {"setup_seconds": round(setup_seconds, 1), "log_tracebacks": log_errors,
             "still_open": sum(r["still_open"] for r in results.values()),
             "closes_before_end": {k: v for r in results.values() for k, v in r["closes"].items()}}
    return rows, extra


def table(rows):
    cols = [("store", "store"), ("phase", "phase"), ("conns", "conns"), ("seconds", "s"),
            ("server_cpu_pct", "server CPU % of a core"), ("redis_cpu_pct", "Redis CPU %"),
            ("machine_cpu_pct", "machine CPU % (2 cores = 200)"),
            ("server_wait_pct", "server waiting for a CPU %"), ("heartbeats_per_s", "heartbeats/s"),
            ("changes_per_s", "changes/s"), ("latency_p50_ms", "diff p50 ms"), ("latency_p99_ms", "diff p99 ms"),
            ("latency_max_ms", "diff max ms"), ("diffs_per_change", "diffs broadcast / change"),
            ("frames_per_change", "frames sent / change"), ("changes_unseen", "changes not shown"),
            ("ping_p99_ms", "ping RTT p99 ms"), ("joins", "joins"), ("leaves", "leaves")]
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join("" if r.get(k) is None else str(r[k]) for k, _ in cols) + " |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=4, help="client processes (plus one observer)")
    parser.add_argument("--heartbeat", type=float, default=15.0, help="MYTHLINE_HEARTBEAT_SECONDS (default 15)")
    parser.add_argument("--change-share", type=float, default=0.10, help="share of connections changing state per second")
    parser.add_argument("--idle-seconds", type=float, default=45.0)
    parser.add_argument("--churn-seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=None, help="seconds between setup and measuring")
    parser.add_argument("--store", default="memory,redis", help="memory, redis or both (comma-separated)")
    parser.add_argument("--server", default="daphne", choices=("daphne", "uvicorn"), help="server command")
    parser.add_argument("--layer", default="core", choices=("core", "pubsub"), help="channel layer with redis")
    parser.add_argument("--quick", action="store_true", help="200 conns, 2 s heartbeat, 10 s phases")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    if args.quick:
        args.conns, args.heartbeat, args.idle_seconds, args.churn_seconds = 200, 2.0, 10.0, 10.0
    if args.settle is None:
        args.settle = min(10.0, max(3.0, args.heartbeat / 2))
    stores = [s.strip() for s in args.store.split(",") if s.strip()]

    workdir = Path(tempfile.mkdtemp(prefix="mythline-bench-presence-"))
    base_env = {**os.environ, **SERVER_ENV, "DJANGO_SETTINGS_MODULE": "mythline_site.settings",
                "MYTHLINE_VAR_DIR": str(workdir), "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
                "BENCH_CONNS": str(args.conns), "PYTHONUNBUFFERED": "1"}
    base_env.pop("REDIS_URL", None)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        print(f"setup in {workdir}: migrate, {args.conns} users + observer", flush=True)
        manage(base_env, "migrate", "--noinput")
        out = manage(base_env, "shell", "-c", SETUP_SCRIPT)
        tokens = json.loads(out.split("BENCH-SETUP ", 1)[1].splitlines()[0])
        rows, extras = [], {}
        for store in stores:
            print(f"store {store}: {args.conns} conns, heartbeat {args.heartbeat}s, idle {args.idle_seconds}s, "
                  f"churn {args.churn_seconds}s at {args.change_share:.0%}/s", flush=True)
            store_rows, extras[store] = run_store(store, args, tokens, workdir, base_env)
            rows += store_rows
            print(f"  [{store}] {extras[store]}", flush=True)
        print()
        print(f"Command: {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}")
        print(f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, client procs {args.procs}")
        print()
        print(table(rows))
        print()
        for store, extra in extras.items():
            print(f"{store}: {extra}")
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                             "extras": extras}, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
