"""Cross-cutting HTTP behaviour: error envelope everywhere, health, schema, browser sign-in pages."""
import pytest

from tests.conftest import error_code

pytestmark = pytest.mark.django_db


def test_healthz_reports_each_part(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert all(body[part]["ok"] for part in ("database", "channel_layer", "presence"))


def test_healthz_is_503_when_a_part_is_down(client, monkeypatch, caplog):
    from presence import store

    # A real Redis client pointed at a port where nothing listens, as when Redis is down.
    dead = store.RedisPresenceStore("redis://127.0.0.1:1/0", "test")
    monkeypatch.setattr(store, "get_presence_store", lambda: dead)
    with caplog.at_level("ERROR", logger="mythline.health"):
        r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "down"
    # Anyone may call /healthz: it names no host, port or exception, the log does.
    assert r.json()["presence"] == {"ok": False, "error": "unavailable"}
    assert "127.0.0.1:1" not in r.content.decode() and "Error" not in r.content.decode()
    assert any("presence is down" in rec.getMessage() and "127.0.0.1:1" in rec.exc_text
               for rec in caplog.records if rec.exc_text)


@pytest.mark.parametrize("method,path,status,code", [
    ("get", "/api/stories", 401, "unauthenticated"),
    ("get", "/api/no-such-endpoint", 404, "not_found"),
    ("get", "/api/stories/", 404, "not_found"),  # no trailing slashes
])
def test_error_envelope_for_non_view_errors(client, method, path, status, code):
    r = getattr(client, method)(path)
    assert r.status_code == status and error_code(r) == code


def test_method_not_allowed_and_unsupported_media_type(make_user, api):
    client = api(make_user("alice"))
    r = client.delete("/api/stories")
    assert r.status_code == 405 and error_code(r) == "invalid"
    r = client.post("/api/stories", "slug=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and error_code(r) == "invalid"


def test_session_writes_need_csrf(make_user):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(make_user("alice"))
    r = browser.post("/api/stories", {"slug": "x", "title": "X"}, content_type="application/json")
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert browser.get("/api/stories").status_code == 200


def test_schema_and_docs(make_user, api, client):
    r = api(make_user("alice")).get("/api/schema", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in ("/api/stories", "/api/stories/{story}/channels/{channel}/messages", "/api/activity",
                 "/api/agents/me/status", "/api/stories/{story}/route"):
        assert path in paths
    assert client.get("/api/docs").status_code == 200


def test_signup_signin_signout(client, django_user_model):
    r = client.post("/accounts/signup/", {"username": "newbie", "password1": "a-long-pass-phrase-1",
                                          "password2": "a-long-pass-phrase-1", "display_name": "New Bie"})
    assert r.status_code == 302 and django_user_model.objects.get(username="newbie").display_name == "New Bie"
    assert client.get("/").status_code == 200
    r = client.get("/accounts/logout/")
    assert r.status_code == 200 and b"Sign out" in r.content
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302  # back to sign-in
    assert client.post("/accounts/login/", {"username": "newbie", "password": "a-long-pass-phrase-1"}).status_code == 302
    assert client.get("/").status_code == 200


def test_metrics_in_prometheus_text_format(client):
    r = client.get("/metrics")  # the test client is 127.0.0.1: loopback is allowed by default
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
    body = r.content.decode()
    for name in ("mythline_websockets_open", "mythline_subscriptions", "mythline_messages_published_total",
                 "mythline_messages_delivered_total", "mythline_gaps_backfilled_total",
                 "mythline_slow_clients_closed_total", "mythline_errors_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in body, name


def test_metrics_only_for_allowed_addresses_or_the_token(client, settings):
    """Anyone else gets a plain 404 (MYTHLINE_METRICS_ALLOW, MYTHLINE_METRICS_TOKEN)."""
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200
    # Without a configured token no Authorization header opens it, not even an empty bearer.
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer ").status_code == 404

    settings.MYTHLINE_METRICS_TOKEN = "scrape-3f1c9a7e"
    settings.MYTHLINE_METRICS_ALLOW = ["10.0.0.0/8"]
    outside = dict(REMOTE_ADDR="203.0.113.7")
    assert client.get("/metrics", **outside).status_code == 404
    assert client.get("/metrics", **outside, HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", **outside, HTTP_AUTHORIZATION="Basic scrape-3f1c9a7e").status_code == 404
    r = client.get("/metrics", **outside, HTTP_AUTHORIZATION="Bearer scrape-3f1c9a7e")
    assert r.status_code == 200 and "mythline_websockets_open" in r.content.decode()
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404  # no longer in the list
