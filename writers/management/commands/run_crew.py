"""`python manage.py run_crew`: the crew worker. It serves every story that has a writers' room.

It runs beside the server (`make run` starts it). Once a second it reads which stories have a crew
(writers.selectors.crews_to_serve) and keeps one `agents.crew.runner.Crew` running for each story whose
crew is not paused, with the roles that are not paused one by one; a change to a story's crew
(added, paused, resumed, an agent paused, removed) stops that story's crew and, unless it is paused
or gone, starts it again as it now is. Each run issues the story's agents fresh tokens (label
`crew:<story>`, replacing the last run's). The agents are SDK clients of the server at `--url`, over
HTTP and WebSocket like any outside agent; the worker itself reads the database only to know which
crews to run and to issue their tokens. Ctrl-C (or SIGTERM) stops every crew.

One worker serves at a time: each holds a lease in the database (writers.models.WorkerLease), renewed
every poll; another worker started beside it stands by and takes over within 15 s of the first one
stopping. A crew told to stop is not waited for: the others are served meanwhile, and that story's
crew starts again only once its last run has ended.
"""
import asyncio
import logging
import os
import signal
import socket
import time
import uuid

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from accounts.services import token_issue
from agents.crew.runner import CREW_DRAFT, Crew, CrewOptions
from agents.management.commands.run_agents import wait_for_server
from audit.services import note
from writers.selectors import crews_to_serve
from writers.services import lease_acquire, lease_release

User = get_user_model()
logger = logging.getLogger("mythline.crew")


def _tokens(row: dict) -> dict[str, str]:
    """Fresh tokens for the agents that run now (a paused one gets none: its work waits)."""
    close_old_connections()
    with note("crew worker"):
        return {username: token_issue(user=User.objects.get(username=username), label=f"crew:{row['story']}",
                                      replace_label=True)
                for role, username in row["members"].items() if role not in row["paused"]}


def _crews() -> tuple[list[dict], set[str]]:
    close_old_connections()
    return crews_to_serve()


class Command(BaseCommand):
    help = "Run the writers' room of every story that has one, against a running server."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default %(default)s)")
        parser.add_argument("--pace", type=float, default=1.0, metavar="SECONDS",
                            help="how long each agent 'thinks' before posting (default %(default)s; 0 = flat out)")
        parser.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                            help="how often to look for crews added, paused or removed (default %(default)s)")
        parser.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                            help="how long to wait for the server to answer /healthz (default %(default)s)")
        parser.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")

    def handle(self, *args, url, pace, poll, wait, duration, **options):
        wait_for_server(url, wait)
        handler = logging.StreamHandler(self.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        crew_log = logging.getLogger("mythline.crew")
        crew_log.addHandler(handler)
        crew_log.setLevel(logging.INFO)
        crew_log.propagate = False
        self.stdout.write(f"The crew worker serves every story with a crew at {url}. Ctrl-C stops it.")
        try:
            asyncio.run(self.serve(url, pace=max(0.0, pace), poll=max(0.1, poll), duration=duration))
        finally:
            crew_log.removeHandler(handler)
        self.stdout.write("The crew worker stopped.")

    async def serve(self, url: str, *, pace: float, poll: float, duration: float | None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        if duration is not None:
            loop.call_later(duration, stop.set)
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        running: dict[str, tuple[tuple, asyncio.Event, asyncio.Task, Crew]] = {}
        stopping: dict[str, asyncio.Task] = {}  # crews told to stop, not yet stopped: not restarted meanwhile
        failed_at: dict[str, float] = {}
        standing_by = False

        def halt(slug: str, farewell: tuple[str, str]) -> None:
            _, event, task, crew = running.pop(slug)
            crew.farewell = farewell
            event.set()
            stopping[slug] = task

        try:
            while not stop.is_set():
                for slug, task in list(stopping.items()):  # reap, without waiting for any
                    if task.done():
                        del stopping[slug]
                        self.report(slug, task)
                try:
                    leader = await sync_to_async(lease_acquire)(holder=holder)
                    active, with_crew = await sync_to_async(_crews)() if leader else ([], set())
                    rows = {row["story"]: row for row in active}
                except Exception as exc:  # noqa: BLE001 - the database may be down for a moment
                    logger.warning("crew worker: cannot read the crews (%s: %s)", type(exc).__name__, exc)
                    leader, rows = None, None
                if leader is False and not standing_by:
                    logger.info("crew worker: another worker holds the lease; standing by")
                standing_by = leader is False
                if rows is not None:
                    for slug, (key, _, task, _) in list(running.items()):
                        row = rows.get(slug)
                        if task.done() or row is None or self.key(row) != key:
                            if task.done() and row is not None and self.key(row) == key:
                                failed_at[slug] = time.monotonic()  # ended by itself: not straight back
                            # Paused or changed: its agents wait, idle; removed (or another worker leads): gone.
                            halt(slug, ("idle", "Paused by the room") if slug in with_crew else ("offline", ""))
                    for slug, row in rows.items():
                        if slug in running or slug in stopping or time.monotonic() - failed_at.get(slug, -1e9) < 5:
                            continue
                        if "showrunner" not in row["members"] or "showrunner" in row["paused"]:
                            continue  # the showrunner paused: the board waits for it
                        try:
                            tokens = await sync_to_async(_tokens)(row)
                        except Exception as exc:  # noqa: BLE001
                            logger.warning("crew worker: no tokens for '%s' (%s)", slug, exc)
                            failed_at[slug] = time.monotonic()
                            continue
                        event = asyncio.Event()
                        lighthouse = row["script"] == "lighthouse"
                        document = CREW_DRAFT if row["writes_to"] == "fork" else "main"
                        crew = Crew(url, slug, tokens, members=row["members"], script=row["script"] or "",
                                    document=document, options=CrewOptions(scenes=3 if lighthouse else 0, pace=pace))
                        task = asyncio.create_task(crew.run(stop=event, farewell=("offline", "")))
                        running[slug] = (self.key(row), event, task, crew)
                        paused = f"; paused: {', '.join(row['paused'])}" if row["paused"] else ""
                        logger.info("crew worker: serving '%s' (%s%s)", slug, ", ".join(row["members"]), paused)
                try:
                    await asyncio.wait_for(stop.wait(), poll)
                except asyncio.TimeoutError:
                    pass
        finally:
            for slug in list(running):
                halt(slug, ("offline", ""))
            results = await asyncio.gather(*(asyncio.wait_for(t, 30) for t in stopping.values()),
                                           return_exceptions=True)
            for slug, task, result in zip(stopping, stopping.values(), results):
                if isinstance(result, asyncio.TimeoutError):
                    task.cancel()
                self.report(slug, task)
            try:
                await sync_to_async(lease_release)(holder=holder)
            except Exception:  # noqa: BLE001 - it expires by itself
                pass

    @staticmethod
    def key(row: dict) -> tuple:
        return (row["version"], tuple(sorted(row["members"].items())), tuple(row["paused"]), row["script"],
                row["writes_to"])

    def report(self, slug: str, task: asyncio.Task) -> None:
        if task.cancelled():
            logger.warning("crew worker: the crew of '%s' did not stop in time and was cancelled", slug)
        elif task.exception() is not None:
            exc = task.exception()
            logger.error("crew worker: the crew of '%s' ended with %s: %s", slug, type(exc).__name__, exc)
        else:
            logger.info("crew worker: '%s' stopped (scenes written: %s)", slug, task.result().get("scenes_written"))
