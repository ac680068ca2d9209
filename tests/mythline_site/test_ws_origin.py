"""The WebSocket Origin check on real sockets (docs/protocol.md 6.1): a cookie-authenticated socket
is accepted only from an origin equal in scheme, host and port to its own or to a configured one,
whatever ALLOWED_HOSTS holds; bearer sockets, which no browser can forge, are judged by the token."""
import asyncio
import json

import httpx
import pytest
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from accounts.services import token_issue
from tests.live import LiveServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture(scope="module")
def strict(django_db_setup, django_db_blocker):
    """As deployed: ALLOWED_HOSTS 127.0.0.1,localhost; CSRF_TRUSTED_ORIGINS http://127.0.0.1:P,
    http://localhost:P; plus a subdomain pattern for sockets only."""
    with django_db_blocker.unblock(), LiveServer(env={"MYTHLINE_WS_ALLOWED_ORIGINS": "https://*.example.org"}) as live:
        yield live


@pytest.fixture(scope="module")
def wildcard(django_db_setup, django_db_blocker):
    """ALLOWED_HOSTS=* and no trusted origins: only the socket's own origin is left."""
    with django_db_blocker.unblock(), LiveServer(env={"ALLOWED_HOSTS": "*", "CSRF_TRUSTED_ORIGINS": ""}) as live:
        yield live


def sign_in(live, user) -> str:
    """A signed-in browser's session cookie header (the session is in the shared database); the
    server knows it: its pages answer as to a signed-in user."""
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    assert httpx.get(live.base + "/", headers={"Cookie": cookie}).status_code == 200  # not the sign-in redirect
    return cookie


def welcome(url, origin=None, headers=None) -> dict:
    """The first frame of an accepted socket; raises InvalidStatus when the handshake is refused."""
    async def first_frame():
        async with connect(url, origin=origin, additional_headers=headers or {}, open_timeout=10) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))
    return asyncio.run(first_frame())


def refused(url, origin=None, headers=None) -> bool:
    """The handshake is refused: the browser sees a failed connection (HTTP 403, no socket)."""
    with pytest.raises(InvalidStatus) as caught:
        welcome(url, origin, headers)
    return caught.value.response.status_code == 403


def test_only_an_exact_origin_opens_a_cookie_socket(strict, make_user):
    user = make_user("ada")
    cookie = {"Cookie": sign_in(strict, user)}
    port = strict.port
    frame = welcome(strict.ws, f"http://127.0.0.1:{port}", cookie)
    assert frame["type"] == "welcome" and frame["user"]["username"] == "ada"
    assert (welcome(strict.ws, f"http://localhost:{port}", cookie))["user"]["username"] == "ada"

    # The right host in ALLOWED_HOSTS is not enough: the port and the scheme must match too.
    assert refused(strict.ws, f"http://127.0.0.1:{port + 1}", cookie)
    assert refused(strict.ws, "http://127.0.0.1", cookie)
    assert refused(strict.ws, f"https://127.0.0.1:{port}", cookie)
    assert refused(strict.ws, "https://evil.example", cookie)
    assert refused(strict.ws, "null", cookie)
    assert refused(strict.ws, None, cookie)  # a cookie without an Origin: refused, as before

    # MYTHLINE_WS_ALLOWED_ORIGINS: any subdomain, with the same scheme and port.
    assert (welcome(strict.ws, "https://app.example.org", cookie))["user"]["username"] == "ada"
    assert refused(strict.ws, "http://app.example.org", cookie)
    assert refused(strict.ws, "https://app.example.org:8443", cookie)
    assert refused(strict.ws, "https://app.example.org.evil.example", cookie)


def test_bearer_sockets_need_no_origin(strict, make_user):
    token = token_issue(user=make_user("bot"))
    frame = welcome(strict.ws, headers={"Authorization": f"Bearer {token}"})
    assert frame["type"] == "welcome" and frame["user"]["username"] == "bot"


def test_a_wildcard_in_allowed_hosts_does_not_switch_the_check_off(wildcard, make_user):
    cookie = {"Cookie": sign_in(wildcard, make_user("ada"))}
    port = wildcard.port
    assert refused(wildcard.ws, "https://evil.example", cookie)
    assert refused(wildcard.ws, f"http://evil.example:{port}", cookie)
    assert refused(wildcard.ws, f"http://127.0.0.1:{port + 1}", cookie)
    assert refused(wildcard.ws, f"https://127.0.0.1:{port}", cookie)
    # Same origin: the page's own host and port, as the socket's Host header says.
    assert (welcome(wildcard.ws, f"http://127.0.0.1:{port}", cookie))["user"]["username"] == "ada"
    local = f"ws://localhost:{port}/ws/"
    assert (welcome(local, f"http://localhost:{port}", cookie))["user"]["username"] == "ada"
    assert refused(local, f"http://127.0.0.1:{port}", cookie)
