from django.core.management.base import BaseCommand

from messaging.services import archive_idle_channels


class Command(BaseCommand):
    help = "Archive channels with idle_archive_seconds that have had no message for that long."

    def handle(self, *args, **options):
        archived = archive_idle_channels()
        for channel in archived:
            self.stdout.write(f"archived {channel.story.slug}/{channel.name}")
        self.stdout.write(f"{len(archived)} channel(s) archived")
