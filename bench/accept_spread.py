#!/usr/bin/env python
"""How a burst of connections spreads over a server's workers: `uvicorn --workers N` (one shared
listening socket) against `python -m mythline_site.workers` (`manage.py serve`: each worker its own
SO_REUSEPORT socket).

    .venv/bin/python bench/accept_spread.py                 # 2 workers, 16 connections, 20 bursts each
    .venv/bin/python bench/accept_spread.py --workers 4 --connections 32 --bursts 10

For each kind: one server (embedded configuration, a temp dir; `manage.py migrate` first), then
--bursts times: open --connections TCP connections to it at once (as agents opening their
keep-alive connections together, or WebSockets reconnecting after a restart), send each an HTTP/1.1
keep-alive GET /healthz and read the answer (so every connection is accepted by a worker), count the
established connections each worker holds (/proc), close them all. Reports the splits and the
largest share one worker took. Only 127.0.0.1; every process and temp dir is removed on exit.
"""
from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (RESULTS_DIR, Server, connections_by_process, django_env, manage,  # noqa: E402
                          run_meta, server_processes)

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


def burst(server: Server, n: int) -> list[int]:
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(n)]
    try:
        for s in socks:
            s.sendall(REQUEST)
        for s in socks:
            if not s.recv(65536).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("/healthz did not answer 200")
        pids = server_processes(server)
        deadline = time.monotonic() + 5
        while True:  # the accepted sockets show in /proc as soon as the worker answered
            split = connections_by_process(pids, server.port)
            if sum(split.values()) >= n or time.monotonic() > deadline:
                return sorted(split.values(), reverse=True)
            time.sleep(0.01)
    finally:
        for s in socks:
            s.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--bursts", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mythline-bench-accept-"))
    results = {}
    try:
        env = django_env(workdir, f"sqlite:///{workdir / 'bench.sqlite3'}", {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
                                                                            "ALLOWED_HOSTS": "127.0.0.1"})
        manage(env, "migrate", "--noinput")
        # uvicorn-shared: `uvicorn --workers N`; uvicorn: as `manage.py serve` (bench/common.py server_command).
        for kind in ("uvicorn-shared", "uvicorn"):
            server = Server(kind, env, workdir, kind, workers=args.workers)
            try:
                server.wait_healthy()
                splits = [burst(server, args.connections) for _ in range(args.bursts)]
            finally:
                server.stop()
            top = [split[0] for split in splits]
            results[kind] = {"splits": splits, "largest_share_max": max(top) / args.connections,
                             "largest_share_mean": round(sum(top) / len(top) / args.connections, 3)}
            print(f"{kind:<15} largest share of one worker: mean {results[kind]['largest_share_mean']:.0%}, "
                  f"worst {results[kind]['largest_share_max']:.0%} (an even split: {1 / args.workers:.0%}); splits "
                  + " ".join("/".join(map(str, s)) for s in splits), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"accept-spread-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"meta": run_meta(), "args": vars(args), "results": results}, indent=2))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
