"""`python manage.py serve`: Mythline as it runs in production on one machine (docs/deploy.md).

Before anything starts it refuses (exit 1) when migrations are unapplied, when more than one
worker is asked for without REDIS_URL (the in-process channel layer, presence and connection
caps cannot span processes), or when something listens on --host:--port already (a second
server must not join the first one's SO_REUSEPORT group and take part of its connections). It
then collects the static files (unless --no-collectstatic) and starts, each as a child process in
its own session:

- the server, `python -m mythline_site.workers` (mythline_site/workers.py): N uvicorn workers
  (--workers, default: the CPU count with REDIS_URL, 1 without), each listening on its own
  SO_REUSEPORT socket on the same port so that the kernel spreads the connections over them (one
  shared socket, as `uvicorn --workers N` has, lets a burst land on one worker), with uvicorn's
  --proxy-headers, --lifespan off (the app implements no lifespan events) and
  --timeout-graceful-shutdown; it replaces a worker that dies, and stops (exit code 3) when one
  cannot even import the app;
- `manage.py run_crew`, the crew worker: the writers' room of every story that has one (docs/crew.md),
  unless --no-crew-worker;
- `manage.py run_webhooks`, the webhook worker: the agents' webhook deliveries (docs/protocol.md,
  "Webhooks"), unless --no-webhook-worker;
- `manage.py run_agents --story S` for each --crew story, against this server.

The idle-channel sweeper is no process of its own: every server process archives idle channels
in the background (mythline_site/housekeeping.py) when MYTHLINE_ARCHIVE_SWEEP_SECONDS > 0.

SIGTERM or SIGINT is forwarded as SIGTERM to the children: first the crew and the webhook worker
(up to 5 s, so the crew's agents can still report `offline`), then the server, which forwards it
to its workers: they close the sockets and finish open requests within --graceful-timeout; what
is still running after that, plus a few seconds, is killed with its whole process group. A second
signal kills at once. The command exits with the server's exit code (0 after a clean stop on
SIGTERM/SIGINT).
"""
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from mythline_site.workers import serving_problem, terminate as sigterm_each
from writers.models import StoryCrew

DEV_SECRET_PREFIX = "dev-insecure-"
KILL_MARGIN_SECONDS = 5
CREW_STOP_SECONDS = 5  # the crew stops first, so its agents can still tell the server they go offline


def unapplied_migrations(alias=DEFAULT_DB_ALIAS) -> list[str]:
    """What `migrate --check` would apply, as 'app.migration' names."""
    connection = connections[alias]
    connection.prepare_database()
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


class Command(BaseCommand):
    help = "Run Mythline for production on this machine: uvicorn workers (+ the crew), graceful on SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default %(default)s)")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default %(default)s)")
        parser.add_argument("--workers", type=int, default=None, metavar="N",
                            help="uvicorn worker processes (default: the CPU count with REDIS_URL, 1 without; "
                                 "more than 1 needs REDIS_URL)")
        parser.add_argument("--crew", nargs="+", default=[], metavar="STORY",
                            help="also run the demo crew (manage.py run_agents) on these stories")
        parser.add_argument("--no-crew-worker", action="store_true",
                            help="do not run the crew worker (manage.py run_crew): crews added in the room wait")
        parser.add_argument("--no-webhook-worker", action="store_true",
                            help="do not run the webhook worker (manage.py run_webhooks): deliveries wait")
        parser.add_argument("--no-collectstatic", action="store_true", help="do not run collectstatic first")
        parser.add_argument("--graceful-timeout", type=int, default=8, metavar="SECONDS",
                            help="on SIGTERM, how long open requests and sockets get to finish (default %(default)s)")

    def handle(self, *args, host, port, workers, crew, no_crew_worker, no_collectstatic, graceful_timeout,
               no_webhook_worker=False, **options):
        if workers is None:
            workers = (os.cpu_count() or 1) if settings.REDIS_URLS else 1
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        if workers > 1 and not settings.REDIS_URLS:
            raise CommandError(
                f"--workers {workers} needs REDIS_URL: without it the channel layer, presence and the "
                "per-user connection caps live inside one process and cannot span several, so a message "
                "posted through one worker would never reach a socket on another. Set REDIS_URL, or run "
                "--workers 1.")
        problem = serving_problem(host, port)  # mythline_site.workers checks again, just before it binds
        if problem:
            raise CommandError(problem)
        pending = unapplied_migrations()
        if pending:
            shown = ", ".join(pending[:10]) + (f" and {len(pending) - 10} more" if len(pending) > 10 else "")
            raise CommandError(f"{len(pending)} unapplied migration(s): {shown}. "
                               "Run `python manage.py migrate` (once per deploy) first.")
        if settings.DEBUG:
            self.stderr.write("Warning: DEBUG is on; set DEBUG=0 in production.")
        if settings.SECRET_KEY.startswith(DEV_SECRET_PREFIX):
            self.stderr.write("Warning: SECRET_KEY is the development default; set SECRET_KEY in production.")
        if not no_collectstatic:
            call_command("collectstatic", interactive=False, verbosity=0)
        # A story with a writers' room is the crew worker's: `--crew` does not start a second crew on it.
        worker_served = (set() if no_crew_worker else
                         set(StoryCrew.objects.filter(story__slug__in=crew).values_list("story__slug", flat=True)))
        connections.close_all()  # the children open their own

        self.stopping = None
        self.children = []  # (name, Popen), the server first
        previous = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            server = self.start("server", [
                sys.executable, "-m", "mythline_site.workers", "--host", host, "--port", str(port),
                "--workers", str(workers), "--graceful-timeout", str(graceful_timeout)])
            local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            url = f"http://[{local}]:{port}" if ":" in local else f"http://{local}:{port}"
            if not no_crew_worker:
                self.start("crew-worker", [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_crew",
                                           "--url", url, "--wait", "120"])
            if not no_webhook_worker:
                self.start("webhook-worker", [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_webhooks"])
            for story in crew:
                if story in worker_served:
                    self.stderr.write(f"--crew {story}: the crew worker serves it (it has a writers' room); "
                                      "not starting a second crew on it.")
                    continue
                self.start(f"crew:{story}", [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_agents",
                                             "--story", story, "--url", url, "--wait", "120"])
            sweep = settings.MYTHLINE_ARCHIVE_SWEEP_SECONDS
            self.stdout.write(
                f"Mythline is serving on {host}:{port} with {workers} uvicorn worker(s) (pid {server.pid}); "
                f"channel layer: {'Redis' if settings.REDIS_URLS else 'in-process'}; idle-channel sweep "
                + (f"every ~{sweep:g} s in each worker" if sweep > 0 else "off (MYTHLINE_ARCHIVE_SWEEP_SECONDS=0)")
                + ("" if no_crew_worker else "; the crew worker serves every story with a crew")
                + ("" if no_webhook_worker else "; the webhook worker sends the agents' webhooks")
                + (f"; the demo crew on {', '.join(crew)}" if crew else "") + ". SIGTERM or Ctrl-C stops it.")
            self.stdout.flush()

            reported = set()
            while self.stopping is None and server.poll() is None:
                for name, proc in self.children[1:]:
                    if proc.poll() is not None and name not in reported:
                        reported.add(name)
                        self.stderr.write(f"{name} exited with {proc.returncode}; the server keeps running.")
                time.sleep(0.2)
            if self.stopping is None:
                self.stderr.write(f"The server exited with {server.returncode}; stopping the rest.")
            self.shutdown(graceful_timeout + KILL_MARGIN_SECONDS)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for _name, proc in self.children:  # whatever an error left behind
                self.kill_group(proc)
        code = server.returncode
        if self.stopping is not None and code in (-signal.SIGTERM, -signal.SIGINT):
            code = 0  # one worker: uvicorn, in the server process, re-raises the signal it stopped on
        elif code is None or code < 0:  # killed by a signal
            code = 128 + (-code if code else signal.SIGKILL)
        self.stdout.write(f"Stopped (server exit code {server.returncode}).")
        self.stdout.flush()
        sys.exit(code)

    def start(self, name, cmd):
        # Each child in its own session: a terminal's Ctrl-C reaches only this command, which
        # forwards it once, and killpg() reaches a child's own children (the server's workers).
        proc = subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)
        self.children.append((name, proc))
        return proc

    def on_signal(self, signum, frame):
        if self.stopping is not None:  # a second signal: no more waiting
            for _name, proc in self.children:
                self.kill_group(proc)
            return
        self.stopping = signum  # the main loop sees it within 0.2 s and shuts down

    terminate = staticmethod(sigterm_each)

    @staticmethod
    def wait_all(procs, seconds):
        deadline = time.monotonic() + seconds
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # killed later
                pass

    def shutdown(self, timeout):
        server, crews = self.children[0][1], [proc for _name, proc in self.children[1:]]
        self.terminate(crews)
        self.wait_all(crews, CREW_STOP_SECONDS)
        self.terminate([server])
        self.wait_all([server, *crews], timeout)
        for name, proc in self.children:
            if proc.poll() is None:
                self.stderr.write(f"{name} did not stop within {timeout:g} s: killing it.")
            self.kill_group(proc)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    @staticmethod
    def kill_group(proc):
        """SIGKILL the child's whole session (its leader is the child), which also takes any
        worker process its leader left behind."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
