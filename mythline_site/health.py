"""GET /healthz: 200 when the database, the channel layer and the presence store answer; else 503.

A failing part answers `{"ok": false, "error": "unavailable"}`: the exception (which may name
hosts, ports, users or paths) goes to the log (logger `mythline.health`), never to the client.
"""
import asyncio
import logging
import time
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger("mythline.health")


def _check(name, fn):
    started = time.perf_counter()
    try:
        detail = fn()
    except Exception:  # noqa: BLE001 - any failure is reported as "down"
        logger.exception("healthz: %s is down", name)
        return {"ok": False, "error": "unavailable"}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2), **(detail or {})}


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


async def _layer_roundtrip():
    layer = get_channel_layer()
    # The default prefix: channels-redis reads all of a process's channels of one prefix in one loop,
    # and a second prefix would wait behind the fan-out's blocking read.
    name = await layer.new_channel()
    token = uuid.uuid4().hex
    await layer.send(name, {"type": "healthz", "token": token})
    message = await asyncio.wait_for(layer.receive(name), timeout=2)
    if message.get("token") != token:
        raise RuntimeError("channel layer returned another message")
    return {"backend": type(layer).__name__}


def check_channel_layer():
    return async_to_sync(_layer_roundtrip)()


def check_presence():
    from presence.store import get_presence_store

    return get_presence_store().health()


@require_GET
def healthz(request):
    checks = {"database": _check("database", check_database),
              "channel_layer": _check("channel_layer", check_channel_layer),
              "presence": _check("presence", check_presence)}
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ok" if ok else "down", **checks}, status=200 if ok else 503)
