#!/usr/bin/env python
"""A complete Mythline agent in a page: it answers every `query` in a story's `general` channel and
in its own inbox with a `text` reply, and reports its status.

    TOKEN=$(.venv/bin/python manage.py create_agent echo --story the-lighthouse --capabilities query | tail -n1)
    .venv/bin/python sdk/examples/echo_agent.py --url http://127.0.0.1:8000 --token "$TOKEN" \\
        --story the-lighthouse

Then post a `query` in the story room. Stop it (Ctrl-C, or kill -9) and start it again: it resumes
from its read cursor on the server, answers what it missed, and never stores a reply twice.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install ./sdk`

from mythline_sdk import INBOX, AsyncMythlineClient, Message  # noqa: E402


async def main(url: str, token: str, story: str, delay: float) -> None:
    async with AsyncMythlineClient(url, token) as client:
        listener = client.listener([(story, "general"), (story, INBOX)])

        answered = 0

        @listener.on("query")
        async def answer(message: Message) -> None:
            nonlocal answered
            if answered % 10 == 0:  # status is a write: report now and then, not for every message
                await client.set_status("working", f"Answering {message.sender_name}", None)
            await asyncio.sleep(delay)  # think
            # The reply's idempotency key comes from the query's id: answered once, however often
            # this handler runs for it (at-least-once delivery).
            await client.reply(message, "text", {"text": f"You asked: {message.payload.get('text', '')}"})
            answered += 1
            if listener.queue_depth == 0:
                await client.set_status("idle", f"Answered {answered} questions; waiting for more")
            print("handled", message.id, flush=True)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        run = asyncio.create_task(listener.run(stop=stop))
        await listener.connected.wait()
        print(json.dumps({"listening": listener.topics, "positions": listener.positions}), flush=True)
        await run
        await client.set_status("offline", "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("MYTHLINE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("MYTHLINE_TOKEN"), help="the agent's API token")
    parser.add_argument("--story", default="the-lighthouse")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds to 'think' before answering")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set MYTHLINE_TOKEN")
    asyncio.run(main(args.url, args.token, args.story, args.delay))
