"""Who is on the other end of a WebSocket.

`Authorization: Bearer <token>` authenticates any client. Otherwise the browser's session cookie
does, but only from an allowed origin: a cookie rides along on cross-site requests, so a
cookie-authenticated socket from a foreign origin is refused at the handshake (cross-site
WebSocket hijacking). A socket with neither is accepted and closed with 4401 by the consumer.
"""
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host

from accounts.authentication import bearer_from_header, user_for_token


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def origin_allowed(origin: str | None) -> bool:
    if not origin:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    host = urlsplit(origin).hostname
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


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
        if _header(scope, b"cookie") and not origin_allowed(_header(scope, b"origin")):
            # Refuse before the handshake completes: the browser sees a failed connection.
            await send({"type": "websocket.close", "code": 4403})
            return None
        return await self.session_stack({**scope, "auth": "session"}, receive, send)
