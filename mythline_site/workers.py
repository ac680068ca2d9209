"""The server process of `manage.py serve`: N uvicorn workers, each on its own SO_REUSEPORT socket.

    python -m mythline_site.workers --host H --port P --workers N --graceful-timeout T

Why not `uvicorn --workers N`: its supervisor binds one listening socket that every worker accepts
from, and asyncio's accept loop takes every pending connection in one wake-up, so a burst of
connections (agents opening their keep-alive connections together, thousands of WebSockets
reconnecting after a restart) lands mostly on one worker and stays there. Measured with 2 workers
(bench/accept_spread.py): bursts of 16 connections went 16/0 in 4 bursts of 10; with a socket per
worker, 10/6 at the worst. Here each worker gets its own listening socket, bound to the same (host, port) with
SO_REUSEPORT, and the Linux kernel hashes each new connection (its 4-tuple) onto one of the
sockets' queues. The same fix upstream: uvicorn PR #2472 (Kludex/uvicorn, "add socket-load-balance
flag"), gunicorn PR #2938, skypilot PR #10016. This module uses only uvicorn's public API
(`uvicorn.Config`, `uvicorn.Server.run(sockets=...)`).

The supervisor (this process, which imports neither Django nor the app):

- first claims (host, port) among Mythline servers, by binding an abstract Unix socket name that
  it holds while it runs (`claim_port`: atomic, so two servers started at the same instant cannot
  both pass), then binds a plain probe socket (SO_REUSEADDR, no SO_REUSEPORT) to (host, port) and
  closes it: when either fails, something serves there already, and it exits with
  STARTUP_FAILURE (3) and says so, rather than joining a running server's SO_REUSEPORT group and
  taking half its connections;
- per worker, binds a socket (SO_REUSEADDR + SO_REUSEPORT, backlog 2048 as uvicorn's), starts
  `python -m mythline_site.workers --serve-fd K --control-fd C ...` with both descriptors, and
  closes its own copy of the socket: a worker's queue leaves the group when the worker dies, so
  the kernel stops sending connections to it (those already queued on it are reset);
- replaces (new socket, new process) a worker that dies after it imported the app, and logs it;
  a worker that dies before (the app does not import) stops the whole server, exit code 3, as
  uvicorn does: every replacement would fail the same way;
- on SIGTERM or SIGINT sends SIGTERM to every worker (uvicorn stops accepting, closes the
  WebSockets and gives requests --graceful-timeout seconds), kills what is left after that plus
  KILL_MARGIN_SECONDS and exits 0 (1 when a worker had to be killed). A second signal kills at once.

The workers are its children, in its session and process group (`manage.py serve` and the
benchmarks stop and measure the whole group). The control socket pair tells the supervisor when a
worker has imported the app, and a worker whose supervisor died (SIGKILL) sees its end close and
stops by itself.

With --workers 1, or without SO_REUSEPORT load balancing (not Linux), there is nothing to spread:
one worker runs in this process (--workers 1, plain uvicorn), or every worker shares one socket
bound here (as `uvicorn --workers N` does, with its imbalance).
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

APP = "mythline_site.asgi:application"
BACKLOG = 2048  # uvicorn's default
KILL_MARGIN_SECONDS = 3  # after --graceful-timeout; `serve` allows its server graceful + 5 s
STARTUP_FAILURE = 3  # uvicorn.config.STARTUP_FAILURE
KILLED_ON_STOP = 1
READY = b"r"
REUSEPORT_BALANCES = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")

logger = logging.getLogger("uvicorn.error")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mythline_site.workers", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--graceful-timeout", type=int, default=8, metavar="SECONDS",
                        help="uvicorn's --timeout-graceful-shutdown (default %(default)s)")
    parser.add_argument("--backlog", type=int, default=BACKLOG)
    parser.add_argument("--ws", default="auto", help="uvicorn's --ws (default %(default)s)")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)  # a worker: its listening socket
    parser.add_argument("--control-fd", type=int, help=argparse.SUPPRESS)  # a worker: its end of the pair
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def make_config(args, **extra):
    """The options `serve` has always given uvicorn: --proxy-headers, --lifespan off,
    --timeout-graceful-shutdown (the app implements no lifespan events)."""
    import uvicorn

    return uvicorn.Config(APP, host=args.host, port=args.port, proxy_headers=True, lifespan="off",
                          timeout_graceful_shutdown=args.graceful_timeout, backlog=args.backlog, ws=args.ws,
                          log_level=args.log_level, access_log=not args.no_access_log, **extra)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn's Config.bind_socket


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def port_in_use(host: str, port: int) -> str | None:
    """Why (host, port) cannot be served, or None when it is free. The probe has SO_REUSEADDR
    (the TIME_WAIT connections of a server stopped a moment ago do not count) but no
    SO_REUSEPORT, so any listening socket there, a running server's SO_REUSEPORT group
    included, makes its bind fail."""
    probe = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (f"{_address(host, port)} is already in use: another server (another `manage.py serve`?) listens "
                    "on it. Refusing to start rather than share its port and take part of its connections; "
                    "stop it first, or choose another --port.")
        return f"cannot listen on {_address(host, port)}: {exc.strerror or exc}"
    finally:
        probe.close()
    return None


def claim_name(host: str, port: int) -> str:
    """The abstract Unix socket name a server holds for (host, port) while it runs (Linux)."""
    return f"\0mythline-serve:{_address(host, port)}"


def claim_port(host: str, port: int) -> tuple[socket.socket | None, str | None]:
    """(a socket to keep open for the process's life, or a reason to refuse). The probe alone
    leaves a window: two servers started at the same instant could both find the port free and
    then both join one SO_REUSEPORT group. Binding an abstract Unix socket name is atomic, and the
    kernel frees it when the process ends however it ends, so of two, one holds the claim and the
    other is refused.

    An abstract name has no owner or permissions: anyone on the machine could bind it first. So
    the holder listens, and a name already taken refuses only when its holder is this server's own
    user (SO_PEERCRED); the kernel lets only sockets of one user share a SO_REUSEPORT group
    anyway. A name held by another user, or by nothing that answers, is logged and passed over:
    the probe (`port_in_use`) still guards the port. Without abstract names (not Linux): (None,
    None)."""
    if not sys.platform.startswith("linux"):
        return None, None
    name = claim_name(host, port)
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        holder.bind(name)
        holder.listen(8)
    except OSError as exc:
        holder.close()
        if exc.errno != errno.EADDRINUSE:
            logger.warning("No claim on %s (%s): only the port probe guards it.", _address(host, port), exc)
            return None, None
        if _claim_holder_uid(name) == os.geteuid():
            return None, (f"{_address(host, port)} is already in use: another `manage.py serve` is starting or "
                          "running on it. Refusing to start rather than share its port and take part of its "
                          "connections; stop it first, or choose another --port.")
        logger.warning("The claim on %s is held by another user or by a socket that does not answer; "
                       "passing over it (the port probe still guards the port).", _address(host, port))
        return None, None
    return holder, None


def _claim_holder_uid(name: str, attempts: int = 50) -> int | None:
    """The user id of the process listening on the abstract socket `name`, or None. A server binds
    its claim and listens at once, and answers (`answer_claim_checks`): a refused connection, or
    one that finds the backlog full, is retried for up to ~0.5 s."""
    for _ in range(attempts):
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        peer.settimeout(1)
        try:
            peer.connect(name)
            _pid, uid, _gid = struct.unpack("3i", peer.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                  struct.calcsize("3i")))
            return uid
        except (ConnectionRefusedError, BlockingIOError):  # not listening yet; its backlog full (EAGAIN)
            time.sleep(0.01)
        except OSError:
            return None
        finally:
            peer.close()
    return None


def answer_claim_checks(holder: socket.socket) -> None:
    """Accept and close, for as long as `holder` is open, the connections that ask who holds the
    claim (`_claim_holder_uid`), so that its backlog never fills. In a daemon thread."""
    def accept_forever():
        while True:
            try:
                conn, _ = holder.accept()
            except OSError:
                return  # closed
            conn.close()

    threading.Thread(target=accept_forever, name="claim", daemon=True).start()


def serving_problem(host: str, port: int) -> str | None:
    """Why a server could not start on (host, port) now (`claim_port`, then `port_in_use`), or
    None; nothing is held. `manage.py serve` asks it before it migrates; main() asks again, holding
    the claim."""
    holder, problem = claim_port(host, port)
    if holder is not None:
        holder.close()
    return problem or port_in_use(host, port)


def listening_socket(host: str, port: int, backlog: int, reuseport: bool) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def terminate(procs) -> None:
    """SIGTERM each of these processes that still runs (`manage.py serve` stops its children so too)."""
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass


# --- a worker ------------------------------------------------------------------------------------

def _stop_with_supervisor(control: socket.socket) -> None:
    """Block until the supervisor's end of the pair closes (it exited, or was killed), then stop
    this worker as SIGTERM would."""
    try:
        while control.recv(64):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def run_worker(args) -> None:
    import uvicorn

    sock = socket.socket(fileno=args.serve_fd)
    control = socket.socket(fileno=args.control_fd)
    config = make_config(args, workers=1)
    config.load()  # imports the app; a failure exits here, before the supervisor hears READY
    control.sendall(READY)
    threading.Thread(target=_stop_with_supervisor, args=(control,), daemon=True).start()
    uvicorn.Server(config).run(sockets=[sock])


# --- the supervisor ------------------------------------------------------------------------------

class Worker:
    def __init__(self, proc: subprocess.Popen, control: socket.socket):
        self.proc, self.control, self.ready = proc, control, False


class Supervisor:
    def __init__(self, args):
        self.args = args
        self.reuseport = REUSEPORT_BALANCES
        self.shared = None if self.reuseport else listening_socket(args.host, args.port, args.backlog, False)
        self.workers: list[Worker] = []
        self.stopping = None  # the signal that stops us
        self.failure = 0  # the exit code of a failure that stops us
        self.killed = False  # a second signal killed the workers

    def spawn(self) -> Worker:
        args = self.args
        sock = self.shared or listening_socket(args.host, args.port, args.backlog, True)
        ours, theirs = socket.socketpair()
        try:
            cmd = [sys.executable, "-m", "mythline_site.workers", "--serve-fd", str(sock.fileno()),
                   "--control-fd", str(theirs.fileno()), "--host", args.host, "--port", str(args.port),
                   "--graceful-timeout", str(args.graceful_timeout), "--backlog", str(args.backlog),
                   "--ws", args.ws, "--log-level", args.log_level]
            if args.no_access_log:
                cmd.append("--no-access-log")
            proc = subprocess.Popen(cmd, pass_fds=(sock.fileno(), theirs.fileno()))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            if sock is not self.shared:
                sock.close()  # the worker holds the only copy: its queue leaves the group with it
        ours.setblocking(False)
        logger.info("Started worker process [%d]%s", proc.pid,
                    " on its own SO_REUSEPORT socket" if self.reuseport else "")
        return Worker(proc, ours)

    def on_signal(self, signum, frame) -> None:
        if self.stopping is not None:  # a second signal: no more waiting
            self.killed = True
            for worker in self.workers:
                self._kill(worker.proc)
            return
        self.stopping = signum

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)
        how = ("each on its own SO_REUSEPORT socket: the kernel spreads the connections" if self.reuseport else
               "sharing one socket (no SO_REUSEPORT load balancing on this platform)")
        logger.info("Started parent process [%d]: %d workers on %s:%d, %s", os.getpid(), self.args.workers,
                    self.args.host, self.args.port, how)
        try:
            for _ in range(self.args.workers):
                if self.stopping is None:
                    self.workers.append(self.spawn())
            while self.stopping is None and not self.failure:
                self.watch()
        except OSError as exc:  # a socket could not be bound (or a process started)
            logger.error("Cannot start a worker on %s:%d: %s; stopping.", self.args.host, self.args.port, exc)
            self.failure = 1
        finally:
            code = self.stop()
        return self.failure or code

    def watch(self) -> None:
        waiting = [w.control for w in self.workers if not w.ready]
        if waiting:
            readable, _, _ = select.select(waiting, [], [], 0.2)
            for w in self.workers:
                if w.control in readable:
                    self._read_ready(w)
        else:
            time.sleep(0.2)
        for index, w in enumerate(self.workers):
            if self.stopping is not None or w.proc.poll() is None:
                continue
            self._read_ready(w)  # it may have imported the app, then died
            w.control.close()
            if not w.ready:
                logger.error("Worker process [%d] exited with %s before it imported the app: the app does not "
                             "start; stopping the server.", w.proc.pid, w.proc.returncode)
                self.failure = STARTUP_FAILURE
                return
            logger.warning("Worker process [%d] died (exit code %s); replacing it.", w.proc.pid, w.proc.returncode)
            self.workers[index] = self.spawn()

    @staticmethod
    def _read_ready(w: Worker) -> None:
        if w.ready:
            return
        try:
            w.ready = w.control.recv(1) == READY
        except (BlockingIOError, OSError):
            pass

    def stop(self) -> int:
        """SIGTERM every worker, wait --graceful-timeout + KILL_MARGIN_SECONDS, kill what is left.
        0, or KILLED_ON_STOP when one had to be killed."""
        procs = [w.proc for w in self.workers]
        terminate(procs)
        deadline = time.monotonic() + self.args.graceful_timeout + KILL_MARGIN_SECONDS
        code = 0
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("Worker process [%d] did not stop within %d s: killing it.", proc.pid,
                             self.args.graceful_timeout + KILL_MARGIN_SECONDS)
                self._kill(proc)
                proc.wait()
                code = KILLED_ON_STOP
        for w in self.workers:
            w.control.close()
        if self.shared is not None:
            self.shared.close()
        logger.info("Stopping parent process [%d]", os.getpid())
        return KILLED_ON_STOP if self.killed else code

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serve_fd is not None:
        run_worker(args)
        return 0
    claim, problem = claim_port(args.host, args.port)
    if claim is not None:
        answer_claim_checks(claim)
    try:
        problem = problem or port_in_use(args.host, args.port)
        if problem:
            print(problem, file=sys.stderr, flush=True)
            return STARTUP_FAILURE
        if args.workers == 1:  # plain uvicorn in this process: it binds, and re-raises the signal it stops on
            import uvicorn

            server = uvicorn.Server(make_config(args))
            server.run()
            return 0 if server.started else STARTUP_FAILURE
        make_config(args)  # uvicorn's logging, as in the workers
        return Supervisor(args).run()
    finally:
        if claim is not None:  # held while this server ran; the kernel would free it at exit too
            try:
                claim.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
            except OSError:
                pass
            claim.close()


if __name__ == "__main__":
    sys.exit(main())
