"""The browser's WebSocket client (frontend/src/socket.js), run in Node against a live Daphne:
resume after a drop and after close/connect, each message exactly once and in order, heartbeats
acknowledged. (Its unit tests against a scripted fake are in tests/test_frontend_units.py.)"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from accounts.services import token_issue
from tests.conftest import require
from tests.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
NODE_MODULES = ROOT / "frontend" / "node_modules"


@pytest.fixture
def node():
    ready = shutil.which("node") and (NODE_MODULES / "ws" / "package.json").is_file()
    require(bool(ready), "Node.js and frontend/node_modules")
    return shutil.which("node")


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_socket_client_resumes_against_a_live_server(node, make_user, make_story, make_agent):
    reader = make_user("reader")
    story = make_story(reader, slug="tale")
    writer = make_agent("narrator", capabilities=["narration"], stories=[story])
    env = {"PATH": os.environ.get("PATH", ""), "SOCKET_TOKENS": f"{token_issue(user=reader)},{token_issue(user=writer)}"}
    with LiveServer() as live:
        proc = subprocess.run([node, str(NODE_DIR / "socket_live.mjs"), "--url", live.base, "--story", "tale"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-4000:] + "\n--- server:\n" + live.output()[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["seqs"] == list(range(1, 10))
