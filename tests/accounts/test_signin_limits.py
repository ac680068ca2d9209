"""Sign-in and sign-up limits (accounts/limits.py), through the real pages: the site's sign-in, the
admin's sign-in and sign-up. Each test has its own rate-key prefix (tests/conftest.py)."""
import html
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.limits import DEVICE_COOKIE, client_address
from mythline_site.throttling import WindowCounter
from tests.live import DEFAULT_TEST_REDIS, redis_available

PAIR_LOCKED = "Too many failed sign-ins for this account from your network address; try again in 15 minutes."
ACCOUNT_LOCKED = "Too many sign-in attempts for this account; try again in 15 minutes."
ADDRESS_LOCKED = "Too many sign-in attempts from your network address; try again in 15 minutes."
WRONG = "Please enter a correct username and password"


def sign_in(client, username, password, *, address="203.0.113.7", path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def page(response) -> str:
    return html.unescape(response.content.decode())


def signed_in_as(client):
    user = client.get("/accounts/logout/").wsgi_request.user
    return user.username if user.is_authenticated else None


@pytest.fixture
def demo(make_user):
    return make_user("demo")  # password: pw-demo-123456


def test_a_guesser_locks_only_themselves_out(client, demo):
    for attempt in range(5):
        response = sign_in(client, "demo", f"guess-{attempt}")
        assert response.status_code == 200 and WRONG in page(response)
    # The sixth from the guesser's address is refused, whatever the spelling of the username, and
    # so is the right password from there (else guessing would go on).
    for username in ("demo", "Demo", " demo "):
        for password in ("guess-5", "pw-demo-123456"):
            response = sign_in(client, username, password)
            assert response.status_code == 429
            assert 890 <= int(response["Retry-After"]) <= 900
            assert PAIR_LOCKED in page(response) and WRONG not in page(response)
    assert signed_in_as(client) is None
    # The owner, at another address, signs in as usual: no cookie, no earlier sign-in needed.
    owner = Client()
    response = sign_in(owner, "demo", "pw-demo-123456", address="198.51.100.1")
    assert response.status_code == 302 and signed_in_as(owner) == "demo"
    # The guesser may still try other accounts (up to the per-address limit).
    get_user_model().objects.create_user("ally", password="pw-ally-123456")
    assert sign_in(client, "ally", "pw-ally-123456").status_code == 302


def test_a_guesser_cannot_lock_the_admin_out(client, db):
    """The reviewer's case: five wrong passwords for `admin` on the site's page from one address;
    the real admin signs in on the admin's page from another."""
    get_user_model().objects.create_superuser("admin", "admin@example.com", "correct-horse-9")
    for attempt in range(5):
        assert sign_in(client, "admin", f"x{attempt}").status_code == 200
    assert sign_in(client, "admin", "correct-horse-9", path="/admin/login/").status_code == 429
    admin = Client()
    response = sign_in(admin, "admin", "correct-horse-9", address="198.51.100.1", path="/admin/login/")
    assert response.status_code == 302 and admin.get("/admin/").status_code == 200


def test_the_account_ceiling_stops_guessing_from_many_addresses_but_not_a_device_cookie(client, demo, settings):
    settings.MYTHLINE_SIGNIN_LIMITS = {**settings.MYTHLINE_SIGNIN_LIMITS, "account": (12, 900)}
    # The owner signed in on this browser before: it holds the account's device cookie.
    owner = Client()
    response = sign_in(owner, "demo", "pw-demo-123456", address="192.0.2.1")
    assert response.status_code == 302
    cookie = response.cookies[DEVICE_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    assert int(cookie["max-age"]) == 365 * 24 * 3600
    owner.post("/accounts/logout/")
    # Guesses from six addresses, two each: under every per-address limit, at the account's ceiling.
    for n in range(12):
        assert sign_in(client, "demo", f"guess-{n}", address=f"203.0.113.{n // 2}").status_code == 200, n
    for address in ("203.0.113.99", "192.0.2.1"):  # a new address, even the owner's, without the cookie
        response = sign_in(client, "demo", "pw-demo-123456", address=address)
        assert response.status_code == 429 and ACCOUNT_LOCKED in page(response)
        assert 0 < int(response["Retry-After"]) <= 900
    # The owner's browser passes the ceiling, from anywhere.
    response = sign_in(owner, "demo", "pw-demo-123456", address="198.51.100.7")
    assert response.status_code == 302 and signed_in_as(owner) == "demo"
    # A cookie is no pass for another account, nor when tampered with.
    get_user_model().objects.create_user("ally", password="pw-ally-123456")
    ally = Client()
    assert sign_in(ally, "ally", "pw-ally-123456", address="192.0.2.9").status_code == 302
    stranger = Client()
    stranger.cookies[DEVICE_COOKIE] = ally.cookies[DEVICE_COOKIE].value
    assert sign_in(stranger, "demo", "pw-demo-123456", address="192.0.2.10").status_code == 429
    stranger.cookies[DEVICE_COOKIE] = owner.cookies[DEVICE_COOKIE].value[:-2] + "xx"
    assert sign_in(stranger, "demo", "pw-demo-123456", address="192.0.2.11").status_code == 429


def test_a_stolen_device_cookie_is_no_unlimited_pass(client, demo, settings):
    settings.MYTHLINE_SIGNIN_LIMITS = {**settings.MYTHLINE_SIGNIN_LIMITS, "account": (3, 900)}
    owner = Client()
    assert sign_in(owner, "demo", "pw-demo-123456", address="192.0.2.1").status_code == 302
    client.cookies[DEVICE_COOKIE] = owner.cookies[DEVICE_COOKIE].value  # the thief's copy
    # Its failures count against the cookie (5 a window, like an address), not the account...
    for n in range(5):
        assert sign_in(client, "demo", f"guess-{n}", address=f"203.0.113.{n}").status_code == 200, n
    # ...then it is just a browser without one: the account's ceiling (3) applies.
    for n in range(3):
        assert sign_in(client, "demo", f"guess-x{n}", address=f"203.0.114.{n}").status_code == 200, n
    response = sign_in(client, "demo", "guess-y", address="203.0.115.1")
    assert response.status_code == 429 and ACCOUNT_LOCKED in page(response)


def test_the_device_cookie_is_secure_under_https(client, demo, settings):
    settings.MYTHLINE_HTTPS = True
    response = client.post("/accounts/login/", {"username": "demo", "password": "pw-demo-123456"}, secure=True)
    assert response.status_code == 302 and response.cookies[DEVICE_COOKIE]["secure"]


def test_successful_sign_ins_do_not_count_as_failures(client, demo):
    for attempt in range(4):
        assert sign_in(client, "demo", f"guess-{attempt}").status_code == 200
    for _ in range(3):
        assert sign_in(client, "demo", "pw-demo-123456").status_code == 302
        client.post("/accounts/logout/")
    assert sign_in(client, "demo", "guess-4").status_code == 200  # the fifth failure
    response = sign_in(client, "demo", "pw-demo-123456")
    assert response.status_code == 429 and PAIR_LOCKED in page(response)


def test_the_per_address_limit_counts_across_usernames(client, demo):
    for n in range(20):
        response = sign_in(client, f"someone-{n}", "guess", address="203.0.113.50")
        assert response.status_code == 200, n
    response = sign_in(client, "demo", "pw-demo-123456", address="203.0.113.50")
    assert response.status_code == 429 and ADDRESS_LOCKED in page(response)
    assert 0 < int(response["Retry-After"]) <= 900
    # Another address signs in; demo's own account was never locked.
    assert sign_in(client, "demo", "pw-demo-123456", address="203.0.113.51").status_code == 302


def test_ipv6_clients_count_per_64_block():
    class Request:
        def __init__(self, address):
            self.META = {"REMOTE_ADDR": address}

    assert client_address(Request("2001:db8:1:2::1")) == client_address(Request("2001:db8:1:2:ffff::9"))
    assert client_address(Request("2001:db8:1:2::1")) != client_address(Request("2001:db8:1:3::1"))
    assert client_address(Request("::ffff:192.0.2.5")) == client_address(Request("192.0.2.5")) == "192.0.2.5"
    assert client_address(Request("")) == "unknown"


def test_the_admin_sign_in_is_limited_with_the_same_budget(client, db):
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    for attempt in range(3):  # three on the site's page...
        assert sign_in(client, "boss", f"guess-{attempt}").status_code == 200
    for attempt in range(2):  # ...and two on the admin's: five failures for the account from here
        response = sign_in(client, "boss", f"guess-a{attempt}", path="/admin/login/")
        assert response.status_code == 200 and "Please enter the correct username and password" in page(response)
    response = sign_in(client, "boss", "pw-boss-123456", path="/admin/login/")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert PAIR_LOCKED in page(response)
    assert client.get("/admin/").status_code == 302  # not signed in


def test_admin_sign_in_alone_locks_after_five_failures(client, db):
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    for attempt in range(5):
        assert sign_in(client, "boss", f"guess-{attempt}", path="/admin/login/").status_code == 200
    response = sign_in(client, "boss", "pw-boss-123456", path="/admin/login/")
    assert response.status_code == 429 and "Retry-After" in response
    assert client.get("/admin/").status_code == 302


def test_a_lock_ends_with_its_window(client, demo, settings):
    settings.MYTHLINE_SIGNIN_LIMITS = {**settings.MYTHLINE_SIGNIN_LIMITS, "pair": (2, 2)}
    for attempt in range(2):
        assert sign_in(client, "demo", f"guess-{attempt}").status_code == 200
    locked_at = time.monotonic()
    response = sign_in(client, "demo", "pw-demo-123456")
    assert response.status_code == 429 and int(response["Retry-After"]) <= 2
    # Attempts while locked do not extend the lock: keep trying until it lets the right one in.
    while (response := sign_in(client, "demo", "pw-demo-123456")).status_code == 429:
        assert time.monotonic() - locked_at < 4, "the lock outlasted its window"
        time.sleep(0.05)
    assert response.status_code == 302 and signed_in_as(client) == "demo"


def test_sign_ups_are_limited_per_address(client, db):
    for n in range(10):  # attempts count, valid or not
        response = client.post("/accounts/signup/", {"username": f"mass{n}", "password1": "x",
                                                     "password2": "y"}, REMOTE_ADDR="203.0.113.9")
        assert response.status_code == 200
    good = {"username": "latecomer", "password1": "a-long-pass-phrase-1", "password2": "a-long-pass-phrase-1"}
    response = client.post("/accounts/signup/", good, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 429 and 3590 <= int(response["Retry-After"]) <= 3600
    assert "Too many sign-ups from your network address; try again in 60 minutes." in page(response)
    assert not get_user_model().objects.filter(username="latecomer").exists()
    # Another address may sign up.
    assert client.post("/accounts/signup/", good, REMOTE_ADDR="203.0.113.10").status_code == 302


def _hit_in_parallel(counter, key, n=24):
    results, barrier = [], threading.Barrier(n)

    def worker():
        barrier.wait()
        results.append(counter.hit(key))

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_parallel_attempts_cannot_pass_the_limit():
    results = _hit_in_parallel(WindowCounter("signin-account", 5, 60), "parallel")
    assert sorted(results)[:6] == [0, 0, 0, 0, 0, pytest.approx(60, abs=1)]
    assert results.count(0) == 5


def test_parallel_attempts_cannot_pass_the_limit_on_redis(settings):
    from tests.conftest import require

    require(redis_available(), "Redis")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": DEFAULT_TEST_REDIS, "KEY_PREFIX": "mythline-test"}}
    counter = WindowCounter("signin-account", 5, 60)
    results = _hit_in_parallel(counter, "parallel")
    assert results.count(0) == 5 and all(55 <= r <= 61 for r in results if r), results
    assert 55 <= counter.retry_after("parallel") <= 61
    # A success gives its attempt back.
    assert [counter.hit("refunded") for _ in range(5)] == [0] * 5
    assert counter.retry_after("refunded") > 0
    counter.refund("refunded")
    assert counter.retry_after("refunded") == 0


def test_the_limits_and_their_variables_are_documented(settings):
    from tests.live import ROOT

    deploy = (ROOT / "docs" / "deploy.md").read_text()
    section = deploy.split("### Sign-in limits", 1)[1].split("\n#", 1)[0]
    for name in ("MYTHLINE_SIGNIN_ACCOUNT_ADDRESS_FAILURES", "MYTHLINE_SIGNIN_ACCOUNT_FAILURES",
                 "MYTHLINE_SIGNIN_ADDRESS_FAILURES", "MYTHLINE_PASSWORD_RESET",
                 "MYTHLINE_SIGNIN_WINDOW_SECONDS", "MYTHLINE_SIGNUPS_PER_ADDRESS", "MYTHLINE_SIGNUP_WINDOW_SECONDS",
                 "FORWARDED_ALLOW_IPS"):
        assert f"`{name}`" in section, name
    assert settings.MYTHLINE_SIGNIN_LIMITS == {"pair": (5, 900), "address": (20, 900), "account": (100, 900),
                                               "signup": (10, 3600), "reset": (5, 3600), "reset-email": (3, 3600)}
    for default in ("5 in 15 minutes", "20 in 15 minutes", "100 in 15 minutes", "10 an hour", "5 an hour",
                    "3 an hour"):
        assert default in section, default
    assert f"`{DEVICE_COOKIE}`" in section
