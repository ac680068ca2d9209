"""HTTP middleware: refuse oversize bodies before any work, and keep /api/ errors in one envelope.

Both are sync-and-async capable (MiddlewareMixin), so async views (SSE) stay async end to end.
"""
from django.conf import settings
from django.utils.deprecation import MiddlewareMixin

from mythline_site.errors import error_response

_STATUS_CODES = {400: "invalid", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                 405: "invalid", 413: "payload_too_large", 429: "rate_limited"}


def _is_api(request):
    return request.path.startswith("/api/") or request.path == "/api"


class RequestSizeLimitMiddleware(MiddlewareMixin):
    """413 `payload_too_large` from the Content-Length header alone: nothing is parsed or stored."""

    def process_request(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit and length > limit:
            return error_response("payload_too_large",
                                  f"The request body is {length} bytes; the limit is {limit}.", 413,
                                  details={"limit": limit})
        return None


class ApiErrorEnvelopeMiddleware(MiddlewareMixin):
    """Errors raised outside DRF views (unknown /api/ paths, Django's 404/500) get the JSON envelope."""

    def process_response(self, request, response):
        if response.status_code < 400 or not _is_api(request):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        code = _STATUS_CODES.get(status, "internal" if status >= 500 else "invalid")
        message = {404: "Not found.", 405: "Method not allowed."}.get(status, "The request failed.")
        if status >= 500:
            message = "Internal server error; nothing was changed by this request."
        return error_response(code, message, status)


class RejectNulMiddleware(MiddlewareMixin):
    """A NUL character in the path or query string is never a valid slug, name or parameter, and
    PostgreSQL refuses it in any text query (a 500): answer 400 `invalid` up front."""

    def process_request(self, request):
        if not _is_api(request):
            return None
        if "\x00" in request.path or "\x00" in request.META.get("QUERY_STRING", "") or any(
                "\x00" in value for value in request.GET.values()):
            return error_response("invalid", "The URL contains a NUL character.", 400)
        return None
