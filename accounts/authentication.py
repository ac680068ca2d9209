"""`Authorization: Bearer <token>` for REST, SSE and WebSocket handshakes."""
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken, hash_token

# Writing last_used_at on every request would turn each read into a write; once a minute is
# enough to tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def user_for_token(raw: str):
    """The active user behind a raw token, or None. Shared by REST and the ASGI auth middleware."""
    if not raw:
        return None
    # Every API request runs this: no ORDER BY (the key is unique), one joined query.
    token = next(iter(ApiToken.objects.select_related("user").order_by()
                      .filter(key_hash=hash_token(raw), revoked_at__isnull=True)[:1]), None)
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def bearer_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, raw = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return raw.strip()


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        raw = bearer_from_header(header)
        if raw is None:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        user = user_for_token(raw)
        if user is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        return (user, None)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
