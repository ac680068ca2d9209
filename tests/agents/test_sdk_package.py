"""The SDK as its own distribution (`mythline-sdk`, sdk/), without a server and without the network.

- sdk/pyproject.toml depends on httpx and websockets only; a wheel built from it (offline:
  --no-build-isolation) installs into a fresh venv that holds nothing else but those two and what
  they need, and imports there, where Django cannot be imported at all.
- The blocking client has every public method of the async one, with the same parameters.
- The first-hour traps: `read_messages(before=)` keeps `next_before`; handlers registered with
  `client.on()` after `client.listener()` run (and a message that finds no handler at all waits
  instead of being acknowledged); topics as lists, pairs, or a single one; `TransportError` names
  the URL; reconnects log at WARNING with their delay; every answer is a typed model.

The same client against a live server: tests/agents/test_sdk.py.
"""
import ast
import asyncio
import importlib.metadata
import inspect
import logging
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

import mythline_sdk
from mythline_sdk import (ActivityPage, AgentProfile, AsyncMythlineClient, Backoff, Channel, DocumentEdit,
                          DocumentOps, Message, MessagePage, MythlineClient, Participant, Presence, RouteResult,
                          Story, TransportError)
from mythline_sdk.listener import Listener
from mythline_sdk.sync import SyncListener
from tests.conftest import require
from tests.live import ROOT, free_port

SDK = ROOT / "sdk"
GENERAL = "channel:tale/general"


def _pyproject() -> dict:
    return tomllib.loads((SDK / "pyproject.toml").read_text())


# --- the distribution ------------------------------------------------------------------------

def test_the_sdk_depends_on_httpx_and_websockets_only():
    project = _pyproject()["project"]
    assert project["name"] == "mythline-sdk" and project["version"] == mythline_sdk.__version__ == "0.1.0"
    assert project["requires-python"] == ">=3.11"
    names = {Requirement(r).name.lower() for r in project["dependencies"]}
    assert names == {"httpx", "websockets"}
    # What the modules import: the standard library, the two dependencies, the SDK itself.
    imported = set()
    for path in (SDK / "mythline_sdk").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"httpx", "websockets", "mythline_sdk"}, imported


def _closure(requirements: list[str]) -> set[str]:
    """The distributions `requirements` need, installed here, recursively (markers evaluated)."""
    todo, seen = list(requirements), set()
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = req.name.lower()
        if name in seen:
            continue
        seen.add(name)
        todo += importlib.metadata.requires(name) or []
    return seen


def _top_level(dist_name: str) -> set[str]:
    dist = importlib.metadata.distribution(dist_name)
    names = set()
    for file in dist.files or []:
        top = file.parts[0]
        if top.endswith((".dist-info", ".egg-info", ".pth")) or top in ("__pycache__", "..", "bin"):
            continue
        names.add(top)
    return names


def test_a_built_wheel_installs_into_a_fresh_venv_and_imports_without_django(tmp_path):
    import setuptools

    require(tuple(int(x) for x in setuptools.__version__.split(".")[:2]) >= (70, 1),
            "setuptools>=70.1 (builds the wheel offline; `make install` brings it)")
    wheels, source = tmp_path / "wheels", tmp_path / "sdk"
    # From a copy: an in-tree build would leave build/ and *.egg-info/ in the checkout.
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(wheels), str(source)], check=True, timeout=120, cwd=tmp_path)
    [wheel] = wheels.glob("mythline_sdk-0.1.0-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"mythline_sdk/__init__.py", "mythline_sdk/sync.py", "mythline_sdk/listener.py",
            "mythline_sdk/py.typed"} <= set(names)
    assert all(n.startswith(("mythline_sdk/", "mythline_sdk-0.1.0.dist-info/")) for n in names), names
    requires = [line.split(":", 1)[1].strip() for line in zipfile.ZipFile(wheel).read(
        "mythline_sdk-0.1.0.dist-info/METADATA").decode().splitlines() if line.startswith("Requires-Dist:")]

    # Install it with pip (offline) into a directory, and give a fresh venv (no system site-packages,
    # no pip) that directory plus the declared dependencies' own packages: nothing else.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(target), str(wheel)], check=True, timeout=120)
    deps = tmp_path / "deps"
    deps.mkdir()
    here = Path(importlib.metadata.distribution("httpx").locate_file(""))
    closure = _closure(requires)
    assert "django" not in closure and "channels" not in closure
    for dist in closure:
        for top in _top_level(dist):
            (deps / top).symlink_to(here / top)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "mythline-test.pth").write_text(f"{target}\n{deps}\n")
    check = (
        "import importlib.util, mythline_sdk, mythline_sdk.sync, mythline_sdk.listener\n"
        "assert importlib.util.find_spec('django') is None, 'django is reachable'\n"
        "assert importlib.util.find_spec('channels') is None\n"
        "c = mythline_sdk.MythlineClient('http://127.0.0.1:9', 't'); c.close()\n"
        "print(mythline_sdk.__file__)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "DJANGO_SETTINGS_MODULE")}
    out = subprocess.run([python, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target)), out.stdout  # the wheel's copy, not the checkout's


# --- the blocking client ---------------------------------------------------------------------

def _public(cls) -> dict[str, object]:
    return {name: getattr(cls, name) for name in dir(cls) if not name.startswith("_")}


def test_the_blocking_client_has_every_public_method_of_the_async_one_with_the_same_parameters():
    sync, aio = _public(MythlineClient), _public(AsyncMythlineClient)
    missing = sorted(set(aio) - set(sync))
    assert not missing, f"MythlineClient lacks {missing}"
    for name, member in aio.items():
        if isinstance(member, property):
            assert isinstance(sync[name], property), name
            continue
        if not callable(member):
            continue
        a, s = inspect.signature(member), inspect.signature(sync[name])
        assert [(p.name, p.kind, p.default) for p in a.parameters.values()] == \
               [(p.name, p.kind, p.default) for p in s.parameters.values()], (name, str(a), str(s))
    a, s = inspect.signature(AsyncMythlineClient.__init__), inspect.signature(MythlineClient.__init__)
    assert set(a.parameters) == set(s.parameters)


def test_the_blocking_listener_has_every_public_member_of_the_async_one_with_the_same_parameters():
    sync, aio = _public(SyncListener), _public(Listener)
    assert not sorted(set(aio) - set(sync)), f"SyncListener lacks {sorted(set(aio) - set(sync))}"
    for name, member in aio.items():
        if isinstance(member, property):
            assert isinstance(sync[name], property), name
        elif callable(member):
            a, s = inspect.signature(member), inspect.signature(sync[name])
            assert [p.name for p in a.parameters.values()] == [p.name for p in s.parameters.values()], name


def test_docs_sdk_md_names_every_public_member_and_only_what_exists():
    """docs/sdk.md is the reference: every public method and property of the clients and the
    listeners is named there, and every method its REST table names exists on both clients."""
    doc = (ROOT / "docs" / "sdk.md").read_text()
    names = set()
    for cls in (AsyncMythlineClient, MythlineClient, Listener, SyncListener):
        names |= set(_public(cls))
    names |= {"username", "base_url"}  # instance attributes of the async client, properties of the blocking one
    undocumented = sorted(n for n in names if not re.search(rf"`(?:[\w.]+\.)?{n}\b", doc))
    assert not undocumented, f"docs/sdk.md does not name {undocumented}"
    table = doc.split("| method | what |", 1)[1].split("\n\n", 1)[0]
    listed = {m for row in table.splitlines()[2:] for m in re.findall(r"`(\w+)[(`]", row.split(" | ")[0])}
    assert listed, "the method table of docs/sdk.md was not found"
    sync_only, instance_attributes = {"close", "stop_listening"}, {"username", "base_url"}
    for name in sorted(listed):
        assert hasattr(MythlineClient, name), name
        assert hasattr(AsyncMythlineClient, name) or name in sync_only | instance_attributes, name


# --- answers, pages, errors (a fake server) --------------------------------------------------

MESSAGE = {"id": "6f0c1a52-3c1e-4a8e-9d7e-6b5e8c0f4a11", "story": "tale", "channel": "general", "seq": 7,
           "sender": {"username": "echo", "display_name": "Echo", "kind": "agent"}, "msg_type": "text",
           "payload": {"text": "hi"}, "reply_to": None, "correlation_id": None, "audience": "all",
           "created_at": "2025-01-01T00:00:00Z"}
STORY = {"slug": "tale", "title": "A tale", "premise": "", "visibility": "public", "requires_approval": True,
         "owner": "alice", "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
         "role": "editor"}
PARTICIPANT = {"username": "echo", "display_name": "Echo", "kind": "agent", "role": "editor",
               "joined_at": "2025-01-01T00:00:00Z"}
CHANNEL = {"story": "tale", "name": "general", "kind": "public", "topic": "", "archived": False, "archived_at": None,
           "last_seq": 7, "created_by": "alice", "created_at": "2025-01-01T00:00:00Z", "idle_archive_seconds": None,
           "inbox_of": None}
AGENT = {"username": "echo", "display_name": "Echo", "description": "", "capabilities": ["query"],
         "status": "working", "task": "x", "progress": 0.5, "status_updated_at": None, "last_seen": None}
CHANGE = {"revision": 3, "changes": [[0, "x"]], "client_id": None, "author": "echo", "via": "rest",
          "created_at": "2025-01-01T00:00:00Z"}

ROUTES = {
    ("GET", "/api/stories"): (200, {"results": [STORY], "next": None}),
    ("POST", "/api/stories/tale/join"): (201, PARTICIPANT),
    ("GET", "/api/stories/tale"): (200, STORY),
    ("GET", "/api/stories/tale/participants"): (200, {"results": [PARTICIPANT], "next": None}),
    ("GET", "/api/stories/tale/channels"): (200, {"results": [CHANNEL], "next": None}),
    ("GET", "/api/stories/tale/presence"): (200, {"members": [], "agents": [{**AGENT, "kind": "agent"}]}),
    ("GET", "/api/stories/tale/channels/general/messages"): (
        200, {"results": [MESSAGE], "next_before": 7, "next_after": 7, "last_seq": 9}),
    ("GET", "/api/activity"): (200, {"results": [MESSAGE], "next_after": "abc"}),
    ("POST", "/api/stories/tale/route"): (201, {"results": [MESSAGE], "routed_to": ["echo"]}),
    ("PUT", "/api/agents/me/status"): (200, AGENT),
    ("GET", "/api/stories/tale/documents/main/ops"): (200, {"results": [CHANGE], "revision": 3}),
    ("POST", "/api/stories/tale/documents/main/ops"): (200, {"revision": 3, "change": CHANGE}),
}


def _fake_server(calls):
    def handle(request):
        calls.append(request)
        status, body = ROUTES[(request.method, request.url.path)]
        return httpx.Response(status, json=body)
    return httpx.MockTransport(handle)


def test_every_answer_is_a_typed_model_and_before_pages_keep_next_before():
    calls = []
    with MythlineClient("http://mythline.test", "t", transport=_fake_server(calls)) as client:
        [story] = client.list_stories()
        assert isinstance(story, Story) and story.slug == "tale" and story.role == "editor"
        assert client.get_story("tale").requires_approval is True
        joined = client.join_story("tale")
        assert isinstance(joined, Participant) and joined.created and joined.role == "editor"
        assert [p.username for p in client.list_participants("tale")] == ["echo"]
        [channel] = client.list_channels("tale")
        assert isinstance(channel, Channel) and channel.socket_topic == GENERAL and channel.last_seq == 7
        presence = client.presence("tale")
        assert isinstance(presence, Presence) and presence.story == "tale"
        assert isinstance(presence.agents[0], AgentProfile) and presence.agents[0].progress == 0.5
        page = client.read_messages("tale", "general", before=8, limit=1, types="text")
        assert isinstance(page, MessagePage) and page.next_before == 7 and page.last_seq == 9
        assert isinstance(page.results[0], Message) and page.results[0].payload == {"text": "hi"}
        assert calls[-1].url.params["before"] == "8" and calls[-1].url.params["type"] == "text"
        activity = client.activity(story="tale")
        assert isinstance(activity, ActivityPage) and activity.next_after == "abc"
        routed = client.route("tale", "query", {"text": "?"})
        assert isinstance(routed, RouteResult) and routed.routed_to == ["echo"] and routed.results[0].seq == 7
        status = client.set_status("working", "x", 0.5)
        assert isinstance(status, AgentProfile) and status.capabilities == ["query"]
        ops = client.document_ops("tale", "main", after=2)
        assert isinstance(ops, DocumentOps) and ops.revision == 3 and ops.results[0].author == "echo"
        edit = client.append_document("tale", "main", "x")
        assert isinstance(edit, DocumentEdit) and edit.revision == edit.change.revision == 3
    with pytest.raises(dataclasses_frozen()):
        story.title = "changed"


def dataclasses_frozen():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_a_transport_error_names_the_url_it_could_not_reach():
    port = free_port()  # nothing listens there
    with MythlineClient(f"http://127.0.0.1:{port}", "t", backoff=Backoff(base=0.001, cap=0.01, max_attempts=2),
                        timeout=2) as client:
        with pytest.raises(TransportError) as caught:
            client.get_story("tale")
    assert caught.value.url == f"http://127.0.0.1:{port}/api/stories/tale" and caught.value.method == "GET"
    assert f"127.0.0.1:{port}/api/stories/tale" in str(caught.value) and caught.value.attempts == 2


# --- the listener: topics, handlers, reconnects ----------------------------------------------

def test_topics_may_be_lists_pairs_or_a_single_one():
    client = AsyncMythlineClient("http://mythline.test", "t")
    for topics in (["tale", "general"], ("tale", "general"), GENERAL, [["tale", "general"]], [("tale", "general")],
                   [GENERAL], {"channel:tale/general": None}):
        assert client.listener(topics)._wanted == [GENERAL], topics
    assert client.listener([["tale", "general"], "story:tale", ("tale", "@inbox")])._wanted == \
        [GENERAL, "story:tale", "channel:tale/@inbox"]
    assert client.listener(GENERAL, types="query").types == ["query"]
    with pytest.raises(ValueError):
        client.listener([["tale", "general", "extra"]])
    with pytest.raises(TypeError):
        client.listener([42])
    asyncio.run(client.aclose())


def _message(seq: int, msg_type: str = "query") -> Message:
    return Message.from_json({**MESSAGE, "seq": seq, "id": f"m-{seq}", "msg_type": msg_type,
                              "sender": {"username": "alice", "kind": "human"}})


async def _consuming(listener: Listener):
    listener._queue = asyncio.Queue()
    listener._stopping = asyncio.Event()
    return asyncio.create_task(listener._consume())


async def _until(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_handlers_registered_on_the_client_after_the_listener_was_made_run():
    async def go():
        client = AsyncMythlineClient("http://mythline.test", "t", username="echo")
        listener = client.listener([GENERAL])
        seen = []

        @client.on("query")  # after listener(): looked up when the message is dispatched
        async def late(message):
            seen.append(message.seq)

        consumer = await _consuming(listener)
        await listener._queue.put(_message(1))
        await _until(lambda: listener.processed.get(GENERAL) == 1)
        assert seen == [1]
        consumer.cancel()
        await client.aclose()
    asyncio.run(go())


def test_a_message_with_no_handler_at_all_waits_unacknowledged_until_one_is_registered(caplog):
    async def go():
        client = AsyncMythlineClient("http://mythline.test", "t", username="echo")
        listener = client.listener([GENERAL])
        consumer = await _consuming(listener)
        await listener._queue.put(_message(1))
        await listener._queue.put(_message(2, "text"))
        await _until(lambda: listener.stats.unhandled == 1)
        await asyncio.sleep(0.2)
        assert listener.processed.get(GENERAL) is None and listener._acks_due() == {}  # nothing acknowledged
        seen = []

        async def handler(message):
            seen.append(message.seq)
        client.on("query", handler)
        await _until(lambda: listener.processed.get(GENERAL) == 2)
        assert seen == [1]  # the one it waited for; the text has no handler of its type, as before
        consumer.cancel()
        await client.aclose()
    with caplog.at_level(logging.WARNING, logger="mythline.sdk.listener"):
        asyncio.run(go())
    assert any("no handler registered" in r.getMessage() for r in caplog.records)


def test_the_blocking_client_registers_handlers_for_listeners_made_before():
    with MythlineClient("http://mythline.test", "t", username="echo") as client:
        listener = client.listener(("tale", "general"))
        seen = []
        client.on("query", lambda message: seen.append(message.seq))

        async def go():
            consumer = await _consuming(listener.aio)
            await listener.aio._queue.put(_message(5))
            await _until(lambda: listener.aio.processed.get(GENERAL) == 5)
            consumer.cancel()
        client._run(go())
    assert seen == [5]


def test_reconnect_attempts_log_at_warning_with_their_delay(caplog):
    port = free_port()  # nothing listens there: every attempt fails

    async def go():
        async with AsyncMythlineClient(f"http://127.0.0.1:{port}", "t", username="echo") as client:
            listener = client.listener([GENERAL], reconnect=Backoff(base=0.01, cap=0.05, max_attempts=None),
                                       open_timeout=1)
            listener.on("query", _noop)
            await listener.run(duration=0.5)
            return listener
    with caplog.at_level(logging.WARNING, logger="mythline.sdk.listener"):
        listener = asyncio.run(go())
    records = [r for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(records) >= 2 and listener.stats.reconnects >= 2
    assert all(r.levelno == logging.WARNING for r in records)
    assert f"ws://127.0.0.1:{port}/ws/" in records[0].getMessage() and "(attempt 1)" in records[0].getMessage()


async def _noop(message):
    return None
