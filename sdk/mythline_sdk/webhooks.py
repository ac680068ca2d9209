"""Verify a webhook delivery from Mythline: the Standard Webhooks scheme (standardwebhooks.com).

A delivery is a POST whose headers say who signed what and when:

    webhook-id:        the message id (deduplicate on it: delivery is at least once)
    webhook-timestamp: unix seconds when it was signed
    webhook-signature: "v1,<base64 HMAC-SHA256>" (several, separated by spaces, while a secret rotates)

The signature is HMAC-SHA256, keyed with the secret's bytes (the base64 after "whsec_"), of
`f"{id}.{timestamp}.{body}"`, the body exactly as received. `verify` checks it in constant time and
refuses a timestamp further than `tolerance` seconds from now (a replayed old delivery), then answers
the parsed body. Pure: no network, no Django; usable in any receiver:

    from mythline_sdk.webhooks import WebhookVerificationError, verify

    try:
        event = verify(secret, request.headers, request.body)
    except WebhookVerificationError as exc:
        return 400, str(exc)
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Mapping

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds, either way (Standard Webhooks' five minutes)

__all__ = ["WebhookVerificationError", "verify", "sign", "DEFAULT_TOLERANCE"]


class WebhookVerificationError(ValueError):
    """The delivery cannot be trusted; `reason` says why in one word: "headers" (one missing or
    malformed), "timestamp" (too old or too far ahead), "signature" (none matches), "secret" (not
    a whsec_ secret), "body" (signed, but not JSON)."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key of a secret: the base64 after "whsec_" (raw bytes are used as they are)."""
    if isinstance(secret, bytes):
        return secret
    if not isinstance(secret, str) or not secret:
        raise WebhookVerificationError("the webhook secret is empty", reason="secret")
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the webhook secret is not 'whsec_' followed by base64",
                                       reason="secret") from None
    if not key:
        raise WebhookVerificationError("the webhook secret is empty", reason="secret")
    return key


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `webhook-signature` value for a body: "v1,<base64 HMAC-SHA256>" (for a receiver's own
    tests; `verify` is what a receiver calls)."""
    raw = body.encode() if isinstance(body, str) else body
    content = f"{msg_id}.{timestamp}.".encode() + raw
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _header(headers: Mapping[str, Any], name: str) -> str:
    value = None
    try:
        value = headers.get(name)  # httpx, Starlette, Django's request.headers: case-insensitive
    except AttributeError:
        pass
    if value is None:
        value = next((v for k, v in dict(headers).items() if str(k).lower() == name), None)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value.strip():
        raise WebhookVerificationError(f"missing header {name}", reason="headers")
    return value.strip()


def verify(secret: str | bytes, headers: Mapping[str, Any], body: bytes | str, tolerance: float = DEFAULT_TOLERANCE,
           *, now: float | None = None) -> Any:
    """Check a delivery's signature and timestamp; answer its body parsed as JSON.

    `headers`: the request's headers (any mapping; names in any case). `body`: the raw body, as
    received (bytes, or str as UTF-8): re-encoding parsed JSON would change the bytes signed.
    Raises `WebhookVerificationError` (a ValueError, with `reason`) when a header is missing, the
    timestamp is more than `tolerance` seconds away from `now` (default: the current time), or no
    signature of the header matches (compared in constant time)."""
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp is not unix seconds: {stamp[:40]!r}",
                                       reason="headers") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is too old ({int(current - timestamp)}s, "
                                       f"tolerance {tolerance:g}s)", reason="timestamp")
    if timestamp > current + tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is too far in the future ({int(timestamp - current)}s, "
                                       f"tolerance {tolerance:g}s)", reason="timestamp")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = sign(secret, msg_id, timestamp, raw).partition(",")[2].encode()
    matched = False
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue  # another scheme (or a malformed entry): not ours to check
        # Every entry is compared, match or not: the time taken says nothing about which matched.
        matched |= hmac.compare_digest(value.encode(), expected)
    if not matched:
        raise WebhookVerificationError("no webhook-signature matches the body (wrong secret, or a body "
                                       "changed after signing)", reason="signature")
    try:
        return json.loads(raw)
    except ValueError:
        raise WebhookVerificationError("the signed body is not JSON", reason="body") from None
