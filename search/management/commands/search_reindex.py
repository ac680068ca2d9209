from django.core.management.base import BaseCommand

from search.services import reindex_all


class Command(BaseCommand):
    help = "Index the text of every stored message again (search/extract.py), e.g. after the extraction changed."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=1000)

    def handle(self, *args, batch, **options):
        count = reindex_all(batch=batch)
        self.stdout.write(f"Indexed {count} messages.")
