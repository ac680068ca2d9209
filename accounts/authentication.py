"""`Authorization: Bearer <token>` for REST, SSE and WebSocket handshakes."""
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken, User, hash_token
from mythline_site.rawrows import Columns, load_row, table

# Writing last_used_at on every request would turn each read into a write; once a minute is
# enough to tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def user_for_token(raw: str):
    """The active user behind a raw token, or None. Shared by REST and the ASGI auth middleware."""
    if not raw:
        return None
    token = _token_with_user(hash_token(raw))
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    user = token.user
    user.api_token_id = token.pk  # sockets and streams close when this token is revoked
    return user


_TOKEN, _USER = Columns(ApiToken, "t"), Columns(User, "u")
_TOKEN_USER = ApiToken._meta.get_field("user")
_token_sql: dict[str, str] = {}


def _token_with_user(key_hash: str) -> ApiToken | None:
    """The live token with this hash and its user, in one hand-written query: every API request
    runs it, and building it with the ORM cost more than the database took to answer it."""
    sql = _token_sql.get(connection.vendor)
    if sql is None:
        qn = connection.ops.quote_name
        sql = _token_sql[connection.vendor] = (
            f"SELECT {_TOKEN.select(qn)}, {_USER.select(qn)} FROM {table(ApiToken, qn)} t"
            f" INNER JOIN {table(User, qn)} u ON u.{qn('id')} = t.{qn('user_id')}"
            f" WHERE t.{qn('key_hash')} = %s AND t.{qn('revoked_at')} IS NULL")
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    (token, user), _ = load_row(row, [_TOKEN, _USER], connection)
    _TOKEN_USER.set_cached_value(token, user)
    return token


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
