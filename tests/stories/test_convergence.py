"""Co-editing converges (SPEC 9), checked with clients no one here wrote: CodeMirror's own
@codemirror/collab running in Node (tests/node/converge.mjs) against a real Daphne, several at
once, with random edits (emoji, astral characters, line breaks, several ranges per change),
dropped connections, and agents editing over REST at the same time.

At the end every client's text, the server's text and the text rebuilt from the change log must be
the same, and the log must account for every acknowledged edit and nothing else.
"""
import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from accounts.services import token_issue
from stories.changesets import ChangeSet, utf16_len
from stories.documents import text_at
from stories.models import Document, DocumentChange, DocumentSnapshot
from tests.conftest import require
from tests.live import DEFAULT_TEST_REDIS, LiveServer, redis_available

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "node" / "converge.mjs"
NODE_MODULES = ROOT / "frontend" / "node_modules"
CLIENTS = 3


def node_available() -> bool:
    return bool(shutil.which("node")) and all(
        (NODE_MODULES / pkg / "package.json").is_file()
        for pkg in ("@codemirror/state", "@codemirror/collab", "@codemirror/view", "ws"))


@pytest.fixture
def node():
    require(node_available(), "Node.js and frontend/node_modules")
    return shutil.which("node")


@pytest.fixture
def tale(make_user, make_story, make_agent):
    owner = make_user("alice")
    writers = [make_user(f"writer{i}", first_name=f"Writer {i}") for i in range(CLIENTS - 1)]
    story = make_story(owner, slug="tale", editors=writers)
    agents = [make_agent(f"scribe{i}", capabilities=["narration"], stories=[story]) for i in range(2)]
    return {"story": story, "users": [owner, *writers],
            "tokens": [token_issue(user=u) for u in (owner, *writers)],
            "agent_tokens": [token_issue(user=a) for a in agents]}


@pytest.fixture(scope="module")
def server(django_db_setup):
    """One server for the module (Daphne takes seconds to start). Each test's data is committed
    and flushed afterwards; new rows get new ids, so nothing (rate budgets included) carries over."""
    require(node_available(), "Node.js and frontend/node_modules")  # before starting a server for nothing
    with LiveServer() as live:
        yield live


def run_clients(node, live, tokens, *, seed, duration_ms=3000, drops=0, barrier=None, timeout=180, extra_args=()):
    """Run converge.mjs against `live` (a LiveServer, or several: the clients are spread over them);
    `barrier()` (if given) runs while the clients wait before their final pull."""
    servers = live if isinstance(live, (list, tuple)) else [live]
    live = servers[0]
    cmd = [node, str(SCRIPT), "--url", ",".join(s.base for s in servers), "--topic", "doc:tale/main", "--seed", str(seed),
           "--duration", str(duration_ms), "--drops", str(drops), *extra_args]
    if barrier is not None:
        cmd.append("--barrier")
    env = {"PATH": os.environ.get("PATH", ""), "CONVERGE_TOKENS": ",".join(tokens)}
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if barrier is not None:
            barrier()
        out, err = proc.communicate("go\n" if barrier is not None else None, timeout=timeout)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, (f"converge.mjs failed ({proc.returncode}):\n{err}\n--- server:\n"
                                  + "\n--- server:\n".join(s.output()[-3000:] for s in servers))
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_seconds"] = round(time.monotonic() - started, 2)
    return result


def replay_log(doc: Document) -> str:
    """The text rebuilt from the revision-0 snapshot and every logged change, without shortcuts."""
    rows = list(DocumentChange.objects.filter(document=doc).order_by("revision"))
    assert [r.revision for r in rows] == list(range(1, doc.revision + 1)), "the log has gaps or repeats"
    snapshots = dict(DocumentSnapshot.objects.filter(document=doc).values_list("revision", "text"))
    text = snapshots.get(0, "")  # a story's `main` starts empty, without a snapshot
    for row in rows:
        text = ChangeSet.from_json(row.changes, utf16_len(text)).apply(text)
        if row.revision in snapshots:
            assert snapshots[row.revision] == text, f"snapshot at r{row.revision} disagrees with the log"
    return text


def assert_converged(result, live, token):
    texts = result["texts"]
    final = texts[0]
    assert all(t == final for t in texts), "clients diverged:\n" + "\n---\n".join(map(repr, texts))
    assert len(set(result["revisions"])) == 1, result["revisions"]
    revision = result["revisions"][0]
    assert revision == result["server_revision"]

    with httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
        body = api.get("/api/stories/tale/documents/main").json()
    assert body["revision"] == revision
    assert body["text"] == final, "the server's text differs from the clients'"

    doc = Document.objects.get(story__slug="tale", name="main")
    assert doc.revision == revision and doc.text == final
    assert text_at(doc, revision) == final
    assert replay_log(doc) == final, "the change log does not rebuild the text"
    logged = json.dumps([row.changes for row in DocumentChange.objects.filter(document=doc)], ensure_ascii=False)
    assert any(ord(ch) > 0xFFFF for ch in logged), "no astral character was ever inserted"
    # The log rebuilds earlier revisions too (snapshots plus replay), and they match the REST view.
    for earlier in sorted({0, revision // 3, revision // 2, max(0, revision - 1)}):
        replayed = text_at(doc, earlier)
        with httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
            assert api.get(f"/api/stories/tale/documents/main?revision={earlier}").json()["text"] == replayed
    return final, revision


def assert_cursors(result):
    """Each client shows every other client's final selection exactly where that client made it."""
    for me, seen in zip(result["users"], result["cursors"]):
        for other, selection in result["selections"].items():
            if other == me:
                assert other not in seen
                continue
            assert other in seen, f"{me} does not show {other}'s cursor: {seen}"
            assert (seen[other]["anchor"], seen[other]["head"]) == (selection["anchor"], selection["head"]), (
                f"{me} shows {other}'s cursor at {seen[other]}, it is at {selection}")


@pytest.mark.parametrize("seed,drops", [(1, 0), (2, 1), (3, 2)])
def test_codemirror_clients_converge(node, server, tale, seed, drops):
    result = run_clients(node, server, tale["tokens"], seed=seed, drops=drops)
    final, revision = assert_converged(result, server, tale["tokens"][0])
    assert_cursors(result)
    stats = result["stats"]
    assert sum(s["edits"] for s in stats) >= 3 * CLIENTS
    assert revision >= CLIENTS, "hardly anything was applied"
    if drops:
        assert sum(s["drops"] for s in stats) >= CLIENTS, "the connections were not dropped"
    print(f"seed {seed}: {revision} revisions, {len(final)} characters, "
          f"{sum(s['conflicts'] for s in stats)} conflicts, {sum(s['drops'] for s in stats)} drops, "
          f"{sum(s['rateLimited'] for s in stats)} rate-limited pushes, {result['wall_seconds']} s {result['phases']}")


def test_refused_pushes_get_in_on_the_changes_the_subscription_delivers_without_pulling(node, server, tale):
    """SPEC 9 refuses a stale push with `conflict` and the current revision; the changes up to it
    are on their way over the subscription, so collab.js waits for them, rebases and pushes again
    instead of sending a `doc.pull` (the fallback after `conflictWait`, generous here so a slow
    machine cannot make the test about timing)."""
    result = run_clients(node, server, tale["tokens"], seed=11, extra_args=("--conflict-wait", "15000"))
    final, revision = assert_converged(result, server, tale["tokens"][0])
    stats = result["stats"]
    conflicts, waits = sum(s["conflicts"] for s in stats), sum(s["conflictWaits"] for s in stats)
    assert conflicts > 0, "no push was refused: nothing was tested"
    assert waits == conflicts, f"{conflicts} conflicts, only {waits} resolved by the changes that came"
    print(f"{revision} revisions, {conflicts} conflicts, all rebased without a pull")


class RestAgent(threading.Thread):
    """An agent editing over REST with positions in characters: reads, thinks, edits against the
    revision it read (often stale by then). It also makes deliberately stale edits that overlap
    its own previous one, which must be refused with 409 and change nothing."""

    def __init__(self, live, token, name, seed, duration):
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {token}"}, timeout=15)
        self.name, self.rng, self.until = name, random.Random(seed), time.monotonic() + duration
        self.applied = []  # (revision, change) of every 200
        self.mapped = 0  # 200s for an edit made against an older revision (mapped through later changes)
        self.conflicts = []  # bodies of every 409
        self.forced = []  # (marker, status) of deliberately overlapping stale edits
        self.errors = []
        self.counter = 0

    def marker(self, tag="") -> str:
        self.counter += 1
        flourish = self.rng.choice(["", "🐉", "é", "\n"])
        return f"[{self.name}{tag}{self.counter}{flourish}]"

    def post(self, body):
        while True:
            r = self.client.post("/api/stories/tale/documents/main/ops", json=body)
            if r.status_code != 429:
                break
            time.sleep(float(r.headers.get("Retry-After", 1)))
        if r.status_code == 200:
            self.applied.append((r.json()["revision"], r.json()["change"]))
            if "base_revision" in body and r.json()["revision"] > body["base_revision"] + 1:
                self.mapped += 1
        elif r.status_code == 409:
            self.conflicts.append(r.json())
        else:
            self.errors.append((r.status_code, r.text, body))
        return r

    def edits_for(self, text):
        n = len(text)
        cuts = sorted(self.rng.randint(0, n) for _ in range(2))
        if self.rng.random() < 0.5:
            return [{"from": cuts[0], "to": cuts[1], "insert": self.marker()}]
        return [{"from": cuts[0], "to": cuts[0], "insert": self.marker()},
                {"from": cuts[1], "to": min(n, cuts[1] + self.rng.randint(0, 3))}]

    def run(self):
        try:
            while time.monotonic() < self.until:
                doc = self.client.get("/api/stories/tale/documents/main").json()
                text, base = doc["text"], doc["revision"]
                time.sleep(self.rng.uniform(0, 0.15))
                roll = self.rng.random()
                if roll < 0.2:
                    self.post({"append": self.marker("+")})
                elif roll < 0.4 or not self.forced:
                    # A stale edit overlapping our own first one: the server must refuse it.
                    at = self.rng.randint(0, len(text))
                    first = self.post({"base_revision": base, "edits": [{"from": at, "to": at, "insert": self.marker()}]})
                    if first.status_code == 200:
                        marker = f"«stale {self.name} {self.counter}»"
                        second = self.post({"base_revision": base,
                                            "edits": [{"from": at, "to": min(len(text), at + 1), "insert": marker}]})
                        self.forced.append((marker, second.status_code))
                else:
                    self.post({"base_revision": base, "edits": self.edits_for(text)})
                time.sleep(self.rng.uniform(0.02, 0.12))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(("exception", repr(exc), None))
        finally:
            self.client.close()


@pytest.mark.parametrize("seed", [21, 22])
def test_codemirror_clients_and_rest_agents_converge(node, server, tale, seed):
    duration = 3.0
    agents = [RestAgent(server, token, f"A{i}", seed * 10 + i, duration) for i, token in enumerate(tale["agent_tokens"])]

    def rest_agents_edit_meanwhile():
        for agent in agents:
            agent.start()
        for agent in agents:
            agent.join(60)
            assert not agent.is_alive()

    result = run_clients(node, server, tale["tokens"], seed=seed, duration_ms=int(duration * 1000), drops=1,
                         barrier=rest_agents_edit_meanwhile)
    for agent in agents:
        assert not agent.errors, agent.errors
    final, revision = assert_converged(result, server, tale["tokens"][0])
    assert_cursors(result)

    doc = Document.objects.get(story__slug="tale", name="main")
    rest_rows = {row.revision: row for row in DocumentChange.objects.filter(document=doc, via="rest")}
    applied = [item for agent in agents for item in agent.applied]
    # Every acknowledged REST edit is in the log as answered, and nothing else came in over REST:
    # a 409 applied nothing.
    assert sorted(rest_rows) == sorted(rev for rev, _ in applied)
    for rev, change in applied:
        assert rest_rows[rev].changes == change["changes"]
    for agent in agents:
        assert {row.author.username for row in rest_rows.values() if row.revision in {r for r, _ in agent.applied}} \
            <= {f"scribe{agents.index(agent)}"}
    forced = [item for agent in agents for item in agent.forced]
    assert forced, "no deliberately stale overlapping edit was tried"
    all_changes = json.dumps([row.changes for row in DocumentChange.objects.filter(document=doc)], ensure_ascii=False)
    for marker, status in forced:
        assert status == 409, f"a stale edit overlapping an applied one was accepted ({status})"
        assert marker not in all_changes and marker not in final
    for body in (c for agent in agents for c in agent.conflicts):
        assert body["error"]["code"] == "conflict" and isinstance(body["error"]["details"]["revision"], int)
    ws_rows = DocumentChange.objects.filter(document=doc, via="ws").count()
    assert ws_rows + len(rest_rows) == revision
    print(f"seed {seed}: {revision} revisions ({ws_rows} from CodeMirror, {len(rest_rows)} over REST), "
          f"{sum(len(a.conflicts) for a in agents)} REST conflicts, {sum(a.mapped for a in agents)} stale REST edits "
          f"mapped and applied, {len(final)} characters, {result['wall_seconds']} s")


def test_codemirror_clients_on_two_processes_converge(node, tale):
    """The clients spread over two server processes sharing Redis: each process learns of the
    other's changes through the channel layer (and fills any gap from the log)."""
    require(redis_available(), f"Redis at {DEFAULT_TEST_REDIS}")
    env = {"MYTHLINE_REDIS_PREFIX": f"mythline-test-{time.monotonic_ns()}"}
    with LiveServer(redis_url=DEFAULT_TEST_REDIS, env=env) as one, LiveServer(redis_url=DEFAULT_TEST_REDIS, env=env) as two:
        result = run_clients(node, [one, two], tale["tokens"], seed=31, drops=1)
        final, revision = assert_converged(result, two, tale["tokens"][0])
        assert_cursors(result)
    print(f"two processes: {revision} revisions, {len(final)} characters, {result['wall_seconds']} s")
