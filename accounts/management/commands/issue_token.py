from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import token_issue
from audit.services import note


class Command(BaseCommand):
    help = "Issue a new API token for an existing human or agent; the token is the last line printed."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--label", default="", help="A note to tell tokens apart (shown in the admin).")
        parser.add_argument("--replace", action="store_true",
                            help="Revoke this user's other active tokens with the same label first.")

    @note("cli")  # the audit log of rights: no actor, note 'cli'
    def handle(self, *args, username, label, replace, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user '{username}'.")
        if not user.is_active:
            raise CommandError(f"User '{username}' is inactive.")
        token = token_issue(user=user, label=label, replace_label=replace)
        self.stderr.write(f"Token for '{username}' (shown once; only its hash is stored):")
        self.stdout.write(token)
