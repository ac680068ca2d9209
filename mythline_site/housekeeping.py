"""Periodic work each server process does for itself: archive idle channels, keep the garbage
collector out of the event loop's way.

Several processes may sweep at once (`serve --workers N`: each runs this loop). Archiving is an
UPDATE guarded by `archived_at IS NULL`, and only the process whose UPDATE changed the row
publishes the channel.archived event, writes the audit row and counts the channel; the others
find it archived and do nothing (messaging.services._set_archived). The UPDATE also requires the
`last_message_at` (and `idle_archive_seconds`) the sweep read, so a channel that received a
message between the read and the UPDATE stays open.

Garbage collection: Python's full (generation 2) collections scan every tracked object. With a
thousand sockets open a server holds about a million of them, nearly all long-lived (the sockets
and their state), and each full collection stalled the event loop for 150-260 ms, a few times a
minute under presence churn: the worst of its latency. Every MYTHLINE_GC_FREEZE_SECONDS the
process moves what is alive into the collector's permanent generation (`gc.freeze()`), which full
collections skip; every MYTHLINE_GC_FULL_SECONDS it unfreezes and collects everything once, so
reference cycles that died while frozen do not pile up. Young garbage is collected as usual.
"""
import asyncio
import gc
import logging
import random
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger("mythline.housekeeping")


def sweep_once() -> int:
    from messaging.services import archive_idle_channels

    from streaming.services import cancel_idle_streams

    close_old_connections()
    try:
        cancel_idle_streams()  # streams without an append for MYTHLINE_STREAM_IDLE_SECONDS
        return len(archive_idle_channels())
    finally:
        close_old_connections()


async def housekeeping_loop():
    interval = settings.MYTHLINE_ARCHIVE_SWEEP_SECONDS
    while True:
        # Jitter keeps many processes from sweeping in lockstep.
        await asyncio.sleep(interval * (0.5 + random.random()))
        try:
            count = await sync_to_async(sweep_once, thread_sensitive=False)()
            if count:
                logger.info("archived %d idle channel(s)", count)
        except Exception:  # noqa: BLE001 - keep sweeping; the next round retries
            logger.exception("idle-channel sweep failed")


def gc_step(*, full: bool) -> None:
    if full:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


async def gc_loop():
    every, full_every = settings.MYTHLINE_GC_FREEZE_SECONDS, settings.MYTHLINE_GC_FULL_SECONDS
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(every)
        full = time.monotonic() - last_full >= full_every
        if full:
            last_full = time.monotonic()
        gc_step(full=full)


class HousekeepingMiddleware:
    def __init__(self, app):
        self.app = app
        self.tasks = None

    async def __call__(self, scope, receive, send):
        if self.tasks is None and scope["type"] in ("http", "websocket"):
            loop = asyncio.get_running_loop()
            self.tasks = []
            if settings.MYTHLINE_ARCHIVE_SWEEP_SECONDS > 0:
                self.tasks.append(loop.create_task(housekeeping_loop()))
            if settings.MYTHLINE_GC_FREEZE_SECONDS > 0:
                self.tasks.append(loop.create_task(gc_loop()))
        return await self.app(scope, receive, send)
