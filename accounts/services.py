"""Writes for accounts: tokens are issued, rotated and revoked here only; users deactivated here.

Revoking a token or deactivating a user also ends that token's or user's open sockets and SSE
streams (messaging/rights.py), in every server process.
"""
import secrets

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, User, hash_token
from messaging import rights

TOKEN_PREFIX = "myth_"


@transaction.atomic
def token_issue(*, user: User, label: str = "", replace_label: bool = False) -> str:
    """Create a token for `user` and return its raw value (never stored).

    With `replace_label`, older active tokens with the same label are revoked first, so a
    command run again (say, `make run`) does not pile up live tokens.
    """
    if replace_label and label:
        token_revoke_all(user=user, label=label)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 32 random bytes = 256 bits of entropy
    ApiToken.objects.create(user=user, key_hash=hash_token(raw), prefix=raw[:12], label=label)
    return raw


@transaction.atomic
def token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        rights.tokens_revoked(token.user_id, [token.pk])


@transaction.atomic
def token_revoke_all(*, user: User, label: str | None = None) -> int:
    qs = ApiToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True)
    if label is not None:
        qs = qs.filter(label=label)
    ids = list(qs.values_list("pk", flat=True))
    count = ApiToken.objects.filter(pk__in=ids).update(revoked_at=timezone.now())
    rights.tokens_revoked(user.pk, ids)
    return count


@transaction.atomic
def user_set_active(*, user: User, active: bool) -> User:
    """Deactivate (or reactivate) a user. A deactivated user's sockets and streams close (4401)."""
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])
        if not active:
            rights.user_deactivated(user.pk)
    return user


@transaction.atomic
def token_rotate(*, token: ApiToken) -> str:
    """Revoke `token` and issue a fresh one with the same label."""
    token_revoke(token=token)
    return token_issue(user=token.user, label=token.label)
