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


def test_healthz_is_503_when_a_part_is_down(client, monkeypatch):
    from presence import store

    # A real Redis client pointed at a port where nothing listens, as when Redis is down.
    dead = store.RedisPresenceStore("redis://127.0.0.1:1/0", "test")
    monkeypatch.setattr(store, "get_presence_store", lambda: dead)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["presence"]["ok"] is False


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
    r = client.get("/metrics")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
    body = r.content.decode()
    for name in ("mythline_websockets_open", "mythline_subscriptions", "mythline_messages_published_total",
                 "mythline_messages_delivered_total", "mythline_gaps_backfilled_total",
                 "mythline_slow_clients_closed_total", "mythline_errors_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in body, name
