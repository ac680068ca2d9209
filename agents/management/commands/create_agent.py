from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import token_issue
from agents.services import agent_create
from audit.services import note
from mythline_site.errors import MythlineError
from stories.models import Story


class Command(BaseCommand):
    help = "Create an agent, join it to stories as editor, and print its token (last line)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--story", action="append", default=[], metavar="SLUG",
                            help="Join this story as editor (repeat for several).")
        parser.add_argument("--capabilities", default="", help="Comma-separated msg_types it handles.")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--description", default="")

    @note("cli")  # the audit log of rights: no actor, note 'cli'
    def handle(self, *args, name, story, capabilities, display_name, description, **options):

        existing = get_user_model().objects.filter(username=name).first()
        if existing is not None and existing.is_agent:
            # Its token was shown once, when it was created; printing nothing here would hand a script
            # (TOKEN=$(manage.py create_agent NAME | tail -n1)) an empty token.
            raise CommandError(f"Agent '{name}' already exists; no token was issued. For a new token, run "
                               f"`manage.py issue_token {name} --label create_agent --replace` (it revokes the "
                               f"token create_agent printed before).")
        if existing is not None:
            raise CommandError(f"A human account named '{name}' already exists; choose another name for the agent.")
        stories = []
        for slug in story:
            found = Story.objects.filter(slug=slug).first()
            if found is None:
                raise CommandError(f"No story '{slug}'.")
            stories.append(found)
        caps = [c.strip() for c in capabilities.split(",") if c.strip()]
        try:
            agent = agent_create(username=name, display_name=display_name, description=description,
                                 capabilities=caps, stories=stories)
        except MythlineError as exc:
            raise CommandError(exc.message) from None
        token = token_issue(user=agent, label="create_agent")
        self.stderr.write(f"Created agent '{agent.username}' ({', '.join(caps) or 'no capabilities'}); "
                          f"joined {', '.join(s.slug for s in stories) or 'no stories'}. Its token (shown once):")
        self.stdout.write(token)
