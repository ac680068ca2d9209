"""Which account pages exist, and the limits on those that check a password or send mail:
only sign-in, sign-up and sign-out are routed under /accounts/; the admin's password change counts
wrong old passwords like failed sign-ins; password reset is off unless MYTHLINE_PASSWORD_RESET=1."""
import html
import importlib.util
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from tests.live import ROOT

PAIR_LOCKED = "Too many failed sign-ins for this account from your network address; try again in 15 minutes."


def page(response) -> str:
    return html.unescape(response.content.decode())


@pytest.mark.parametrize("path", [
    "/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/done/",
    "/accounts/reset/MQ/set-password/", "/accounts/password_change/", "/accounts/password_change/done/",
])
def test_unused_auth_pages_are_not_there(client, path, db):
    assert client.get(path).status_code == 404
    assert client.post(path, {"email": "someone@example.com"}).status_code == 404


def test_a_password_reset_request_sends_nothing_by_default(client, make_user):
    make_user("demo", email="demo@example.com")
    assert client.post("/accounts/password_reset/", {"email": "demo@example.com"}).status_code == 404
    assert mail.outbox == []


def test_the_admin_password_change_counts_wrong_old_passwords(client, db):
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    client.force_login(boss)
    new = {"new_password1": "a-new-long-phrase-7", "new_password2": "a-new-long-phrase-7"}
    for n in range(5):
        response = client.post("/admin/password_change/", {"old_password": f"guess-{n}", **new},
                               REMOTE_ADDR="203.0.113.7")
        assert response.status_code == 200 and "Your old password was entered incorrectly" in page(response)
    # The sixth, even with the right old password, is refused; the password is unchanged.
    response = client.post("/admin/password_change/", {"old_password": "pw-boss-123456", **new},
                           REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 900
    assert PAIR_LOCKED in page(response)
    boss.refresh_from_db()
    assert boss.check_password("pw-boss-123456")
    # They share the sign-in's count: signing in as boss from that address is refused too.
    response = client.post("/accounts/login/", {"username": "boss", "password": "pw-boss-123456"},
                           REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429
    # From another address the owner changes the password; a right old password is no failure.
    response = client.post("/admin/password_change/", {"old_password": "pw-boss-123456", **new},
                           REMOTE_ADDR="198.51.100.1")
    assert response.status_code == 302 and response["Location"] == "/admin/password_change/done/"
    boss.refresh_from_db()
    assert boss.check_password("a-new-long-phrase-7")


def test_the_admin_password_change_is_for_staff_only(client, make_user):
    client.force_login(make_user("demo"))
    response = client.get("/admin/password_change/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.fixture
def reset_enabled(settings):
    """The URLconf as a server started with MYTHLINE_PASSWORD_RESET=1 builds it."""
    settings.MYTHLINE_PASSWORD_RESET = True
    name = "mythline_site.urls_with_password_reset"
    spec = importlib.util.spec_from_file_location(name, ROOT / "mythline_site" / "urls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    settings.ROOT_URLCONF = name
    yield
    sys.modules.pop(name, None)


def test_enabled_password_reset_is_limited_per_address_and_per_email(client, make_user, reset_enabled):
    make_user("demo", email="demo@example.com")
    for n in range(3):
        response = client.post("/accounts/password_reset/", {"email": "demo@example.com"}, REMOTE_ADDR=f"203.0.113.{n}")
        assert response.status_code == 302, n
    assert len(mail.outbox) == 3 and "/accounts/reset/" in mail.outbox[0].body
    # A fourth mail to the same address is refused, from any client address.
    response = client.post("/accounts/password_reset/", {"email": "Demo@example.com"}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 429 and 3590 <= int(response["Retry-After"]) <= 3600
    assert "Too many password-reset requests for this e-mail address; try again in 60 minutes." in page(response)
    assert len(mail.outbox) == 3
    # One client address may ask five times an hour, whatever the e-mail address.
    for n in range(5):
        assert client.post("/accounts/password_reset/", {"email": f"nobody{n}@example.com"},
                           REMOTE_ADDR="198.51.100.1").status_code == 302
    response = client.post("/accounts/password_reset/", {"email": "other@example.com"}, REMOTE_ADDR="198.51.100.1")
    assert response.status_code == 429
    assert "Too many password-reset requests from your network address" in page(response)


def test_signing_up_gives_the_browser_its_device_cookie(client, db):
    from accounts.limits import DEVICE_COOKIE, account_key, device_nonce

    good = {"username": "newbie", "password1": "a-long-pass-phrase-1", "password2": "a-long-pass-phrase-1"}
    response = client.post("/accounts/signup/", good)
    assert response.status_code == 302 and response.cookies[DEVICE_COOKIE]["httponly"]

    class Request:
        COOKIES = {DEVICE_COOKIE: response.cookies[DEVICE_COOKIE].value}

    assert device_nonce(Request, account_key("newbie")) and device_nonce(Request, account_key("other")) is None
