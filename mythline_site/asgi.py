"""ASGI entry point: HTTP (Django, including SSE), the `/ws/` WebSocket, and MCP at `/mcp`.

Each server process also runs its housekeeping loop (idle-channel archiving) in the background,
started on the first connection it serves: Daphne implements no lifespan events.
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mythline_site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agents.mcp import mcp_http_app  # noqa: E402
from messaging.routing import websocket_urlpatterns  # noqa: E402
from mythline_site.housekeeping import HousekeepingMiddleware  # noqa: E402
from mythline_site.ws_auth import BearerOrSessionMiddleware  # noqa: E402

ws_routes = list(websocket_urlpatterns)
if os.environ.get("MYTHLINE_BENCH_BASELINE") == "1":  # bench/fanout.py only: the Channels-tutorial floor
    from django.urls import path  # noqa: E402

    from bench.baseline_consumer import BaselineChatConsumer  # noqa: E402

    ws_routes.append(path("bench/ws/", BaselineChatConsumer.as_asgi()))

MCP_PATHS = ("/mcp", "/mcp/")


async def http_app(scope, receive, send):
    """MCP's streamable HTTP transport at /mcp (agents/mcp.py: its own bearer auth); Django for the rest."""
    if scope["path"] in MCP_PATHS:
        return await mcp_http_app(scope, receive, send)
    return await django_asgi_app(scope, receive, send)


application = HousekeepingMiddleware(ProtocolTypeRouter({
    "http": http_app,
    "websocket": BearerOrSessionMiddleware(URLRouter(ws_routes)),
}))
