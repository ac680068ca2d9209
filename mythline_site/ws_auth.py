"""Who is on the other end of a WebSocket.

`Authorization: Bearer <token>` authenticates any client. Otherwise the browser's session cookie
does, but only from an allowed origin: a cookie rides along on cross-site requests, so a
cookie-authenticated socket from a foreign origin is refused at the handshake (cross-site
WebSocket hijacking). A socket with neither is accepted and closed with 4401 by the consumer.

An allowed origin matches in scheme, host and port (docs/protocol.md 6.1): the socket's own origin
(`ws://H` is `http://H`, `wss://H` is `https://H`, H being its Host header, itself in
ALLOWED_HOSTS), or one of CSRF_TRUSTED_ORIGINS and MYTHLINE_WS_ALLOWED_ORIGINS (`*.example.org`
there: any subdomain, same scheme and port). ALLOWED_HOSTS alone never allows a foreign origin, so
a wildcard there does not switch the check off.
"""
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from accounts.authentication import bearer_from_header, user_for_token
from mythline_site.origins import DEFAULT_PORTS, parse_allowed, parse_origin  # noqa: F401 - re-exported


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _matches(origin: tuple[str, str, int], allowed: str) -> bool:
    pattern = parse_allowed(allowed)  # settings.py refuses an entry that is not an origin at start
    if pattern is None:
        return False
    scheme, host, port, wildcard = pattern
    if not wildcard:
        return origin == (scheme, host, port)
    return (origin[0], origin[2]) == (scheme, port) and (origin[1] == host or origin[1].endswith("." + host))


def own_origin(scope) -> tuple[str, str, int] | None:
    """The socket's own origin: its scheme (wss also when SECURE_PROXY_SSL_HEADER says so) and its
    Host header, if that host is in ALLOWED_HOSTS (as Django requires of an HTTP request)."""
    host = (_header(scope, b"host") or "").strip().lower()
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    secure = scope.get("scheme") in ("wss", "https")
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header
        wire = name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
        forwarded = _header(scope, wire)
        if forwarded is not None:
            secure = forwarded.split(",", 1)[0].strip() == value
    return parse_origin(f"{'https' if secure else 'http'}://{host}")


def origin_allowed(origin: str | None, scope=None) -> bool:
    parsed = parse_origin(origin) if origin else None
    if parsed is None:
        return False
    if scope is not None and parsed == own_origin(scope):
        return True
    return any(_matches(parsed, allowed)
               for allowed in (*settings.CSRF_TRUSTED_ORIGINS, *settings.MYTHLINE_WS_ALLOWED_ORIGINS))


class BearerOrSessionMiddleware:
    def __init__(self, inner):
        self.inner = inner
        self.session_stack = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        header = _header(scope, b"authorization")
        if header is not None:
            raw = bearer_from_header(header)
            user = await database_sync_to_async(user_for_token)(raw) if raw else None
            scope = {**scope, "user": user or AnonymousUser(), "auth": "bearer"}
            return await self.inner(scope, receive, send)
        if _header(scope, b"cookie") and not origin_allowed(_header(scope, b"origin"), scope):
            # Refuse before the handshake completes: the browser sees a failed connection.
            await send({"type": "websocket.close", "code": 4403})
            return None
        return await self.session_stack({**scope, "auth": "session"}, receive, send)
