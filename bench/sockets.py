#!/usr/bin/env python
"""Ten thousand sockets (issue 18): server memory per connection, idle CPU, one broadcast to all.

    .venv/bin/python bench/sockets.py                                  # 1k, 5k, 10k sockets; uvicorn, 1 process
    .venv/bin/python bench/sockets.py --steps 200,1000 --idle-seconds 10
    .venv/bin/python bench/sockets.py --workers 2                      # two uvicorn workers behind Redis

What one run does, building everything from scratch and tearing it down at the end:

1. a temp dir (MYTHLINE_VAR_DIR: SQLite file, static root, server logs); `manage.py migrate`; the
   fan-out benchmark's set-up script (bench/fanout.py) creates the story `bench`, its public
   channel `general`, an editor who publishes and max(--steps) viewers, each with a bearer token;
2. `ours`: one server (`uvicorn ... --ws websockets-sansio --backlog 8192`; with --workers 2,
   `python -m mythline_site.workers` as `manage.py serve` runs them, each worker on its own
   SO_REUSEPORT socket, and the Redis channel layer on a db of its own; with 1 the embedded
   configuration) with the
   rate limits raised out of the way and the default heartbeat (MYTHLINE_HEARTBEAT_SECONDS unset:
   15 s). Its RSS once idle is the baseline. --procs client processes (asyncio + `websockets`,
   uvloop when installed, no compression) then open sockets in steps up to each of --steps: each
   socket sends `Authorization: Bearer`, waits for `welcome`, subscribes to `channel:bench/general`
   and waits for `subscribed`, then behaves as the browser client does: it reads everything, answers
   the server's pings, and sends `{"type": "heartbeat"}` every `heartbeat_seconds` of its welcome
   (the sends spread evenly over the interval). After each step the server's RSS (VmRSS of every
   process of its session, summed) is read once it settles: KiB per connection = (RSS - baseline) /
   sockets, and the marginal KiB per socket since the previous step (one-time costs such as imports
   and caches left out);
3. at the largest step: the server's CPU over --idle-seconds with every socket idle but for its
   heartbeats, as % of one core; then the publisher POSTs --messages messages, --spacing seconds
   apart, to `/api/stories/bench/channels/general/messages`; each payload carries `bench_ts`
   (time.time() just before the POST) and every socket records receive time - bench_ts (all
   processes share the machine's clock): delivered share, p50/p99/max;
4. `ws`: the same steps, idle reading and broadcast on the bare `websockets` broadcast server
   (bench/baseline_ws.py: no Django, no auth, no subscribe, no heartbeat frames; its own pings
   every 20 s), so our numbers read as ratios against the Python floor.

Only 127.0.0.1 is contacted; every wait is bounded; every process, temp dir and Redis key the script
made is removed on exit, errors and Ctrl-C included. Results: Markdown tables on stdout, JSON under
bench/results/ (gitignored).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Both are stdlib-only at import, as this module is (the client processes import it).
from bench.common import (RESULTS_DIR, ROOT, ClientProcesses, Server, _on_sigterm, _proc_stat,  # noqa: E402
                          client_process_main, django_env, machine_busy_seconds, manage, merge_counts,
                          merged_latencies, percentile, proc_cpu_seconds, redis_cleanup, redis_server_pid, run_meta,
                          run_saving)
from bench.fanout import (CHANNEL, SERVER_ENV, SETUP_SCRIPT, STORY, TEXT, TOPIC, _number_after,  # noqa: E402
                          ms, wait_quiet)

MAX_SOCKETS = 15_000
TARGETS = ("ours", "ws")


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the servers and clients started after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def session_rss_kib(sid: int) -> int:
    """VmRSS of every live process in session `sid` (a server and its workers), summed, in KiB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is None or int(fields[3]) != sid:
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def settled_rss_kib(sid: int, max_wait: float, window: int = 5) -> int:
    """The session's RSS once it stops moving: the last `window` one-second readings within 0.5 %
    of each other (or after max_wait seconds, the last reading)."""
    readings = [session_rss_kib(sid)]
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        time.sleep(1.0)
        readings.append(session_rss_kib(sid))
        last = readings[-window:]
        if len(last) == window and max(last) - min(last) <= 0.005 * max(last):
            break
    return readings[-1]


# --- client processes -----------------------------------------------------------------------------

def client_process(index: int, url: str, tokens: list, target: str, concurrency: int, ctrl, out_q) -> None:
    """One client process: opens its share of the sockets step by step as the parent says, keeps them
    alive as a browser would, records broadcast latencies, reports."""
    raise_fd_limit()
    client_process_main(_client_main, index, url, tokens, target, concurrency, ctrl, out_q)


async def _client_main(index, url, tokens, target, concurrency, ctrl, out_q, loop_kind):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    loop = asyncio.get_running_loop()
    conns: list = []
    readers: list = []
    seen: list[set] = []
    latencies = array("d")
    stats = {"heartbeats": 0, "acks": 0, "other": 0, "closes": {}, "connect_errors": {}}
    state = {"expected": None, "complete": 0, "aborting": False, "heartbeat_seconds": None, "next_token": 0}
    done = asyncio.Event()
    sem = asyncio.Semaphore(concurrency)

    async def reader(j, ws):
        mine = seen[j]
        now = time.time
        try:
            async for raw in ws:
                t = now()
                i_text = _number_after(raw, '"bench_i":') if isinstance(raw, str) else None
                if i_text is None:
                    if isinstance(raw, str) and '"heartbeat_ack"' in raw:
                        stats["acks"] += 1
                    else:
                        stats["other"] += 1
                    continue
                i = int(i_text)
                if i in mine:
                    continue
                mine.add(i)
                latencies.append(t - float(_number_after(raw, '"bench_ts":')))
                expected = state["expected"]
                if expected is not None and len(mine) == expected:
                    state["complete"] += 1
                    if state["complete"] >= len(conns):
                        done.set()
        except ConnectionClosed:
            pass
        finally:
            if not state["aborting"]:  # closed by the server, not by us at the end
                key = str(ws.close_code)
                stats["closes"][key] = stats["closes"].get(key, 0) + 1

    async def open_one(token):
        headers = {"Authorization": f"Bearer {token}"} if target == "ours" else {}
        last_exc = None
        for attempt in range(4):
            try:
                async with sem:
                    ws = await connect(url, additional_headers=headers, compression=None, open_timeout=60,
                                       ping_interval=None, close_timeout=5, max_size=2 ** 20)
                    if target == "ours":
                        welcome = json.loads(await asyncio.wait_for(ws.recv(), 60))
                        if welcome.get("type") != "welcome":
                            raise RuntimeError(f"first frame {welcome!r}")
                        state["heartbeat_seconds"] = welcome.get("heartbeat_seconds")
                        await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC, "ref": "s"}))
                        while True:
                            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                            if frame.get("ref") == "s":
                                if frame.get("type") != "subscribed":
                                    raise RuntimeError(f"subscribe answered {frame!r}")
                                break
                seen.append(set())
                conns.append(ws)
                readers.append(asyncio.create_task(reader(len(conns) - 1, ws)))
                return
            except Exception as exc:  # noqa: BLE001 - counted and retried, bounded
                last_exc = exc
                await asyncio.sleep(0.5 * (attempt + 1))
        name = type(last_exc).__name__
        stats["connect_errors"][name] = stats["connect_errors"].get(name, 0) + 1

    async def heartbeats():
        """What the browser client does: a `heartbeat` frame per socket every heartbeat_seconds,
        this process's sends spread evenly over the interval."""
        while True:
            interval = state["heartbeat_seconds"] or 15.0
            open_now = [ws for ws in conns if ws.state.name == "OPEN"]
            if not open_now:
                await asyncio.sleep(1.0)
                continue
            gap = interval / len(open_now)
            for ws in open_now:
                try:
                    await ws.send('{"type":"heartbeat"}')
                    stats["heartbeats"] += 1
                except ConnectionClosed:
                    pass
                await asyncio.sleep(gap)

    beating = asyncio.create_task(heartbeats()) if target == "ours" else None
    try:
        while True:
            command = await loop.run_in_executor(None, ctrl.recv)
            if command[0] == "open":  # ("open", total sockets this process should hold, timeout)
                _, want, timeout = command
                started = time.monotonic()
                todo = tokens[state["next_token"]:want]
                state["next_token"] = max(state["next_token"], want)
                try:
                    await asyncio.wait_for(asyncio.gather(*(open_one(t) for t in todo)), timeout)
                except asyncio.TimeoutError:
                    stats["connect_errors"]["timeout"] = stats["connect_errors"].get("timeout", 0) + 1
                out_q.put(("opened", index, {"connected": len(conns), "connect_errors": dict(stats["connect_errors"]),
                                             "connect_seconds": round(time.monotonic() - started, 2),
                                             "loop": loop_kind}))
            elif command[0] == "counters":
                out_q.put(("counters", index, {"heartbeats": stats["heartbeats"], "acks": stats["acks"],
                                               "closes": dict(stats["closes"])}))
            elif command[0] == "collect":  # ("collect", messages expected per socket, deadline)
                _, expected, deadline = command
                state["expected"] = expected
                state["complete"] = sum(1 for s in seen if len(s) >= expected)
                if state["complete"] >= len(conns):
                    done.set()
                try:
                    await asyncio.wait_for(done.wait(), max(0.0, deadline - time.time()))
                except asyncio.TimeoutError:
                    pass
                out_q.put(("collected", index, {"connected": len(conns), "complete": state["complete"],
                                                "delivered": sum(len(s) for s in seen),
                                                "latencies": latencies.tobytes(), "closes": dict(stats["closes"])}))
            else:  # ("stop",)
                break
    finally:
        state["aborting"] = True
        if beating is not None:
            beating.cancel()
        for task in readers:
            task.cancel()
        for ws in conns:
            ws.transport.abort()  # no close handshakes: thousands of them would only add noise at the end
        await asyncio.gather(*readers, return_exceptions=True)


class Clients(ClientProcesses):
    """--procs client processes, each holding tokens[i::procs] (for `ws`, no tokens)."""

    def __init__(self, *, url: str, tokens: list, target: str, procs: int, concurrency: int):
        self.shares = [tokens[i::procs] for i in range(procs)]
        super().__init__(client_process, self.shares, lambda index, share, ctrl, out_q: (
            index, url, share, target, max(2, concurrency // procs), ctrl, out_q))

    def _ask(self, command_for, kind: str, timeout: float) -> dict:
        self.send(command_for)
        return self.reports(kind, timeout)

    def open(self, total: int, timeout: float) -> dict:
        """Open sockets until `total` are held over all processes (spread evenly)."""
        n = len(self.procs)
        opened = self._ask(lambda i: ("open", total // n + (1 if i < total % n else 0), timeout), "opened",
                           timeout + 60)
        return {"connected": sum(r["connected"] for r in opened.values()),
                "connect_seconds": max(r["connect_seconds"] for r in opened.values()),
                "connect_errors": merge_counts(r["connect_errors"] for r in opened.values()),
                "loop": next(iter(opened.values()))["loop"]}

    def counters(self) -> dict:
        got = self._ask(lambda i: ("counters",), "counters", 30)
        return {"heartbeats": sum(r["heartbeats"] for r in got.values()), "acks": sum(r["acks"] for r in got.values()),
                "closes": merge_counts(r["closes"] for r in got.values())}

    def collect(self, expected: int, deadline: float) -> dict:
        return self._ask(lambda i: ("collect", expected, deadline), "collected", max(0.0, deadline - time.time()) + 60)

    def stop(self) -> None:
        super().stop(("stop",), timeout=20)


# --- publisher ------------------------------------------------------------------------------------

async def publish(target: str, server: Server, token: str, count: int, spacing: float) -> dict:
    """`count` messages, `spacing` s apart; each payload has its index and time.time() at the send."""
    import httpx
    from websockets.asyncio.client import connect

    errors: dict = {}
    answers = []
    if target == "ws":
        ws = await connect(server.ws_base + "/pub", compression=None, ping_interval=None, open_timeout=30)
    else:
        http = httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        for i in range(count):
            if i:
                await asyncio.sleep(spacing)
            ts = time.time()
            payload = {"text": TEXT, "bench_i": i, "bench_ts": ts}
            try:
                if target == "ws":
                    await ws.send(json.dumps(payload))
                else:
                    r = await http.post(f"/api/stories/{STORY}/channels/{CHANNEL}/messages",
                                        json={"msg_type": "narration", "payload": payload})
                    if r.status_code != 201:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                        continue
                answers.append(time.time() - ts)
            except Exception as exc:  # noqa: BLE001 - counted
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    finally:
        if target == "ws":
            await ws.close()
        else:
            await http.aclose()
    return {"sent": len(answers), "errors": errors, "answer_p50_ms": ms(percentile(sorted(answers), 0.5))}


# --- one target -----------------------------------------------------------------------------------

def run_target(target: str, server: Server, setup: dict, args) -> dict:
    url = server.ws_base + ("/ws/" if target == "ours" else "/sub")
    tokens = setup["subscribers"] if target == "ours" else [None] * max(args.steps)
    sid = server.proc.pid
    time.sleep(2.0)
    baseline = settled_rss_kib(sid, args.settle_seconds)
    print(f"  [{target}] server RSS before any socket: {baseline / 1024:.1f} MiB", file=sys.stderr)
    clients = Clients(url=url, tokens=tokens, target=target, procs=args.procs, concurrency=args.concurrency)
    result = {"target": target, "server": server.kind if target == "ours" else "websockets",
              "ws": args.ws if target == "ours" else "-", "baseline_rss_kib": baseline, "steps": []}
    try:
        prev_rss, prev_n = baseline, 0
        for step in args.steps:
            opened = clients.open(step, args.connect_timeout)
            rss = settled_rss_kib(sid, args.settle_seconds)
            n = opened["connected"]
            row = {"sockets": step, "connected": n, "connect_seconds": opened["connect_seconds"],
                   "connect_errors": opened["connect_errors"], "rss_kib": rss,
                   "kib_per_socket": round((rss - baseline) / n, 1) if n else None,
                   "marginal_kib_per_socket": round((rss - prev_rss) / (n - prev_n), 1) if n > prev_n else None}
            result["steps"].append(row)
            result["client_loop"] = opened["loop"]
            print(f"  [{target}] {n}/{step} sockets in {opened['connect_seconds']}s "
                  f"(errors {opened['connect_errors'] or '-'}): RSS {rss / 1024:.1f} MiB, "
                  f"{row['kib_per_socket']} KiB/socket, marginal {row['marginal_kib_per_socket']}", file=sys.stderr)
            prev_rss, prev_n = rss, n
            if server.proc.poll() is not None:
                raise RuntimeError(f"server died:\n{server.log_tail()}")

        # Idle: every socket open, nothing published; the clients heartbeat as browsers do.
        quiet = wait_quiet(args.quiet_cores, args.quiet_wait) if args.quiet_wait else None
        counters0 = clients.counters()
        marks0 = (server.cpu_seconds(), clients.cpu_seconds(), machine_busy_seconds(), time.monotonic(),
                  proc_cpu_seconds(redis_server_pid()) if args.workers > 1 else None)
        time.sleep(args.idle_seconds)
        marks1 = (server.cpu_seconds(), clients.cpu_seconds(), machine_busy_seconds(), time.monotonic(),
                  proc_cpu_seconds(redis_server_pid()) if args.workers > 1 else None)
        counters1 = clients.counters()
        wall = marks1[3] - marks0[3]
        server_cores = (marks1[0] - marks0[0]) / wall
        client_cores = (marks1[1] - marks0[1]) / wall
        redis_cores = (marks1[4] - marks0[4]) / wall if marks0[4] is not None and marks1[4] is not None else 0.0
        machine_cores = (marks1[2] - marks0[2]) / wall
        result["idle"] = {
            "seconds": round(wall, 1), "server_pct_core": round(100 * server_cores, 1),
            "client_cores": round(client_cores, 2), "redis_cores": round(redis_cores, 2),
            "machine_cores": round(machine_cores, 2),
            "others_cores": round(machine_cores - server_cores - client_cores - redis_cores, 2),
            "quiet_before_cores": quiet,
            "heartbeats_per_s": round((counters1["heartbeats"] - counters0["heartbeats"]) / wall, 1),
            "acks_per_s": round((counters1["acks"] - counters0["acks"]) / wall, 1),
            "rss_kib_after": session_rss_kib(sid),
        }
        print(f"  [{target}] idle {wall:.0f}s: server {result['idle']['server_pct_core']} % of a core, "
              f"{result['idle']['heartbeats_per_s']} heartbeats/s, others {result['idle']['others_cores']} cores",
              file=sys.stderr)

        # One broadcast to all, --messages times.
        pub = asyncio.run(publish(target, server, setup["publisher"], args.messages, args.spacing))
        collected = clients.collect(pub["sent"], time.time() + args.drain)
        lat = merged_latencies(collected.values())
        connected = sum(r["connected"] for r in collected.values())
        delivered = sum(r["delivered"] for r in collected.values())
        expected = connected * pub["sent"]
        result["broadcast"] = {
            "sockets": connected, "published": pub["sent"], "publish_errors": pub["errors"],
            "publish_answer_p50_ms": pub["answer_p50_ms"], "expected": expected, "delivered": delivered,
            "delivered_pct": round(100.0 * delivered / expected, 2) if expected else None,
            "p50_ms": ms(percentile(lat, 0.5)), "p90_ms": ms(percentile(lat, 0.9)),
            "p99_ms": ms(percentile(lat, 0.99)), "max_ms": ms(lat[-1] if lat else None),
            "closes": merge_counts(r["closes"] for r in collected.values()),
        }
        b = result["broadcast"]
        print(f"  [{target}] broadcast x{b['published']} to {connected}: {b['delivered_pct']} % delivered, "
              f"p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms, max {b['max_ms']} ms, closes {b['closes'] or '-'}",
              file=sys.stderr)
    finally:
        clients.stop()
    return result


def bench(args, cleanup: list, save) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix="mythline-sockets-"))
    cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    env = django_env(workdir, f"sqlite:///{workdir / 'bench.sqlite3'}", SERVER_ENV)
    env.pop("MYTHLINE_HEARTBEAT_SECONDS", None)  # the default heartbeat, as the goal says
    if args.workers > 1:  # several processes share the layer, presence and leases through Redis
        run_prefix = f"bench-sockets-{uuid.uuid4().hex[:10]}"
        cleanup.append(lambda: redis_cleanup(args.redis_url, run_prefix))
        env.update(REDIS_URL=args.redis_url, MYTHLINE_CHANNEL_LAYER="core", MYTHLINE_REDIS_PREFIX=run_prefix)
    n = max(args.steps)
    print(f"migrate + setup ({n} viewers) in {workdir}", file=sys.stderr)
    manage(env, "migrate", "--noinput")
    out = manage({**env, "BENCH_SUBSCRIBERS": str(n)}, "shell", "-c", SETUP_SCRIPT)
    setup = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("BENCH-SETUP "))[12:])

    runs: list[dict] = []
    for target in args.targets:
        if target == "ours":
            server = Server("uvicorn", env, workdir, "uvicorn", args.workers,
                            extra_args=("--ws", args.ws, "--backlog", str(args.backlog)))
        else:
            server = Server("ws", env, workdir, "ws")
        cleanup.append(server.stop)
        try:
            server.wait_healthy()
            runs.append(run_target(target, server, setup, args))
            save(runs)
        finally:
            server.stop()
            log = server.log_tail(1500).strip()
            if "Traceback" in log or "Error" in log:
                print(f"    server log tail:\n{log}", file=sys.stderr)
    return runs


# --- report -----------------------------------------------------------------------------------------

def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_tables(runs: list[dict]) -> str:
    base = next((r for r in runs if r["target"] == "ws"), None)
    base_steps = {s["sockets"]: s for s in base["steps"]} if base else {}
    lines = ["| target | server | sockets | connected | connect s | server RSS MiB | KiB / socket (goal < 50) "
             "| marginal KiB / socket | × bare websockets |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        for s in r["steps"]:
            b = base_steps.get(s["sockets"])
            ratio = (round(s["kib_per_socket"] / b["kib_per_socket"], 1)
                     if r is not base and b and b.get("kib_per_socket") and s.get("kib_per_socket") else None)
            server = f"{r['server']} ({r['ws']})" if r["ws"] != "-" else r["server"]
            lines.append(f"| {r['target']} | {server} | {fmt(s['sockets'])} | {fmt(s['connected'])} "
                         f"| {fmt(s['connect_seconds'])} | {fmt(round(s['rss_kib'] / 1024, 1))} "
                         f"| **{fmt(s['kib_per_socket'])}** | {fmt(s['marginal_kib_per_socket'])} | {fmt(ratio)} |")
    lines += ["", "| target | sockets | idle server % of a core (goal < 25) | heartbeats / s | other jobs' cores "
                  "| broadcasts | delivered % | p50 ms | p99 ms (goal < 250) | max ms | p99 × bare websockets |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        idle, b = r.get("idle", {}), r.get("broadcast", {})
        ratio = (round(b["p99_ms"] / base["broadcast"]["p99_ms"], 1)
                 if base and r is not base and b.get("p99_ms") and base.get("broadcast", {}).get("p99_ms") else None)
        lines.append(f"| {r['target']} | {fmt(b.get('sockets'))} | **{fmt(idle.get('server_pct_core'))}** "
                     f"| {fmt(idle.get('heartbeats_per_s'))} | {fmt(idle.get('others_cores'))} "
                     f"| {fmt(b.get('published'))} | {fmt(b.get('delivered_pct'))} | {fmt(b.get('p50_ms'))} "
                     f"| **{fmt(b.get('p99_ms'))}** | {fmt(b.get('max_ms'))} | {fmt(ratio)} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="1000,5000,10000", help="socket counts, ascending (default 1000,5000,10000)")
    parser.add_argument("--targets", default="ours,ws", help="which of ours,ws to measure (default both)")
    parser.add_argument("--server", choices=["uvicorn"], default="uvicorn", help="server command (uvicorn)")
    parser.add_argument("--ws", default="websockets-sansio",
                        choices=["auto", "websockets", "websockets-sansio", "wsproto"],
                        help="uvicorn's WebSocket implementation (default websockets-sansio)")
    parser.add_argument("--workers", type=int, choices=[1, 2], default=1,
                        help="uvicorn processes (2: Redis layer, presence and leases; default 1)")
    parser.add_argument("--db", choices=["sqlite"], default="sqlite", help="database (sqlite, a temp file)")
    parser.add_argument("--backlog", type=int, default=8192, help="uvicorn --backlog (default 8192)")
    parser.add_argument("--procs", type=int, default=8, help="client processes (default 8)")
    parser.add_argument("--concurrency", type=int, default=128,
                        help="socket handshakes in flight over all client processes (default 128)")
    parser.add_argument("--connect-timeout", type=float, default=300.0, help="seconds per step to connect (default 300)")
    parser.add_argument("--settle-seconds", type=float, default=30.0,
                        help="at most this long to wait for the server's RSS to settle after a step (default 30)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle CPU measured over this long (default 30)")
    parser.add_argument("--messages", type=int, default=5, help="broadcasts published (default 5)")
    parser.add_argument("--spacing", type=float, default=2.0, help="seconds between broadcasts (default 2)")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="at most this many seconds after the last broadcast for deliveries (default 30)")
    parser.add_argument("--quiet-cores", type=float, default=0.5,
                        help="before the idle reading wait until the machine is below this many busy cores (default 0.5)")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="...but at most this long (default 60; 0 = no wait)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="Redis for --workers 2 (127.0.0.1 only)")
    parser.add_argument("--out", type=Path, help="result JSON (default bench/results/sockets-<time>.json)")
    args = parser.parse_args(argv)
    try:
        args.steps = [int(a) for a in args.steps.split(",") if a.strip()]
    except ValueError:
        parser.error("--steps: comma-separated integers")
    if not args.steps or args.steps != sorted(set(args.steps)) or args.steps[0] < 1 or args.steps[-1] > MAX_SOCKETS:
        parser.error(f"--steps: ascending, 1..{MAX_SOCKETS}")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or set(args.targets) - set(TARGETS):
        parser.error(f"--targets: some of {','.join(TARGETS)}")
    if not 1 <= args.procs <= 32 or not 1 <= args.concurrency <= 1024:
        parser.error("--procs 1..32, --concurrency 1..1024")
    if not 1 <= args.messages <= 100 or not 0 <= args.spacing <= 60 or not 1 <= args.idle_seconds <= 600:
        parser.error("--messages 1..100, --spacing 0..60, --idle-seconds 1..600")
    host = args.redis_url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost"):
        parser.error("--redis-url: 127.0.0.1 only")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    nofile = raise_fd_limit()
    if nofile < max(args.steps) + 1000:
        print(f"RLIMIT_NOFILE is {nofile}: too low for {max(args.steps)} sockets", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    meta = run_meta(commit=commit.strip(), nofile=nofile, steps=args.steps, procs=args.procs, ws=args.ws,
                    workers=args.workers, server_env=SERVER_ENV)
    out = args.out or RESULTS_DIR / f"sockets-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    runs = run_saving(bench, args, out, meta)
    if runs is None:
        return 130
    print(f"results: {out}", file=sys.stderr)
    print(markdown_tables(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
