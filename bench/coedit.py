#!/usr/bin/env python
"""Co-editing benchmark: 10 WebSocket editors and 2 REST agents editing one document on a real server.

    .venv/bin/python bench/coedit.py --db both              # SQLite and Postgres, 30 s each
    .venv/bin/python bench/coedit.py --db sqlite --quick    # 10 s

For each database (same scaffolding as bench/ingest.py, whose helpers are imported): a fresh temp
dir, `migrate`, a story `bench` with agents made by `create_agent`, and `daphne` on 127.0.0.1 with
rate limits raised out of the way. Then, for --seconds:

- --editors (10) WebSocket clients (`websockets`, one asyncio loop), each subscribed to
  `doc:bench/main`, typing --rate (5) edits/s: a character or a short word inserted at a random
  position of its local copy. Like @codemirror/collab: local text + synced revision, unconfirmed
  change sets, one `doc.push` in flight (the unconfirmed ones composed); a remote `doc.change`
  rebases the unconfirmed ones (`u.map(C)`, `C.map(u, True)`); `conflict` (with the current revision
  R) -> wait until the doc.change frames up to R have arrived over the subscription (rebasing as
  they come) -> push again; `doc.pull` only if they have not all come within 1 s, or on a gap.
- 2 REST agents, ~1 op/s each, alternating `{"append": ...}` and
  `{"base_revision": R, "edits": [...]}` (R read just before with GET).

Reported: push-to-ack (push sent -> own doc.change) and push-to-others (push sent -> the same
change at each other editor; keyed by client_id, which carries editor + counter) p50/p99,
edit-to-ack (a keystroke typed -> the push carrying it confirmed, conflicts and retries included), server
changes/s, conflicts, and the ceiling: a `manage.py shell -c` loop doing row-locked updates of the
same Document + DocumentChange insert for 5 s. At the end every editor's text must equal the server's.
Only 127.0.0.1 is contacted; everything started is stopped, temp dirs and the database removed.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (DEFAULT_PG_URL, RESULTS_DIR, Interrupted, Server, _on_sigterm, django_env,  # noqa: E402
                          manage, percentile, pg_recreate, pg_url_with_db)
from bench.ingest import SERVER_ENV, SETUP_SCRIPT, Profiler, shell_json  # noqa: E402
from stories.changesets import ChangeSet  # noqa: E402  (pure Python, no Django)

STORY, DOC = "bench", "main"
TOPIC = f"doc:{STORY}/{DOC}"
WORDS = ["a", "e", " ", "the ", "sea ", "wolf ", "ash ", "king ", "and ", "x", "moon ", "ember "]
MAX_PUSHES = 1_000_000  # a hard bound besides the clock
CONFLICT_WAIT = 1.0  # s to wait for the changes a conflict announced before pulling (collab.js: conflictWait)

COEDIT_ENV = {**SERVER_ENV, "MYTHLINE_WS_FRAME_RATE": "100000", "MYTHLINE_WS_FRAME_BURST": "100000",
              "MYTHLINE_WS_FLOOD_CLOSE_AFTER": "1000000", "MYTHLINE_LOOP_WINDOW_SECONDS": "0"}
COEDIT_ENV.pop("MYTHLINE_BENCH_BASELINE", None)

CEILING_SCRIPT = r"""
import json, time
from django.db import transaction
from accounts.models import User
from stories.models import Document, DocumentChange

doc = Document.objects.get(story__slug="%(story)s", name="%(doc)s")
author = User.objects.get(username="bench-owner")
n, deadline = 0, time.perf_counter() + float(%(seconds)s)
started = time.perf_counter()
while time.perf_counter() < deadline and n < 1_000_000:
    with transaction.atomic():
        d = Document.objects.select_for_update().get(pk=doc.pk)
        d.text = d.text + "z"
        d.revision += 1
        d.save(update_fields=["text", "revision", "updated_at"])
        DocumentChange.objects.create(document=d, revision=d.revision, author=author,
                                      changes=[len(d.text) - 1, [0, "z"]], client_id="ceiling", via="rest")
    n += 1
wall = time.perf_counter() - started
print("BENCH-CEILING " + json.dumps({"changes": n, "seconds": wall, "per_s": n / wall}))
"""


class ThreadProfiler(Profiler):
    """py-spy on the server, every thread, waiting included: where a push's time goes, not only
    its CPU (the event loop and the database thread show apart)."""

    def start(self, pid: int, seconds: float, out: Path):
        if self.py_spy:
            self.proc = subprocess.Popen([self.py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                          "--rate", "200", "--format", "raw", "--threads", "--idle",
                                          "--output", str(out)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


class Stats:
    def __init__(self):
        self.ack: list[float] = []
        self.others: list[float] = []
        self.edit_ack: list[float] = []
        self.pulls = 0
        self.conflict_waits = 0
        self.sent_at: dict[str, float] = {}
        self.ws_conflicts = 0
        self.rest_conflicts = 0
        self.rest_ok = 0
        self.errors: dict[str, int] = {}
        self.pushes = 0
        self.acked = 0
        self.recording = False

    def error(self, key: str):
        self.errors[key] = self.errors.get(key, 0) + 1


class Editor:
    """A CodeMirror-collab-like client: local text, synced revision, unconfirmed changes."""

    def __init__(self, no: int, ws, stats: Stats, rng: random.Random):
        self.no, self.ws, self.stats, self.rng = no, ws, stats, rng
        self.prefix = f"e{no}-"
        self.text, self.rev = "", 0
        self.unconfirmed: list[ChangeSet] = []
        self.typed_at: list[float] = []  # when each unconfirmed change was typed
        self.waiting_for: int | None = None  # after a conflict: the revision to reach before pushing again
        self.inflight: tuple[str, int, float] | None = None  # client_id, count composed, sent at
        self.pulling = False
        self.counter = 0
        self.conflicts = 0
        self.ready = asyncio.Event()

    async def send(self, frame: dict):
        await self.ws.send(json.dumps(frame))

    async def maybe_push(self):
        if self.inflight or self.pulling or self.waiting_for is not None or not self.unconfirmed:
            return
        cs = self.unconfirmed[0]
        for u in self.unconfirmed[1:]:
            cs = cs.compose(u)
        self.counter += 1
        cid = f"{self.prefix}{self.counter}"
        now = time.perf_counter()
        self.inflight = (cid, len(self.unconfirmed), now)
        self.stats.sent_at[cid] = now
        self.stats.pushes += 1
        await self.send({"type": "doc.push", "topic": TOPIC, "revision": self.rev, "changes": cs.to_json(),
                         "client_id": cid})

    def type_one(self):
        pos = self.rng.randint(0, len(self.text))  # ASCII only: characters == UTF-16 units
        cs = ChangeSet.of([(pos, pos, self.rng.choice(WORDS))], len(self.text))
        self.text = cs.apply(self.text)
        self.unconfirmed.append(cs)
        self.typed_at.append(time.perf_counter())

    def apply_change(self, change: dict, now: float) -> None:
        """A change at revision self.rev + 1 (own ack or remote)."""
        cid = change.get("client_id") or ""
        if self.inflight and cid == self.inflight[0]:
            if self.stats.recording:
                self.stats.ack.append(now - self.inflight[2])
                self.stats.acked += 1
                self.stats.edit_ack.extend(now - t for t in self.typed_at[:self.inflight[1]])
            del self.unconfirmed[:self.inflight[1]]
            del self.typed_at[:self.inflight[1]]
            self.inflight = None
        else:
            c = ChangeSet.from_json(change["changes"], len(self.text) - sum(u.new_length - u.length for u in self.unconfirmed))
            rebased = []
            for u in self.unconfirmed:
                rebased.append(u.map(c))
                c = c.map(u, True)
            self.unconfirmed = rebased
            self.text = c.apply(self.text)
            sent = self.stats.sent_at.get(cid)
            if sent is not None and self.stats.recording:
                self.stats.others.append(now - sent)
        self.rev = change["revision"]
        if self.waiting_for is not None and self.rev >= self.waiting_for:
            self.waiting_for = None  # rebased over everything the conflict announced: push again
            self.stats.conflict_waits += 1

    async def reader(self):
        async for raw in self.ws:
            now = time.perf_counter()
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "doc.state":
                self.text, self.rev = frame["text"], frame["revision"]
                self.ready.set()
            elif kind == "doc.change":
                if frame["revision"] == self.rev + 1:
                    self.apply_change(frame, now)
                    await self.maybe_push()
                elif frame["revision"] > self.rev + 1 and not self.pulling:
                    await self.pull()
            elif kind == "doc.changes":
                for change in frame["changes"]:
                    if change["revision"] == self.rev + 1:
                        self.apply_change(change, now)
                self.pulling = False
                if self.waiting_for is not None:  # the pull was the fallback: whatever it brought, go on
                    self.waiting_for = None
                await self.maybe_push()
            elif kind == "error":
                if frame.get("code") == "conflict":
                    self.stats.ws_conflicts += 1
                    self.conflicts += 1
                    self.inflight = None
                    current = frame.get("revision")
                    if not isinstance(current, int):
                        await self.pull()
                    elif current <= self.rev:  # what it announced has already come
                        self.stats.conflict_waits += 1
                        await self.maybe_push()
                    else:
                        self.waiting_for = current
                        asyncio.get_running_loop().call_later(CONFLICT_WAIT, self.wait_expired, current)
                else:
                    self.stats.error(f"ws:{frame.get('code')}")
                    self.inflight = None

    async def pull(self):
        if not self.pulling:
            self.pulling = True
            self.stats.pulls += 1
            await self.send({"type": "doc.pull", "topic": TOPIC, "after": self.rev, "ref": "pull"})

    def wait_expired(self, target: int):
        if self.waiting_for == target and self.rev < target:  # a change lost on the way: fall back to a pull
            asyncio.ensure_future(self.pull())

    async def typist(self, deadline: float, rate: float):
        interval = 1.0 / rate
        next_at = time.perf_counter() + self.rng.random() * interval
        for _ in range(MAX_PUSHES):
            if next_at >= deadline:
                break
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += interval
            self.type_one()
            await self.maybe_push()

    @property
    def settled(self) -> bool:
        return not self.unconfirmed and not self.inflight and not self.pulling and self.waiting_for is None


async def rest_agent(client: httpx.AsyncClient, no: int, deadline: float, stats: Stats, rng: random.Random):
    url = f"/api/stories/{STORY}/documents/{DOC}"
    for i in range(MAX_PUSHES):
        if time.perf_counter() >= deadline:
            break
        try:
            if i % 2 == 0:
                body = {"append": f" [agent {no} note {i}]"}
            else:
                r = await client.get(url)
                doc = r.json()
                pos = rng.randint(0, len(doc["text"]))
                body = {"base_revision": doc["revision"], "edits": [{"from": pos, "to": pos, "insert": f"<a{no}>"}]}
            r = await client.post(url + "/ops", json=body)
            if r.status_code in (200, 201):
                stats.rest_ok += 1
            elif r.status_code == 409:
                stats.rest_conflicts += 1
            else:
                stats.error(f"rest:{r.status_code}")
        except httpx.HTTPError as exc:
            stats.error(f"rest:{type(exc).__name__}")
        await asyncio.sleep(max(0.0, 1.0 + rng.uniform(-0.2, 0.2)))


async def run_load(server: Server, agents: list[dict], args) -> dict:
    stats = Stats()
    rng = random.Random(args.seed)
    ws_url = f"ws://127.0.0.1:{server.port}/ws/"
    editors: list[Editor] = []
    readers = []
    rest_clients = [httpx.AsyncClient(base_url=server.base_url, timeout=30.0,
                                      headers={"Authorization": f"Bearer {a['token']}"})
                    for a in agents[args.editors:args.editors + 2]]
    doc_url = f"/api/stories/{STORY}/documents/{DOC}"
    try:
        for i in range(args.editors):
            ws = await websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {agents[i]['token']}"},
                                          open_timeout=30, max_size=2**24)
            ed = Editor(i, ws, stats, random.Random(rng.random()))
            editors.append(ed)
            readers.append(asyncio.create_task(ed.reader()))
            await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC}))
        await asyncio.wait_for(asyncio.gather(*(e.ready.wait() for e in editors)), 30)
        rev0 = (await rest_clients[0].get(doc_url)).json()["revision"]
        stats.recording = True
        started = time.perf_counter()
        deadline = started + args.seconds
        await asyncio.gather(*(e.typist(deadline, args.rate) for e in editors),
                             *(rest_agent(c, k, deadline, stats, random.Random(rng.random()))
                               for k, c in enumerate(rest_clients)))
        wall = time.perf_counter() - started
        rev1 = (await rest_clients[0].get(doc_url)).json()["revision"]
        stats.recording = False
        # Drain: every editor pushes what it still holds, then everyone catches up.
        settle_deadline = time.perf_counter() + 30
        while time.perf_counter() < settle_deadline:
            if any(t.done() for t in readers):
                break
            if all(e.settled for e in editors):
                server_doc = (await rest_clients[0].get(doc_url)).json()
                if all(e.rev == server_doc["revision"] for e in editors):
                    break
            await asyncio.sleep(0.1)
        server_doc = (await rest_clients[0].get(doc_url)).json()
        for t in readers:
            if t.done() and t.exception():
                stats.error(f"reader:{t.exception()!r}"[:120])
        converged = all(e.text == server_doc["text"] and e.rev == server_doc["revision"] for e in editors)
    finally:
        for e in editors:
            await e.ws.close()
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(c.aclose() for c in rest_clients), return_exceptions=True)
    ack, others, edit_ack = sorted(stats.ack), sorted(stats.others), sorted(stats.edit_ack)
    def ms(v):
        return round(v * 1000, 1) if v is not None else None
    text = server_doc["text"]
    return {
        "seconds": round(wall, 2), "editors": args.editors, "rate_per_editor": args.rate,
        "ws_pushes": stats.pushes, "ws_acked": stats.acked, "ws_conflicts": stats.ws_conflicts,
        "ws_conflict_waits": stats.conflict_waits, "ws_pulls": stats.pulls,
        "rest_ok": stats.rest_ok, "rest_conflicts": stats.rest_conflicts, "errors": stats.errors,
        "server_changes": rev1 - rev0, "server_changes_per_s": round((rev1 - rev0) / wall, 1),
        "ack_p50_ms": ms(percentile(ack, 0.5)), "ack_p99_ms": ms(percentile(ack, 0.99)), "ack_n": len(ack),
        "others_p50_ms": ms(percentile(others, 0.5)), "others_p99_ms": ms(percentile(others, 0.99)),
        "others_n": len(others),
        "edit_ack_p50_ms": ms(percentile(edit_ack, 0.5)), "edit_ack_p99_ms": ms(percentile(edit_ack, 0.99)),
        "edit_ack_n": len(edit_ack),
        "converged": converged, "final_revision": server_doc["revision"], "final_chars": len(text),
        "final_sha256": hashlib.sha256(text.encode()).hexdigest()[:16], "final_text": text,
        "editor_revisions": sorted({e.rev for e in editors}),
        # Who loses the races: conflicts and pushes per editor, in the order they subscribed.
        "conflicts_by_editor": [e.conflicts for e in editors], "pushes_by_editor": [e.counter for e in editors],
    }


def bench_database(db: str, args, cleanup: list) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"mythline-coedit-{db}-"))
    cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    if db == "sqlite":
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    else:
        database_url = pg_url_with_db(args.pg_url, args.pg_db)
        pg_recreate(args.pg_url, args.pg_db)
        cleanup.append(lambda: pg_recreate(args.pg_url, args.pg_db, drop_only=True))
    env = django_env(workdir, database_url, COEDIT_ENV)
    print(f"[{db}] migrate + setup in {workdir}", file=sys.stderr)
    manage(env, "migrate", "--noinput")
    setup = shell_json(env, SETUP_SCRIPT, "BENCH-SETUP", {"BENCH_AGENTS": str(args.editors + 2)})
    server = Server("daphne", env, workdir, "daphne")
    cleanup.append(server.stop)
    server.wait_healthy()
    print(f"[{db}] daphne on {server.base_url} (pid {server.proc.pid}); {args.seconds:g} s of load", file=sys.stderr)
    profiler = ThreadProfiler(args.py_spy)
    if args.py_spy:  # the whole load phase; py-spy slows the server, so profiled numbers are not results
        profile = RESULTS_DIR / f"coedit-{db}-{datetime.now():%Y%m%d-%H%M%S}.pyspy.txt"
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler.start(server.proc.pid, args.seconds + 5, profile)
        print(f"[{db}] py-spy -> {profile}", file=sys.stderr)
    try:
        result = asyncio.run(run_load(server, setup["agents"], args))
        profiler.wait()
        if server.proc.poll() is not None:
            raise RuntimeError(f"daphne died:\n{server.log_tail()}")
    finally:
        profiler.stop()
        server.stop()
    # The ceiling, with the server stopped: one loop of row-locked updates of the same tables.
    ceiling = shell_json(env, CEILING_SCRIPT % {"story": STORY, "doc": DOC, "seconds": args.ceiling_seconds},
                         "BENCH-CEILING")
    result.update(db=db, ceiling_per_s=round(ceiling["per_s"], 1),
                  ours_over_ceiling=round(result["server_changes_per_s"] / ceiling["per_s"], 3))
    print(f"[{db}] {json.dumps({k: v for k, v in result.items() if k != 'final_text'})}", file=sys.stderr)
    return result


def markdown_table(results: list[dict]) -> str:
    lines = ["| DB | push→ack p50 / p99 ms | push→others p50 / p99 ms | edit→ack p50 / p99 ms | server changes/s "
             "| ceiling changes/s | ours/ceiling | WS conflicts (pushes) | pulls | REST ok / 409 | errors | converged |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in results:
        errors = sum(r["errors"].values())
        lines.append(
            f"| {r['db']} | {r['ack_p50_ms']} / {r['ack_p99_ms']} | {r['others_p50_ms']} / {r['others_p99_ms']} "
            f"| {r['edit_ack_p50_ms']} / {r['edit_ack_p99_ms']} "
            f"| {r['server_changes_per_s']} | {r['ceiling_per_s']} | {r['ours_over_ceiling']} "
            f"| {r['ws_conflicts']} ({r['ws_pushes']}) | {r['ws_pulls']} | {r['rest_ok']} / {r['rest_conflicts']} | {errors} "
            f"| {'yes' if r['converged'] else 'NO'} (r{r['final_revision']}, {r['final_chars']} chars, "
            f"sha256 {r['final_sha256']}) |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per database (default 30)")
    parser.add_argument("--quick", action="store_true", help="10 s per database")
    parser.add_argument("--editors", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0, help="edits per second per editor (default 5)")
    parser.add_argument("--ceiling-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--pg-db", default="mythline_bench_coedit")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy binary: record the server (raw collapsed stacks, "
                        "all threads, idle included) during the load; slows the server, so not for results")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 10.0
    if not 0 < args.seconds <= 600 or not 1 <= args.editors <= 100 or not 0 < args.rate <= 50:
        parser.error("--seconds 0..600, --editors 1..100, --rate 0..50")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    cleanup: list = []
    results = []
    started = datetime.now(timezone.utc)
    try:
        for db in dbs:
            results.append(bench_database(db, args, cleanup))
    except (KeyboardInterrupt, Interrupted):
        print("interrupted: stopping everything the bench started", file=sys.stderr)
        return 130
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001
                print(f"cleanup: {exc!r}", file=sys.stderr)
    out = args.out or RESULTS_DIR / f"coedit-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": {"command": " ".join(["python", *sys.argv]), "seconds": args.seconds,
                                        "cpus": os.cpu_count(), "started_at": started.isoformat(timespec="seconds")},
                               "results": results}, indent=2))
    print(markdown_table(results))
    print()
    for r in results:
        print(f"{r['db']}: converged={r['converged']} (every editor's text == server text at r{r['final_revision']}); "
              f"goal p99 < 100 ms: ack {'met' if (r['ack_p99_ms'] or 1e9) < 100 else 'NOT met'}, "
              f"others {'met' if (r['others_p99_ms'] or 1e9) < 100 else 'NOT met'}; errors {r['errors'] or 0}")
        print(f"{r['db']} final text:\n{r['final_text']}\n")
    print(f"results: {out}")
    return 0 if all(r["converged"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
