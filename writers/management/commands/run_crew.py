"""`python manage.py run_crew`: the crew worker. It serves every story that has a writers' room.

It runs beside the server (`make run` starts it). Once a second it reads which stories have a crew
(writers.selectors.active_crews) and keeps one `agents.crew.runner.Crew` running for each story whose
crew is not paused, with the roles that are not paused one by one; a change to a story's crew
(added, paused, resumed, an agent paused, removed) stops that story's crew and, unless it is paused
or gone, starts it again as it now is. Each run issues the story's agents fresh tokens (label
`crew:<story>`, replacing the last run's). The agents are SDK clients of the server at `--url`, over
HTTP and WebSocket like any outside agent; the worker itself reads the database only to know which
crews to run and to issue their tokens. Ctrl-C (or SIGTERM) stops every crew.
"""
import asyncio
import logging
import signal
import time

import httpx
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from accounts.services import token_issue
from agents.crew.runner import CREW_DRAFT, Crew, CrewOptions
from audit.services import note
from writers.selectors import active_crews

User = get_user_model()
logger = logging.getLogger("mythline.crew")


def _tokens(row: dict) -> dict[str, str]:
    close_old_connections()
    with note("crew worker"):
        return {username: token_issue(user=User.objects.get(username=username), label=f"crew:{row['story']}",
                                      replace_label=True)
                for username in row["members"].values()}


def _rows() -> list[dict]:
    close_old_connections()
    return active_crews()


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
        self.wait_for_server(url, wait)
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
        running: dict[str, tuple[tuple, asyncio.Event, asyncio.Task]] = {}
        failed_at: dict[str, float] = {}
        try:
            while not stop.is_set():
                try:
                    rows = {row["story"]: row for row in await sync_to_async(_rows)()}
                except Exception as exc:  # noqa: BLE001 - the database may be down for a moment
                    logger.warning("crew worker: cannot read the crews (%s: %s)", type(exc).__name__, exc)
                    rows = None
                if rows is not None:
                    for slug, (key, halt, task) in list(running.items()):
                        row = rows.get(slug)
                        if task.done() or row is None or self.key(row) != key:
                            halt.set()
                            await self.finish(slug, task)
                            del running[slug]
                            if task.done() and row is not None and self.key(row) == key:
                                failed_at[slug] = time.monotonic()  # ended by itself: not straight back
                    for slug, row in rows.items():
                        if slug in running or time.monotonic() - failed_at.get(slug, -1e9) < 5:
                            continue
                        if "showrunner" not in row["members"]:
                            continue  # the showrunner paused: the board waits for it
                        try:
                            tokens = await sync_to_async(_tokens)(row)
                        except Exception as exc:  # noqa: BLE001
                            logger.warning("crew worker: no tokens for '%s' (%s)", slug, exc)
                            failed_at[slug] = time.monotonic()
                            continue
                        halt = asyncio.Event()
                        lighthouse = row["script"] == "lighthouse"
                        document = CREW_DRAFT if row["writes_to"] == "fork" else "main"
                        crew = Crew(url, slug, tokens, members=row["members"], script=row["script"] or "",
                                    document=document,
                                    options=CrewOptions(scenes=3 if lighthouse else 0, pace=pace))
                        task = asyncio.create_task(crew.run(stop=halt, farewell=self.farewell(slug)))
                        running[slug] = (self.key(row), halt, task)
                        logger.info("crew worker: serving '%s' (%s)", slug, ", ".join(row["members"]))
                try:
                    await asyncio.wait_for(stop.wait(), poll)
                except asyncio.TimeoutError:
                    pass
        finally:
            for slug, (_, halt, task) in running.items():
                halt.set()
            for slug, (_, halt, task) in running.items():
                await self.finish(slug, task)

    @staticmethod
    def key(row: dict) -> tuple:
        return row["version"], tuple(sorted(row["members"].items())), row["script"], row["writes_to"]

    def farewell(self, slug: str):
        """What the agents report when their crew stops: idle and paused while the story still has its
        crew (paused by the room, or restarting), offline when it is gone or the worker stops."""
        return ("idle", "Paused by the room")

    async def finish(self, slug: str, task: asyncio.Task) -> None:
        try:
            result = await asyncio.wait_for(task, 30)
            logger.info("crew worker: '%s' stopped (scenes written: %s)", slug, result.get("scenes_written"))
        except asyncio.TimeoutError:
            task.cancel()
        except Exception as exc:  # noqa: BLE001 - one story's crew failing must not stop the others
            logger.error("crew worker: the crew of '%s' ended with %s: %s", slug, type(exc).__name__, exc)

    def wait_for_server(self, url: str, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                if httpx.get(url.rstrip("/") + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise CommandError(f"No server answers at {url} (waited {wait:g} s). Start it first: make run.")
            time.sleep(0.5)
