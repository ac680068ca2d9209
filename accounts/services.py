"""Writes for accounts: tokens are issued, rotated and revoked here only; users deactivated here.

Revoking a token or deactivating a user also ends that token's or user's open sockets and SSE
streams (messaging/rights.py), in every server process.
"""
import secrets

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, User, hash_token
from audit import services as audit
from messaging import rights
from mythline_site.errors import Conflict

TOKEN_PREFIX = "myth_"


@transaction.atomic
def token_issue(*, user: User, label: str = "", replace_label: bool = False, by=None) -> str:
    """Create a token for `user` and return its raw value (never stored).

    With `replace_label`, older active tokens with the same label are revoked first, so a
    command run again (say, `make run`) does not pile up live tokens (one audit row, naming them).
    """
    replaced = _revoke_active(user=user, label=label) if replace_label and label else []
    raw, token = _issue(user=user, label=label)
    audit.record(audit.TOKEN_ISSUED, by=by, subject=user, after=audit.token_fields(token),
                 extra={"replaced_token_ids": replaced} if replaced else None)
    return raw


def _issue(*, user: User, label: str) -> tuple[str, ApiToken]:
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 32 random bytes = 256 bits of entropy
    return raw, ApiToken.objects.create(user=user, key_hash=hash_token(raw), prefix=raw[:12], label=label)


@transaction.atomic
def token_revoke(*, token: ApiToken, by=None) -> bool:
    """Revoke `token`; whether this call did (False: it was revoked already, maybe meanwhile)."""
    if not _revoke(token):
        return False
    audit.record(audit.TOKEN_REVOKED, by=by, subject=token.user, before=audit.token_fields(token))
    return True


def _revoke(token: ApiToken) -> bool:
    """Revoke `token` if it is active; whether this call revoked it.

    The stored row decides, not the object (it may be stale): the UPDATE is guarded by
    `revoked_at IS NULL`, so of two callers at once exactly one revokes, records and tells the
    token's open sockets; the other finds it revoked (and `token` then shows when)."""
    now = timezone.now()
    if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        token.refresh_from_db(fields=["revoked_at"])
        return False
    token.revoked_at = now
    rights.tokens_revoked(token.user_id, [token.pk])
    return True


@transaction.atomic
def token_revoke_all(*, user: User, label: str | None = None, by=None) -> int:
    ids = _revoke_active(user=user, label=label)
    if ids:
        audit.record(audit.TOKENS_REVOKED_ALL, by=by, subject=user,
                     extra={"token_ids": ids, **({"label": label} if label is not None else {})})
    return len(ids)


def _revoke_active(*, user: User, label: str | None = None) -> list[int]:
    """Revoke the user's active tokens (with `label`, if given); their ids."""
    qs = ApiToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True)
    if label is not None:
        qs = qs.filter(label=label)
    ids = sorted(qs.values_list("pk", flat=True))
    ApiToken.objects.filter(pk__in=ids).update(revoked_at=timezone.now())
    rights.tokens_revoked(user.pk, ids)
    return ids


@transaction.atomic
def user_set_active(*, user: User, active: bool, by=None) -> User:
    """Deactivate (or reactivate) a user. A deactivated user's sockets and streams close (4401)."""
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])
        if not active:
            rights.user_deactivated(user.pk)
        audit.record(audit.USER_REACTIVATED if active else audit.USER_DEACTIVATED, by=by, subject=user)
    return user


@transaction.atomic
def token_rotate(*, token: ApiToken, by=None) -> str:
    """Revoke `token` and issue a fresh one with the same label (one audit row for both).

    A token already revoked (by someone else meanwhile, too) is not rotated: Conflict, and no
    new token."""
    if not _revoke(token):
        raise Conflict(f"Token {token.prefix}… is revoked; it was not rotated.",
                       details={"token": "already revoked"})
    raw, fresh = _issue(user=token.user, label=token.label)
    audit.record(audit.TOKEN_ROTATED, by=by, subject=token.user, before=audit.token_fields(token),
                 after=audit.token_fields(fresh))
    return raw

