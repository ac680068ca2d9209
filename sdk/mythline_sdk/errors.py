"""Errors the SDK raises: one class per error code of the API (SPEC 5), plus transport failures.

`retryable` tells whether trying the same request again later can succeed: network errors, 429
and 5xx are retried by the client itself (with backoff; a write only when it is safe to repeat,
see `AsyncMythlineClient.request`); when the retries run out the last error
is raised with `retryable = True` so a caller (the listener) may try again later. Everything else
(`invalid`, `forbidden`, `conflict`, `loop_detected`, ...) is final: sending it again would get the
same answer.
"""
from __future__ import annotations

from typing import Any


class MythlineError(Exception):
    """Base class. `status` is the HTTP status (None for transport errors), `code` the API code,
    `method` and `url` the request that failed (when there was one)."""

    code: str = "error"
    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 details: Any = None, retry_after: float | None = None, attempts: int = 1,
                 url: str | None = None, method: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code
        self.details = details
        self.retry_after = retry_after
        self.attempts = attempts
        self.url = url
        self.method = method

    def __str__(self) -> str:
        where = f"{self.status} " if self.status else ""
        request = f" ({self.method + ' ' if self.method else ''}{self.url})" if self.url else ""
        return f"{where}{self.code}: {self.message}{request}"


class TransportError(MythlineError):
    """The server could not be reached, or the connection broke before an answer came. `url` is
    the address that failed (e.g. a wrong port or scheme shows there)."""
    code = "transport"
    retryable = True


class ApiError(MythlineError):
    """An error answer from the API (any status without a more specific class)."""


class InvalidRequest(ApiError):
    code = "invalid"


class Unauthenticated(ApiError):
    code = "unauthenticated"


class Forbidden(ApiError):
    code = "forbidden"


class NotFound(ApiError):
    code = "not_found"


class Conflict(ApiError):
    """409 `conflict`: an id or Idempotency-Key already used for other content; a document edit
    that overlaps a later change (`details` carries the current revision)."""
    code = "conflict"


class Archived(ApiError):
    code = "archived"


class PayloadTooLarge(ApiError):
    code = "payload_too_large"


class LoopDetected(ApiError):
    """422 `loop_detected`: a loop-prevention policy refused the post. Never retried: the same post
    would be refused again. Post something new, or later."""
    code = "loop_detected"


class NoRoute(ApiError):
    code = "no_route"


class RateLimited(ApiError):
    """429 `rate_limited`; `retry_after` is the server's `Retry-After` in seconds."""
    code = "rate_limited"
    retryable = True


class ServerError(ApiError):
    """5xx: the server failed, or a proxy in front of it did, possibly after the server committed
    the request: the client retries only requests that are safe to repeat (an Idempotency-Key)."""
    code = "internal"
    retryable = True


class SubscriptionError(MythlineError):
    """The server refused a subscription (no such channel, not allowed): retrying cannot help."""


_BY_CODE = {cls.code: cls for cls in (InvalidRequest, Unauthenticated, Forbidden, NotFound, Conflict, Archived,
                                      PayloadTooLarge, LoopDetected, NoRoute, RateLimited)}


def error_from_response(status: int, body: Any, headers=None) -> ApiError:
    """Build the error for an API answer with the `{"error": {code, message, details}}` envelope."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = (error.get("message") if isinstance(error, dict) else None) or f"HTTP {status}"
    details = error.get("details") if isinstance(error, dict) else None
    retry_after = parse_retry_after((headers or {}).get("retry-after"))
    if retry_after is None and isinstance(details, dict) and isinstance(details.get("retry_after"), (int, float)):
        retry_after = float(details["retry_after"])
    if status >= 500:
        cls = ServerError
    elif status == 429:
        cls = RateLimited
    else:
        cls = _BY_CODE.get(code, ApiError)
    return cls(message, status=status, code=code or cls.code, details=details, retry_after=retry_after)


def parse_retry_after(value) -> float | None:
    """`Retry-After` in seconds (the API sends an integer; an HTTP date is read too)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    import datetime as dt
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())
