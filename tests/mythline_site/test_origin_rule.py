"""The WebSocket origin rule (mythline_site/ws_auth.py) case by case, without a server; the live
sockets are in test_ws_origin.py."""
import pytest

from mythline_site.ws_auth import origin_allowed


def scope(host, scheme="ws", **headers):
    return {"type": "websocket", "scheme": scheme,
            "headers": [(b"host", host.encode())] + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}


@pytest.fixture(autouse=True)
def _site(settings):
    settings.ALLOWED_HOSTS = ["*"]  # the check must not lean on it
    settings.CSRF_TRUSTED_ORIGINS = ["https://mythline.example.org", "https://*.writers.example"]
    settings.MYTHLINE_WS_ALLOWED_ORIGINS = ["http://localhost:5173"]


@pytest.mark.parametrize("origin,allowed", [
    ("https://mythline.example.org", True),
    ("https://mythline.example.org:443", True),  # the default port, spelled out
    ("HTTPS://Mythline.Example.org", True),
    ("http://mythline.example.org", False),
    ("https://mythline.example.org:8443", False),
    ("https://evil.example", False),
    ("https://mythline.example.org.evil.example", False),
    ("https://mythline.example.org@evil.example", False),
    ("https://a.writers.example", True),
    ("https://writers.example", True),
    ("https://a.writers.example:444", False),
    ("http://a.writers.example", False),
    ("https://awriters.example", False),
    ("http://localhost:5173", True),
    ("http://localhost:5174", False),
    ("null", False),
    ("", False),
    (None, False),
    ("file://", False),
    ("https://mythline.example.org:99999", False),
])
def test_configured_origins_match_exactly(origin, allowed):
    assert origin_allowed(origin, scope("elsewhere.example:9000")) is allowed


def test_own_origin_follows_scheme_host_and_port(settings):
    assert origin_allowed("http://chat.example:8000", scope("chat.example:8000"))
    assert not origin_allowed("https://chat.example:8000", scope("chat.example:8000"))
    assert not origin_allowed("http://chat.example", scope("chat.example:8000"))
    assert origin_allowed("https://chat.example", scope("chat.example", scheme="wss"))
    assert not origin_allowed("http://chat.example", scope("chat.example", scheme="wss"))
    # Behind a TLS proxy: X-Forwarded-Proto counts only when Django is told to trust it.
    assert not origin_allowed("https://chat.example", scope("chat.example", x_forwarded_proto="https"))
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert origin_allowed("https://chat.example", scope("chat.example", x_forwarded_proto="https"))
    assert not origin_allowed("http://chat.example", scope("chat.example", x_forwarded_proto="https"))
    # The Host must itself be allowed.
    settings.ALLOWED_HOSTS = ["mythline.example.org"]
    assert not origin_allowed("http://chat.example:8000", scope("chat.example:8000"))
    assert origin_allowed("http://mythline.example.org", scope("mythline.example.org"))


@pytest.mark.parametrize("entry", ["app.example.org", "https://app.example.org/room", "wss://app.example.org",
                                   "https://*", "https://a.*.example.org", "https://user@app.example.org", ""])
def test_an_entry_that_is_not_an_origin_is_refused(entry):
    from django.core.exceptions import ImproperlyConfigured

    from mythline_site.origins import check_allowed_origins

    with pytest.raises(ImproperlyConfigured, match="MYTHLINE_WS_ALLOWED_ORIGINS: .* is not an origin"):
        check_allowed_origins("MYTHLINE_WS_ALLOWED_ORIGINS", ["https://ok.example.org", entry])
    check_allowed_origins("MYTHLINE_WS_ALLOWED_ORIGINS", ["https://ok.example.org", "https://*.example.org:8443"])
