"""The browser code's unit tests (every tests/node/*.test.mjs), run with `node --test`; socket.js and
collab.js against scripted fakes: reconnect/backoff, resume and de-duplication, heartbeats and presence
states; the co-editing engine through conflicts, rate limits, lost answers, offline edits, copied
client ids and remote cursors. Live runs are in tests/messaging/test_socket_client.py and
tests/stories/test_convergence.py."""
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"


# Every suite in tests/node, found rather than listed: a new one cannot be left out of `make test`.
@pytest.mark.parametrize("suite", sorted(p.name for p in NODE_DIR.glob("*.test.mjs")))
def test_frontend_unit_suite(suite):
    node = shutil.which("node")
    require(bool(node) and (ROOT / "frontend" / "node_modules" / "@codemirror" / "collab").is_dir(),
            "Node.js and frontend/node_modules")
    proc = subprocess.run([node, "--test", str(NODE_DIR / suite)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
