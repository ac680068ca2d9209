"""Browser origins as settings spell them (`https://example.org:8443`, `https://*.example.org`):
parsed here without Django, so settings.py can refuse a bad entry at start and
mythline_site/ws_auth.py can match against the good ones."""
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as `https://example.org:8443`; None for anything
    else (`null`, other schemes, paths, user info, a bad port)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None
            or parts.password is not None or parts.path not in ("", "/") or parts.query or parts.fragment):
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme]


def parse_allowed(allowed: str) -> tuple[str, str, int, bool] | None:
    """An allowed-origin entry: (scheme, host, port, wildcard), `*.` meaning any subdomain of host
    (and host itself); None if the entry is not an origin."""
    wildcard = "://*." in allowed
    pattern = parse_origin(allowed.replace("://*.", "://wildcard.", 1))
    if pattern is None or (not wildcard and "*" in allowed):
        return None
    scheme, host, port = pattern
    return scheme, host.removeprefix("wildcard.") if wildcard else host, port, wildcard


def check_allowed_origins(name: str, values) -> None:
    """Raise ImproperlyConfigured naming the first entry of `values` that is not an origin."""
    from django.core.exceptions import ImproperlyConfigured

    for value in values:
        if parse_allowed(value) is None:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not an origin: write scheme://host[:port] with http or https "
                "and nothing after the host (for instance https://app.example.org or https://*.example.org)")
