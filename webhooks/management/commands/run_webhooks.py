"""`python manage.py run_webhooks`: the webhook worker (webhooks/worker.py; docs/protocol.md, "Webhooks").

Rounds of `deliver_due()` until SIGTERM or SIGINT: a round that found work is followed at once
by the next; an idle one waits MYTHLINE_WEBHOOK_POLL_SECONDS (--poll). On a signal the round under
way finishes (each attempt is bounded by MYTHLINE_WEBHOOK_TIMEOUT_SECONDS) and the command exits
0; what it had claimed and not recorded is taken again later (at least once). Every ten minutes
it also prunes the log (MYTHLINE_WEBHOOK_KEEP_DAYS). Any number of workers may run (PostgreSQL:
SKIP LOCKED); `manage.py serve` starts one.
"""
import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections

from mythline_site.errors import STORE_DOWN_ERRORS
from webhooks.worker import deliver_due, prune

PRUNE_EVERY_SECONDS = 600

logger = logging.getLogger("mythline.webhooks")


class Command(BaseCommand):
    help = "Send the agents' webhook deliveries (signed, retried with backoff) until SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--poll", type=float, default=None, metavar="SECONDS",
                            help="wait between idle rounds (default MYTHLINE_WEBHOOK_POLL_SECONDS)")
        parser.add_argument("--batch", type=int, default=None, metavar="N",
                            help="deliveries per round (default MYTHLINE_WEBHOOK_BATCH)")
        parser.add_argument("--once", action="store_true", help="one round, then exit")

    def handle(self, *args, poll, batch, once, **options):
        poll = settings.MYTHLINE_WEBHOOK_POLL_SECONDS if poll is None else poll
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.stdout.write(f"Webhook worker running (poll every {poll:g} s). SIGTERM stops it.")
        self.stdout.flush()
        sent, pruned_at = 0, None
        try:
            while not stop.is_set():
                close_old_connections()
                try:
                    if pruned_at is None or time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
                        pruned_at = time.monotonic()
                        prune()
                    done = deliver_due(limit=batch)
                except STORE_DOWN_ERRORS as exc:  # the database is down or restarting: try again later
                    logger.warning("webhook worker: the database is unavailable (%s); retrying", exc)
                    connections.close_all()
                    done = []
                    stop.wait(max(poll, 1))
                except Exception:  # noqa: BLE001 - a bug in one round must not stop every agent's deliveries
                    logger.exception("webhook worker: the round failed; trying again")
                    done = []
                    stop.wait(max(poll, 1))
                sent += len(done)
                if once:
                    break
                if not done:
                    stop.wait(poll)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            connections.close_all()
        self.stdout.write(f"Webhook worker stopped ({sent} attempt(s) made).")
        self.stdout.flush()
