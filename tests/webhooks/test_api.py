"""REST of an agent's webhook: agents only, each its own; the URL checks (scheme, credentials,
length, private addresses); the secret shown once; rotate, delete, the delivery log."""
import base64

import pytest

from tests.conftest import error_code
from tests.webhooks.conftest import post, register, verify
from webhooks.models import Delivery, Webhook
from webhooks.worker import deliver_due

HOOK = "/api/agents/me/webhook"


def test_humans_and_anonymous_are_refused(world):
    for user in (world["alice"], world["bob"]):
        client = world["api"](user)
        for method, path, body in (("get", HOOK, None), ("put", HOOK, {"url": "https://93.184.216.34/h"}),
                                   ("delete", HOOK, None), ("post", f"{HOOK}/rotate", None),
                                   ("get", f"{HOOK}/deliveries", None)):
            r = getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)
            assert r.status_code == 403 and error_code(r) == "forbidden", (user, method, path)
    r = world["api"](None).get(HOOK)
    assert r.status_code == 401 and error_code(r) == "unauthenticated"
    assert Webhook.objects.count() == 0


def test_register_show_rotate_delete(world, receiver):
    client = world["scout_api"]
    r = client.get(HOOK)
    assert r.status_code == 404 and error_code(r) == "not_found"
    created = client.put(HOOK, {"url": receiver.url}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"url", "status", "disabled_reason", "failures", "created_at", "previous_secret_expires_at",
                         "secret"}
    assert body["previous_secret_expires_at"] is None
    assert (body["url"], body["status"], body["failures"], body["disabled_reason"]) == (receiver.url, "active", 0, None)
    assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) == 24
    shown = client.get(HOOK).json()
    assert "secret" not in shown and shown["url"] == receiver.url  # shown once
    changed = client.put(HOOK, {"url": receiver.url + "/v2"}, format="json")
    assert changed.status_code == 200 and "secret" not in changed.json() and changed.json()["url"].endswith("/v2")

    rotated = client.post(f"{HOOK}/rotate", {"grace_seconds": 0}, format="json")  # as after a leak
    assert rotated.status_code == 200 and set(rotated.json()) == {"secret", "previous_secret_expires_at"}
    assert rotated.json()["previous_secret_expires_at"] is None
    secret = rotated.json()["secret"]
    assert secret != body["secret"]
    post(world["alice"], "inbox.scout", "Signed with the new secret.")
    deliver_due()
    [got] = receiver.requests
    assert got.path == "/hooks/mythline/v2"
    assert verify(secret, got.headers, got.body) and not verify(body["secret"], got.headers, got.body)

    log = client.get(f"{HOOK}/deliveries").json()["results"]
    [entry] = log
    assert set(entry) == {"id", "message_id", "event", "status", "attempts", "last_status_code", "last_error",
                          "next_attempt_at", "delivered_at", "created_at"}
    assert (entry["event"], entry["status"], entry["attempts"], entry["last_status_code"], entry["next_attempt_at"]) == (
        "message.created", "delivered", 1, 200, None)
    assert client.get(f"{HOOK}/deliveries?limit=x").status_code == 400

    assert client.delete(HOOK).status_code == 204
    assert client.get(HOOK).status_code == 404 and Delivery.objects.count() == 0
    assert client.delete(HOOK).status_code == 204  # idempotent
    assert client.post(f"{HOOK}/rotate").status_code == 404


def test_after_a_rotation_the_old_secret_still_signs_until_its_grace_ends(world, receiver):
    """A receiver switching secrets accepts every delivery: for the grace (a day by default) each
    attempt carries two signatures, the new secret's first; then only the new one."""
    from datetime import timedelta

    from django.utils import timezone

    client = world["scout_api"]
    old = register(client, receiver.url)["secret"]
    rotated = client.post(f"{HOOK}/rotate")  # no body: the default grace
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    until = rotated.json()["previous_secret_expires_at"]
    assert abs((timezone.datetime.fromisoformat(until.replace("Z", "+00:00")) - timezone.now())
               - timedelta(days=1)) < timedelta(minutes=1)
    assert client.get(HOOK).json()["previous_secret_expires_at"] == until
    post(world["alice"], "inbox.scout", "Signed twice.")
    deliver_due()
    [got] = receiver.requests
    assert len(got.headers["webhook-signature"].split()) == 2
    assert verify(new, got.headers, got.body) and verify(old, got.headers, got.body)
    assert got.headers["webhook-signature"].split()[0] == next(
        s for s in got.headers["webhook-signature"].split() if verify(new, {**got.headers, "webhook-signature": s},
                                                                     got.body))

    # Rotating again within the grace: the secret just replaced is the one that still signs.
    newer = client.post(f"{HOOK}/rotate", {"grace_seconds": 60}, format="json").json()["secret"]
    post(world["alice"], "inbox.scout", "Signed by the two latest.")
    deliver_due()
    got = receiver.requests[-1]
    assert verify(newer, got.headers, got.body) and verify(new, got.headers, got.body)
    assert not verify(old, got.headers, got.body)

    # Past the grace, one signature again, and the webhook shows no previous secret.
    Webhook.objects.filter(agent=world["scout"]).update(previous_secret_expires_at=timezone.now())
    post(world["alice"], "inbox.scout", "Signed once.")
    deliver_due()
    got = receiver.requests[-1]
    assert len(got.headers["webhook-signature"].split()) == 1 and verify(newer, got.headers, got.body)
    assert not verify(new, got.headers, got.body)
    assert client.get(HOOK).json()["previous_secret_expires_at"] is None


@pytest.mark.parametrize("body", [{"grace_seconds": -1}, {"grace_seconds": 7 * 86400 + 1}, {"grace_seconds": "60"},
                                  {"grace_seconds": True}, {"grace_seconds": 1.5}, {"grace_seconds": None},
                                  {"grace": 60}, [60]])
def test_a_bad_rotation_is_refused_and_the_secret_kept(world, receiver, body):
    client = world["scout_api"]
    secret = register(client, receiver.url)["secret"]
    r = client.post(f"{HOOK}/rotate", body, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid", r.content
    webhook = Webhook.objects.get(agent=world["scout"])
    assert (webhook.secret, webhook.previous_secret) == (secret, "")


def test_each_agent_sees_only_its_own(world, make_agent, api, receiver):
    register(world["scout_api"], receiver.url)
    other = api(make_agent("lookout", stories=[world["story"]]))
    assert other.get(HOOK).status_code == 404
    assert other.get(f"{HOOK}/deliveries").status_code == 404
    post(world["alice"], "inbox.scout", "For scout.")
    register(other, receiver.url + "/lookout")
    assert other.get(f"{HOOK}/deliveries").json()["results"] == []


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://example.com/hook", "https://"),
    ("javascript:alert(1)", "https://"),
    ("file:///etc/passwd", "https://"),
    ("https://user:pw@93.184.216.34/hook", "credentials"),
    ("https://93.184.216.34/" + "a" * 2000, "2000"),
    ("https:///nohost", "host"),
    ("https://93.184.216.34:99999/", "valid URL"),
    ("https://93.184.216.34/a b", "spaces"),
    ("", "https://"),
    (42, "https://"),
])
def test_bad_urls_are_refused(world, url, why):
    r = world["scout_api"].put(HOOK, {"url": url}, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid", r.content
    assert why in r.json()["error"]["details"]["url"]
    assert Webhook.objects.count() == 0


def test_unknown_fields_and_a_missing_url_are_refused(world):
    client = world["scout_api"]
    r = client.put(HOOK, {"url": "https://93.184.216.34/h", "secret": "whsec_mine"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["details"] == {"secret": "unknown field"}
    r = client.put(HOOK, {}, format="json")
    assert r.status_code == 400 and r.json()["error"]["details"] == {"url": "required"}


def test_plain_http_needs_the_setting(world, settings):
    settings.MYTHLINE_WEBHOOK_ALLOW_INSECURE = False
    r = world["scout_api"].put(HOOK, {"url": "http://93.184.216.34/hook"}, format="json")
    assert r.status_code == 400 and "https://" in r.json()["error"]["details"]["url"]
    assert world["scout_api"].put(HOOK, {"url": "https://93.184.216.34/hook"}, format="json").status_code == 201


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "[::1]", "[fe80::1]", "[fc00::1]", "[::ffff:127.0.0.1]", "2130706433", "224.0.0.1", "240.0.0.1",
    "[64:ff9b::7f00:1]",  # NAT64: 127.0.0.1 through a gateway
])
def test_private_addresses_are_refused_without_the_setting(world, settings, host):
    settings.MYTHLINE_WEBHOOK_ALLOW_PRIVATE = False
    r = world["scout_api"].put(HOOK, {"url": f"https://{host}/hook"}, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid", (host, r.content)
    why = r.json()["error"]["details"]["url"]
    assert "refused" in why
    assert "127.0.0.1" not in why or "127.0.0.1" in host  # the answer does not map the private network
    assert Webhook.objects.count() == 0
