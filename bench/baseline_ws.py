#!/usr/bin/env python
"""The fan-out benchmark's Python ceiling: a bare `websockets` broadcast server, no Django, no layer.

    .venv/bin/python bench/baseline_ws.py --port 8765

* `ws://127.0.0.1:<port>/sub`: a subscriber; it only receives.
* `ws://127.0.0.1:<port>/pub`: the publisher; every text frame it sends is written to every open
  subscriber with `websockets.broadcast` (one encode, K socket writes, no awaiting).
* `GET /healthz`: 200 once listening (the benchmark waits on it).

Binds to 127.0.0.1 only. Used by bench/fanout.py, which starts and stops it.
"""
import argparse
import asyncio
import signal
from http import HTTPStatus

from websockets.asyncio.server import broadcast, serve

SUBSCRIBERS = set()


def health(connection, request):
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    if request.path not in ("/sub", "/pub"):
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def handler(ws):
    if ws.request.path == "/pub":
        async for message in ws:
            broadcast(SUBSCRIBERS, message)
        return
    SUBSCRIBERS.add(ws)
    try:
        await ws.wait_closed()
    finally:
        SUBSCRIBERS.discard(ws)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    # No compression (the benchmark's clients offer none either), no size surprises.
    async with serve(handler, "127.0.0.1", port, process_request=health, compression=None,
                     max_size=256 * 1024, backlog=2048):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port))
