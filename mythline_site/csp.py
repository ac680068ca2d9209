"""Content-Security-Policy for the browser pages.

Every HTML response gets a policy without `unsafe-inline` or `unsafe-eval` scripts: scripts come
only from our own origin (the esbuild bundle under /static/), page configuration travels in
`json_script` blocks (`type="application/json"`, data that never runs), and a message that smuggles
markup past the renderer still cannot execute anything. Styles allow 'unsafe-inline' because
CodeMirror injects its theme as <style> elements and sets style attributes (others' cursor colours).

The Django admin and the Swagger page of /api/docs ship inline scripts of their own: they keep
Django's defaults and get no policy here.
"""
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.utils.deprecation import MiddlewareMixin

EXEMPT_PREFIXES = ("/admin/", "/api/docs")


def build_policy(host: str | None) -> str:
    # Browsers since CSP level 3 accept same-origin ws:/wss: under 'self'; naming them keeps older
    # ones (and proxies that rewrite the scheme) working.
    sockets = f" ws://{host} wss://{host}" if host else ""
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src 'self'{sockets}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds `Content-Security-Policy` to HTML responses (see the module docstring)."""

    def process_response(self, request, response):
        if "Content-Security-Policy" in response:
            return response
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        if request.path.startswith(getattr(settings, "MYTHLINE_CSP_EXEMPT", EXEMPT_PREFIXES)):
            return response
        try:
            host = request.get_host()
        except DisallowedHost:
            host = None
        response["Content-Security-Policy"] = build_policy(host)
        return response
