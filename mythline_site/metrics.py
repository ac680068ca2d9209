"""Prometheus metrics, served at /metrics in the text format (one process's view; scrape each).

Only to clients at an address in MYTHLINE_METRICS_ALLOW (default: loopback) or presenting
`Authorization: Bearer <MYTHLINE_METRICS_TOKEN>`; anyone else gets a plain 404, as if there were
nothing here (docs/deploy.md, "Metrics and health").
"""
import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

SOCKETS_OPEN = Gauge("mythline_websockets_open", "Open WebSocket connections")
SSE_STREAMS_OPEN = Gauge("mythline_sse_streams_open", "Open Server-Sent Events streams")
SUBSCRIPTIONS = Gauge("mythline_subscriptions", "Live topic subscriptions (WebSocket and SSE)")
MESSAGES_PUBLISHED = Counter("mythline_messages_published_total", "Messages stored and published", ["protocol"])
MESSAGES_DELIVERED = Counter("mythline_messages_delivered_total", "Message frames sent to clients")
GAPS_BACKFILLED = Counter("mythline_gaps_backfilled_total", "Live gaps filled from the database")
SLOW_CLIENTS_CLOSED = Counter("mythline_slow_clients_closed_total", "Sockets closed for not reading")
ERRORS = Counter("mythline_errors_total", "Error frames and responses sent, by code", ["code", "protocol"])


def _address_allowed(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.MYTHLINE_METRICS_ALLOW)


def _token_presented(request) -> bool:
    expected = settings.MYTHLINE_METRICS_TOKEN
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode())


def metrics_allowed(request) -> bool:
    return _token_presented(request) or _address_allowed(request.META.get("REMOTE_ADDR"))


def metrics_view(request):
    if not metrics_allowed(request):
        raise Http404
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
