"""Periodic work each server process does for itself: archive idle channels.

Several processes may sweep at once; archiving is idempotent (an UPDATE guarded by
`archived_at IS NULL`), so the channel.archived event goes out from whichever process won.
"""
import asyncio
import logging
import random

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger("mythline.housekeeping")


def sweep_once() -> int:
    from messaging.services import archive_idle_channels

    close_old_connections()
    try:
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


class HousekeepingMiddleware:
    def __init__(self, app):
        self.app = app
        self.task = None

    async def __call__(self, scope, receive, send):
        if self.task is None and scope["type"] in ("http", "websocket") and settings.MYTHLINE_ARCHIVE_SWEEP_SECONDS > 0:
            self.task = asyncio.get_running_loop().create_task(housekeeping_loop())
        return await self.app(scope, receive, send)
