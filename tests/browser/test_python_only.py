"""The room works wherever Python does: a fresh checkout, served with Node hidden from PATH (no
build step), gives a live room with its channels and the editor, from the committed bundle."""
import os
import shutil
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ROOT, VIEWPORT
from tests.conftest import require
from tests.live import LiveServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]


def path_without_node() -> str:
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not (shutil.which("node", path=d) or shutil.which("npm", path=d))]
    return os.pathsep.join(keep)


def test_a_checkout_without_node_serves_a_live_room(browser, db_call, tale, tmp_path):
    require(shutil.which("git") is not None, "git")
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(checkout)], check=True, timeout=120)
    assert (checkout / "static" / "js" / "mythline.js").exists(), "the bundle is committed"
    env_path = path_without_node()
    assert shutil.which("node", path=env_path) is None
    env = {**os.environ, "PATH": env_path, "MYTHLINE_VAR_DIR": str(tmp_path / "var")}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
                   cwd=checkout, env=env, check=True, timeout=120)
    live = LiveServer(root=checkout, env={"PATH": env_path, "MYTHLINE_VAR_DIR": str(tmp_path / "var")})
    live.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    live.start()
    context = browser.new_context(viewport=VIEWPORT, base_url=live.base)
    try:
        from django.test import Client

        def session():
            client = Client()
            client.force_login(tale["alice"])
            return client.cookies["sessionid"].value

        context.add_cookies([{"name": "sessionid", "value": db_call(session), "url": live.base}])
        page = context.new_page()
        page.goto("/stories/tale/")
        expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=15000)
        expect(page.locator('.chan[data-channel="general"]')).to_be_visible()
        expect(page.locator("#editor .cm-content")).to_be_visible()
        expect(page.locator("#doc-status")).to_have_attribute("data-status", "synced")
    finally:
        context.close()
        live.stop()
