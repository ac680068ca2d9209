"""Sign-in limits on real servers as `serve` runs them (uvicorn --proxy-headers) over one Redis:
the count is shared by every process, and the client address comes from `X-Forwarded-For` only
when the connection is from an address in FORWARDED_ALLOW_IPS (docs/deploy.md "Sign-in limits")."""
import html
import re
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.conftest import require
from tests.live import DEFAULT_TEST_REDIS, LiveServer, redis_available

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class UvicornServer(LiveServer):
    """A LiveServer run the way `manage.py serve` runs its workers (docs/deploy.md)."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "mythline_site.asgi:application", "--host", "127.0.0.1",
                "--port", str(self.port), "--proxy-headers", "--lifespan", "off", "--no-access-log"]

    def start(self, timeout: float = 60):
        return super().start(timeout)


def start_together(*servers):
    """Start the servers in parallel (each takes seconds to import Django)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        list(pool.map(lambda server: server.start(), servers))


def sign_in(base, username, password, forwarded_for=None):
    with httpx.Client(base_url=base, timeout=10) as client:
        token = CSRF_RE.search(client.get("/accounts/login/").text).group(1)
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        return client.post("/accounts/login/", headers=headers, data={
            "csrfmiddlewaretoken": token, "username": username, "password": password})


def test_limits_hold_across_processes_and_trust_forwarded_for_only_from_the_proxy():
    require(redis_available(), "Redis")
    username = f"victim-{uuid.uuid4().hex[:8]}"
    get_user_model().objects.create_user(username, password="pw-victim-123456")
    env = {"MYTHLINE_REDIS_PREFIX": f"mythline-test-{uuid.uuid4().hex[:12]}",  # this test's own keys
           "MYTHLINE_SIGNIN_ACCOUNT_FAILURES": "5", "MYTHLINE_SIGNIN_ADDRESS_FAILURES": "3"}
    behind_proxy = UvicornServer(redis_url=DEFAULT_TEST_REDIS, env={**env, "FORWARDED_ALLOW_IPS": "127.0.0.1"})
    exposed = UvicornServer(redis_url=DEFAULT_TEST_REDIS, env={**env, "FORWARDED_ALLOW_IPS": "192.0.2.254"})
    try:
        start_together(behind_proxy, exposed)
        # Five failures for one account (its ceiling, lowered to 5 here), over two processes and
        # four client addresses.
        for n in range(3):
            assert sign_in(behind_proxy.base, username, "guess", f"198.51.100.{n}").status_code == 200
        for _ in range(2):
            assert sign_in(exposed.base, username, "guess").status_code == 200
        response = sign_in(behind_proxy.base, username, "pw-victim-123456", "198.51.100.9")
        assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 900
        assert "Too many sign-in attempts for this account; try again in 15 minutes." in html.unescape(response.text)

        # Where the proxy is not trusted, a forged X-Forwarded-For changes nothing: the connection's
        # own address (127.0.0.1, two failures so far) reaches its limit of three.
        assert sign_in(exposed.base, "someone-1", "guess", "203.0.113.1").status_code == 200
        response = sign_in(exposed.base, "someone-2", "guess", "203.0.113.2")
        assert response.status_code == 429
        assert "Too many sign-in attempts from your network address" in html.unescape(response.text)
        # Behind the trusted proxy, the forwarded client is the address counted.
        assert sign_in(behind_proxy.base, "someone-3", "guess", "203.0.113.50").status_code == 200
    finally:
        for server in (behind_proxy, exposed):
            server.__exit__(None, None, None)
