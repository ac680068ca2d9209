"""`python manage.py run_agents --story SLUG`: the demo drama crew, working on a story.

The command runs beside the server: it makes sure the eight crew agents exist and take part in
the story (as `seed_demo` makes them), issues each a fresh token (label `run_agents:<story>`,
replacing the previous run's), and then runs them as SDK clients of the server at `--url`, over
HTTP and WebSocket like any outside agent. Ctrl-C (or SIGTERM) stops them; they report `offline`.
"""
import asyncio
import logging
import signal
import time

import httpx
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections

from accounts.services import token_issue
from agents.crew.runner import Crew, CrewOptions
from agents.models import AgentProfile
from agents.services import agent_create
from audit.services import note
from mythline_site.errors import MythlineError
from stories.management.commands.seed_demo import CREW
from stories.models import Participant, Story
from stories.services import participant_add

User = get_user_model()


class Command(BaseCommand):
    help = "Run the demo drama crew (eight SDK agents) on a story, against a running server."

    def add_arguments(self, parser):
        parser.add_argument("--story", required=True, metavar="SLUG")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default %(default)s)")
        parser.add_argument("--once", action="store_true", help="stop once the first scene is written")
        parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                            help="stop after this long (with --once: give up after this long; default 300)")
        parser.add_argument("--scenes", type=int, default=3,
                            help="scenes the crew writes in the story unprompted, earlier runs included, before "
                                 "waiting for a human to steer (default %(default)s)")
        parser.add_argument("--pace", type=float, default=1.0, metavar="SECONDS",
                            help="how long each agent 'thinks' before posting (default %(default)s; 0 = flat out)")
        parser.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                            help="how long to wait for the server to answer /healthz (default %(default)s)")

    @note("cli")  # the audit log of rights: no actor, note 'cli'
    def handle(self, *args, story, url, once, duration, scenes, pace, wait, **options):
        found = Story.objects.filter(slug=story).first()
        if found is None:
            raise CommandError(f"No story '{story}'. Create it first (or run `manage.py seed_demo` for the demo).")
        tokens = self.crew_tokens(found)
        close_old_connections()
        connections.close_all()  # from here on the crew talks to the server only

        wait_for_server(url, wait)
        handler = logging.StreamHandler(self.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        crew_log = logging.getLogger("mythline.crew")
        crew_log.addHandler(handler)
        crew_log.setLevel(logging.INFO)
        crew_log.propagate = False
        self.stdout.write(f"The crew is joining '{story}' at {url}: {', '.join(tokens)}. Ctrl-C stops it.")

        crew = Crew(url, story, tokens, options=CrewOptions(scenes=max(0, scenes), pace=max(0.0, pace), once=once))
        if once and duration is None:
            duration = 300
        try:
            summary = asyncio.run(self.run(crew, duration))
        finally:
            crew_log.removeHandler(handler)
        posted = ", ".join(f"{n} {t}" for t, n in sorted(summary["posted"].items())) or "nothing"
        self.stdout.write(f"The crew stopped. Scenes written: {summary['scenes_written'] or 'none'}; posted {posted}.")
        if once and not summary["finished"]:
            raise CommandError(f"The first scene was not finished within {duration:g} s.")

    async def run(self, crew: Crew, duration):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
                pass
        return await crew.run(stop=stop, duration=duration)

    def crew_tokens(self, story: Story) -> dict[str, str]:
        tokens = {}
        for spec in CREW:
            user = User.objects.filter(username=spec["username"]).first()
            try:
                if user is None:
                    user = agent_create(username=spec["username"], display_name=spec["display_name"],
                                        description=spec["description"], capabilities=spec["capabilities"],
                                        stories=[story])
                elif not user.is_agent or not AgentProfile.objects.filter(user=user).exists():
                    raise CommandError(f"'{spec['username']}' exists but is not an agent; the crew needs that name.")
                elif not Participant.objects.filter(story=story, user=user).exists():
                    participant_add(story=story, user=user, role=Participant.Role.EDITOR)
                elif not Participant.objects.filter(story=story, user=user,
                                                    role__in=[Participant.Role.EDITOR, Participant.Role.OWNER]).exists():
                    raise CommandError(f"'{spec['username']}' is a viewer of '{story.slug}'; make it an editor.")
            except MythlineError as exc:
                raise CommandError(exc.message) from None
            tokens[user.username] = token_issue(user=user, label=f"run_agents:{story.slug}", replace_label=True)
        return tokens


def wait_for_server(url: str, wait: float) -> None:
    """Until the server at `url` answers /healthz (CommandError after `wait` seconds); `run_crew` too."""
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
