"""Browser tests: the real pages in Debian's Chromium, driven by Playwright, against a real server.

- Each test module gets its own Daphne process (tests/live.py) on the test database, with DEBUG
  off, so static files come from WhiteNoise as in production (collected once per run).
- Chromium is /usr/bin/chromium (never `playwright install`). The tests skip when it or the bundle
  (static/js/mythline.js) is missing, and fail instead under MYTHLINE_REQUIRE_ALL=1.
- Playwright's sync API keeps an event loop running in the test thread while it lives, which
  Django refuses to run the ORM under, and `async_to_sync` (used to publish events) refuses to
  start in. So the browser lives only as long as this package's tests (package scope), the ORM is
  allowed under it (DJANGO_ALLOW_ASYNC_UNSAFE, for pytest-django's own flush), and the tests build
  their data through `db_call(fn)`, which runs `fn` in a worker thread with no loop.
"""
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from tests.conftest import require
from tests.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
BUNDLE = ROOT / "static" / "js" / "mythline.js"
FRONTEND = ROOT / "frontend"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 800}
ROOM = "/stories/tale/?channel=general"  # the `tale` story's room, with its document `main`
DOC = "/api/stories/tale/documents/main"


def _bundle_is_stale() -> bool:
    if not BUNDLE.exists():
        return True
    built = BUNDLE.stat().st_mtime
    sources = [*FRONTEND.joinpath("src").rglob("*.js"), FRONTEND / "package-lock.json"]
    return any(p.stat().st_mtime > built for p in sources if p.exists())


def _ensure_bundle() -> None:
    """`make test` builds the bundle first; a developer running pytest directly after editing
    frontend/src/ gets it rebuilt here rather than testing stale code."""
    esbuild = FRONTEND / "node_modules" / ".bin" / "esbuild"
    if esbuild.exists() and _bundle_is_stale():
        subprocess.run(["npm", "run", "--silent", "build"], cwd=FRONTEND, check=True, capture_output=True, timeout=120)


def wait_until(predicate, timeout=30.0, interval=0.05, message="condition"):
    """Polls `predicate` until it is true (a condition wait, not a fixed sleep); returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="package")
def browser():
    require(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        _ensure_bundle()
    except (OSError, subprocess.SubprocessError):
        pass
    require(BUNDLE.exists(), f"the browser bundle {BUNDLE.relative_to(ROOT)} (cd frontend && npm ci && npm run build)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package (pip install -e '.[dev]')")
    # Production serves static files from STATIC_ROOT through WhiteNoise: collect them as `make run` does.
    call_command("collectstatic", interactive=False, verbosity=0)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def db_call(transactional_db):
    """`db_call(fn, *args)` runs fn in a worker thread (no event loop) and returns its result."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="browser-test-db")

    def call(fn, *args, **kwargs):
        return pool.submit(fn, *args, **kwargs).result(timeout=60)

    yield call
    from django.db import connections

    pool.submit(connections.close_all).result(timeout=30)
    pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def server(django_db_setup, browser):
    """One server per test module (starting Daphne costs seconds); each test's data is its own,
    since the database is emptied after every test, and every page closes with its test."""
    live = LiveServer()
    live.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the server keeps Django's guard
    with live:  # started; stopped, its log removed, after the module
        yield live


@pytest.fixture
def open_as(browser, server, db_call):
    """`open_as(user, path)` -> a page signed in as `user` (a session made on the server side),
    in its own browser context. Console errors and page errors are collected on `page.errors`."""
    from django.test import Client

    contexts = []

    def session_for(user):
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    def open_page(user, path="/", *, wait_live=True, before=None, viewport=VIEWPORT, goto_until="load"):
        """`before(page)` runs before the page loads (say, to route its WebSocket); `goto_until`
        is Playwright's `goto` condition ("commit" returns before the page's scripts ran)."""
        context = browser.new_context(viewport=viewport, base_url=server.base)
        contexts.append(context)
        context.add_cookies([{"name": "sessionid", "value": db_call(session_for, user),
                              "url": server.base}])
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
        if before is not None:
            before(page)
        page.goto(path, wait_until=goto_until)
        if wait_live:
            from playwright.sync_api import expect

            expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=15000)
        return page

    yield open_page
    for context in contexts:
        try:
            context.close()
        except Exception:  # noqa: BLE001 - a test may have closed it already
            pass


@pytest.fixture
def rest(server):
    """`rest(token)` -> an httpx client for the live server with that bearer token."""
    clients = []

    def make(token):
        client = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def tale(db_call, make_user, make_story, make_agent):
    """A public story `tale`: alice owns it, bob edits, the agent `narrator` (with a token) writes."""
    from accounts.services import token_issue

    def build():
        alice = make_user("alice", display_name="Alice")
        bob = make_user("bob", display_name="Bob")
        story = make_story(alice, slug="tale", title="A Tale", editors=[bob])
        narrator = make_agent("narrator", capabilities=["narration"], stories=[story])
        return {"story": story, "alice": alice, "bob": bob, "narrator": narrator,
                "narrator_token": token_issue(user=narrator), "alice_token": token_issue(user=alice)}

    return db_call(build)


@pytest.fixture
def cast(db_call, make_user, tale):
    """The `tale` story with a viewer too: vera reads, does not write."""
    def build():
        from stories.models import Participant
        from stories.services import participant_add

        vera = make_user("vera", display_name="Vera")
        participant_add(story=tale["story"], user=vera, role=Participant.Role.VIEWER)
        return {**tale, "vera": vera}
    return db_call(build)


def editor_text(page):
    """The open document's text in `page`'s editor."""
    return page.evaluate("() => window.mythlineEditor.view.state.doc.toString()")


@pytest.fixture
def open_room(open_as):
    """`open_room(user, text=None, **open_as_kwargs)` -> the `tale` room open as `user`, its editor
    loaded and synced (or read only), and showing `text` when given."""
    from playwright.sync_api import expect

    def open_page(user, text=None, **kwargs):
        page = open_as(user, ROOM, **kwargs)
        expect(page.locator("#editor .cm-content")).to_be_attached()
        expect(page.locator("#doc-status")).to_have_attribute("data-status", re.compile("^(synced|readonly)$"))
        if text is not None:
            wait_until(lambda: editor_text(page) == text, message="the document's text")
        return page

    return open_page
