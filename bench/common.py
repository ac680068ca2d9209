"""Process scaffolding shared by the four benchmarks (bench/fanout.py, ingest.py, presence.py, coedit.py):
paths, free ports, `manage.py` runs, CPU readings from /proc, a server subprocess in its own session
(started, health-checked, stopped group-wide), percentiles and the SIGTERM handling. Stdlib only at
import: the benchmarks' spawned client processes import it too.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import procnet

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
PYTHON = sys.executable
BIN = Path(PYTHON).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Interrupted(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Interrupted(f"signal {signum}")


# --- processes ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str, timeout: float = 600) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


# --- CPU from /proc -------------------------------------------------------------------------------

def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (fields[1] is the ppid, [3] the session)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of one process (all its threads), from /proc."""
    if pid is None:
        return None
    fields = _proc_stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / CLK_TCK


def session_cpu_seconds(sid: int) -> float | None:
    """utime + stime of every live process in session `sid` (a server and its workers)."""
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is None:
            continue
        if int(fields[3]) == sid:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            found = True
    return total if found else None


def machine_busy_seconds() -> float:
    """CPU seconds spent by anything on this machine (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def redis_server_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server":
                    return int(entry.name)
            except OSError:
                continue
    return None


# --- Postgres -------------------------------------------------------------------------------------

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/test"


def pg_url_with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


def pg_recreate(admin_url: str, dbname: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{dbname}"')


def redis_cleanup(url: str, prefix: str) -> None:
    """Delete the keys a run made under `prefix`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    client.close()


# --- a run ----------------------------------------------------------------------------------------

def run_meta(**extra) -> dict:
    """What a results file says of its run: when, the command, the machine, and `extra`."""
    import platform
    from datetime import datetime, timezone

    return {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(PYTHON).name, *sys.argv]), "python": platform.python_version(),
            "cpus": os.cpu_count(), "platform": platform.platform(), **extra}


def run_saving(bench, args, out: Path, meta: dict) -> list | None:
    """`bench(args, cleanup, save)`, where `save(runs)` writes {"meta", "runs"} to `out` (call it
    after every phase: an interrupted run keeps what it measured) and every function appended to
    `cleanup` runs at the end, in reverse, errors and Ctrl-C included. None when interrupted."""
    import json

    cleanup: list = []
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(runs):
        out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))

    try:
        return bench(args, cleanup, save)
    except (KeyboardInterrupt, Interrupted):
        print(f"interrupted: stopping everything the bench started (partial results: {out})", file=sys.stderr)
        return None
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - clean up the rest anyway
                print(f"cleanup: {exc!r}", file=sys.stderr)


def django_env(workdir: Path, database_url: str, *overrides: dict, **extra) -> dict:
    """The environment of a bench's servers and `manage.py` runs: this process's, without what a
    run must choose itself (REDIS_URL, DATABASE_URL, DJANGO_SETTINGS_MODULE), then `overrides`
    (a bench's SERVER_ENV), the database, the temp dir as MYTHLINE_VAR_DIR, the checkout on
    PYTHONPATH, and `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    for override in overrides:
        env.update(override)
    env.update(DATABASE_URL=database_url, MYTHLINE_VAR_DIR=str(workdir), DJANGO_SETTINGS_MODULE="mythline_site.settings",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), **extra)
    return env


# --- client processes -----------------------------------------------------------------------------

class ClientProcesses:
    """Load-generating client processes (multiprocessing, spawn): process i runs
    `target(*args_for(i, share_i, ctrl, out_q))`, reads commands from its end of `ctrl` (a Pipe)
    and reports `(kind, i, data)` on `out_q`. `reports(kind)` waits for every process's report
    of that kind, failing fast when one dies; `stop(command)` asks them to end, then makes sure."""

    def __init__(self, target, shares: list, args_for, label: str = "client"):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.label = label
        self.out_q = ctx.Queue()
        self.procs, self.ctrls = [], []
        for index, share in enumerate(shares):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target, daemon=True, args=args_for(index, share, child, self.out_q))
            proc.start()
            child.close()
            self.procs.append(proc)
            self.ctrls.append(parent)

    def send(self, command_for) -> None:
        """Send `command_for(i)` to process i."""
        for index, ctrl in enumerate(self.ctrls):
            ctrl.send(command_for(index))

    def reports(self, kind: str, timeout: float) -> dict:
        """Every process's next report of `kind`, by process index."""
        got = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.procs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.label} processes: {len(got)}/{len(self.procs)} sent {kind!r} "
                                   f"in {timeout:.0f}s")
            try:
                msg_kind, index, data = self.out_q.get(timeout=min(remaining, 1.0))
            except Exception:  # noqa: BLE001 - queue.Empty: check the processes are alive, keep waiting
                dead = [p.pid for p in self.procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"{self.label} process(es) {dead} died") from None
                continue
            if msg_kind == kind:
                got[index] = data
        return got

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(p.pid) or 0.0 for p in self.procs)

    def stop(self, command: tuple, timeout: float = 10) -> None:
        for ctrl in self.ctrls:
            try:
                ctrl.send(command)
            except (OSError, BrokenPipeError):
                pass
        for proc in self.procs:
            proc.join(timeout=timeout)
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for ctrl in self.ctrls:
            ctrl.close()
        self.out_q.close()


def client_process_main(main, *args) -> None:
    """The body of a client process: Ctrl-C ignored (the parent handles it and stops us), uvloop
    when installed, then `asyncio.run(main(*args, loop_kind))` until it ends or the parent's pipe
    closes."""
    import asyncio

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.install()
        loop_kind = "uvloop"
    except ImportError:
        loop_kind = "asyncio"
    try:
        asyncio.run(main(*args, loop_kind))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass


def merged_latencies(reports) -> list[float]:
    """The latencies of the client processes' reports (`report["latencies"]`: array('d') bytes), sorted."""
    from array import array

    merged = array("d")
    for report in reports:
        chunk = array("d")
        chunk.frombytes(report["latencies"])
        merged.extend(chunk)
    return sorted(merged)


def merge_counts(dicts) -> dict:
    """Sum of counters (dicts of counts)."""
    out: dict = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


# --- servers --------------------------------------------------------------------------------------

def server_command(kind: str, port: int, workers: int = 1) -> list[str]:
    """The command line of a Mythline server (daphne or uvicorn) on 127.0.0.1:`port`. uvicorn with
    `workers` > 1 runs python -m mythline_site.workers, which takes uvicorn's --ws and --backlog too."""
    if kind == "daphne":
        return [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "mythline_site.asgi:application"]
    if kind == "uvicorn" and workers > 1:  # as `manage.py serve` runs them: each worker on its own
        # SO_REUSEPORT socket (mythline_site/workers.py), the workers children in this process's session
        return [PYTHON, "-m", "mythline_site.workers", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    if kind in ("uvicorn", "uvicorn-shared"):  # uvicorn-shared: `uvicorn --workers N`, one socket for all
        cmd = [str(BIN / "uvicorn"), "mythline_site.asgi:application", "--host", "127.0.0.1",
               "--port", str(port), "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
        return cmd + ["--workers", str(workers)] if workers > 1 else cmd
    raise ValueError(kind)


class Server:
    """One server process in its own session, stopped (group-wide) by stop(); its output goes to
    `workdir`/`label`.log. `kind`: daphne, uvicorn (`workers` > 1 for several) or ws (the bare
    websockets baseline, bench/baseline_ws.py). `extra_args` go at the end of a daphne or uvicorn
    command line (say `--ws websockets-sansio --backlog 4096`)."""

    def __init__(self, kind: str, env: dict, workdir: Path, label: str, workers: int = 1,
                 extra_args: tuple[str, ...] = ()):
        self.kind = kind if workers == 1 else f"{kind}-w{workers}"
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{label}.log"
        self._log = open(self.log_path, "w")
        if kind == "ws":
            cmd = [PYTHON, str(ROOT / "bench" / "baseline_ws.py"), "--port", str(self.port)]
        else:
            cmd = server_command(kind, self.port, workers) + list(extra_args)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_healthy(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(self.base_url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise RuntimeError(f"/healthz not 200 after {timeout}s ({last}):\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        if self.workers > 1:  # the workers are children in the server's session
            return session_cpu_seconds(self.proc.pid)
        return proc_cpu_seconds(self.proc.pid)

    def log_tail(self, n: int = 3000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


def server_processes(server: "Server") -> list[int]:
    """The server's processes that serve (with several workers, not their idle supervisor)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and int(fields[3]) == server.proc.pid:
                pids.append(int(entry.name))
    def helper(pid):  # multiprocessing's resource tracker shares the session
        try:
            return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True
    return ([pid for pid in pids if pid != server.proc.pid and not helper(pid)] if server.workers > 1
            else [server.proc.pid])


def connections_by_process(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections to `port` that each process holds (bench/procnet.py): which
    worker the kernel gave the agents' keep-alive connections to."""
    established = {sock.inode for sock in procnet.tcp_sockets(port) if sock.state == procnet.ESTABLISHED}
    holders = procnet.socket_holders(pids)
    return {pid: sum(1 for inode in established if holders.get(inode) == pid) for pid in pids}


# --- numbers --------------------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float | None:
    """The value at index round(q * (n - 1)) of an already sorted list (q in 0..1); None when empty."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]
