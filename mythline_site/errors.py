"""One error vocabulary for every protocol (REST, WebSocket, SSE, MCP).

Services raise `MythlineError` subclasses; the REST exception handler, the WebSocket consumer and
the MCP tools each render them in their own envelope with the same `code`.
"""
import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf

# A backing store that is down or restarting: the API answers 503 `unavailable` (other transports
# may catch these too and send `Unavailable()`). Redis (rate limits, the channel layer) is optional:
# the embedded setup runs without it.
try:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    STORE_DOWN_ERRORS = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover
    STORE_DOWN_ERRORS = (OperationalError, InterfaceError)

logger = logging.getLogger("mythline.errors")


class MythlineError(Exception):
    code = "invalid"
    status = 400
    default_message = "The request is invalid."

    def __init__(self, message=None, *, details=None, headers=None):
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def as_body(self):
        return error_body(self.code, self.message, self.details)


class Invalid(MythlineError):
    code, status, default_message = "invalid", 400, "The request is invalid."


class Unauthenticated(MythlineError):
    code, status, default_message = "unauthenticated", 401, "Sign in or send 'Authorization: Bearer <token>'."


class Forbidden(MythlineError):
    code, status, default_message = "forbidden", 403, "You are not allowed to do that."


class NotFound(MythlineError):
    code, status, default_message = "not_found", 404, "Not found."


class Conflict(MythlineError):
    code, status, default_message = "conflict", 409, "This conflicts with what is stored."


class Archived(MythlineError):
    code, status, default_message = "archived", 409, "This channel is archived and read-only."


class PayloadTooLarge(MythlineError):
    code, status, default_message = "payload_too_large", 413, "The payload is too large."


class RateLimited(MythlineError):
    code, status, default_message = "rate_limited", 429, "Too many requests; retry after the given delay."

    def __init__(self, message=None, *, retry_after: float, details=None):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, details={"retry_after": self.retry_after, **(details or {})},
                         headers={"Retry-After": str(self.retry_after)})


# Seconds a client is told to wait after a 503 `unavailable` (the database or Redis is down).
DB_RETRY_AFTER = 2


class Unavailable(MythlineError):
    """503: the database or Redis could not be reached (down, restarting, or no pooled database
    connection within the pool's timeout). Retry after `Retry-After` seconds: a write that got this
    answer was rolled back, except in the rare case of a connection lost during COMMIT, which a
    retry with the same message id or Idempotency-Key resolves (200 and the stored message)."""
    code, status = "unavailable", 503
    default_message = "The service is briefly unavailable (its database or Redis); retry after the given delay."

    def __init__(self, message=None, *, retry_after: float = DB_RETRY_AFTER, details=None):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, details={"retry_after": self.retry_after, **(details or {})},
                         headers={"Retry-After": str(self.retry_after)})


class LoopDetected(MythlineError):
    code, status, default_message = "loop_detected", 422, "This looks like an agent loop; nothing was stored."


class NoRoute(MythlineError):
    code, status, default_message = "no_route", 422, "No agent in this story handles that msg_type."


def one_of(values) -> str:
    """The `details` text for a field with a fixed set of values: `must be one of: editor, viewer`."""
    return f"must be one of: {', '.join(str(v) for v in values)}"


def error_body(code, message, details=None):
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(code, message, status, details=None, headers=None):
    response = JsonResponse(error_body(code, message, details), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten_drf_detail(detail):
    """DRF's ErrorDetail tree -> plain JSON (strings, lists, dicts)."""
    if isinstance(detail, dict):
        return {str(k): _flatten_drf_detail(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten_drf_detail(v) for v in detail]
    return str(detail)


def _from_drf(exc):
    """Map DRF and Django exceptions onto the SPEC's codes: (status, code, message, details, headers)."""
    if isinstance(exc, MythlineError):
        return exc.status, exc.code, exc.message, exc.details, exc.headers
    if isinstance(exc, STORE_DOWN_ERRORS):
        # The database or Redis is down or restarting, or the pool had no connection in time:
        # transient. Logged (the cause is never sent); the transaction was rolled back, a broken
        # database connection is discarded by the pool (CONN_HEALTH_CHECKS), and the next request
        # reconnects (redis-py reconnects by itself).
        logger.error("unavailable: %s: %s", type(exc).__name__, exc)
        exc = Unavailable()
        return exc.status, exc.code, exc.message, exc.details, exc.headers
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return 401, "unauthenticated", str(exc.detail), None, {"WWW-Authenticate": 'Bearer realm="api"'}
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        message = str(getattr(exc, "detail", "")) or Forbidden.default_message
        return 403, "forbidden", message, None, {}
    if isinstance(exc, (drf.NotFound, Http404)):
        return 404, "not_found", "Not found.", None, {}
    if isinstance(exc, drf.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        return 429, "rate_limited", "Too many requests.", {"retry_after": wait}, {"Retry-After": str(wait)}
    if isinstance(exc, RequestDataTooBig):
        return 413, "payload_too_large", "The request body is too large.", None, {}
    if isinstance(exc, drf.ParseError):
        return 400, "invalid", f"Malformed JSON: {exc.detail}", None, {}
    if isinstance(exc, drf.ValidationError):
        details = _flatten_drf_detail(exc.detail)
        return 400, "invalid", "The request is invalid.", details, {}
    if isinstance(exc, drf.MethodNotAllowed):
        return 405, "invalid", str(exc.detail), None, {}
    if isinstance(exc, drf.UnsupportedMediaType):
        return 415, "invalid", "Send JSON with 'Content-Type: application/json'.", None, {}
    if isinstance(exc, drf.NotAcceptable):
        return 406, "invalid", str(exc.detail), None, {}
    if isinstance(exc, drf.APIException):
        return exc.status_code, "invalid", str(exc.detail), None, {}
    return None


def api_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every API error leaves in the SPEC's envelope."""
    mapped = _from_drf(exc)
    if mapped is None:
        return None  # a real bug: let Django log it and answer 500 (the middleware wraps it)
    # Imported here: rest_framework.views reads the DRF settings, which import this module.
    from rest_framework.response import Response
    from rest_framework.views import set_rollback

    status, code, message, details, headers = mapped
    set_rollback()
    response = Response(error_body(code, message, details), status=status)
    for name, value in headers.items():
        response[name] = value
    return response
