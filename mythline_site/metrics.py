"""Prometheus metrics, served at /metrics in the text format (one process's view; scrape each)."""
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

SOCKETS_OPEN = Gauge("mythline_websockets_open", "Open WebSocket connections")
SSE_STREAMS_OPEN = Gauge("mythline_sse_streams_open", "Open Server-Sent Events streams")
SUBSCRIPTIONS = Gauge("mythline_subscriptions", "Live topic subscriptions (WebSocket and SSE)")
MESSAGES_PUBLISHED = Counter("mythline_messages_published_total", "Messages stored and published", ["protocol"])
MESSAGES_DELIVERED = Counter("mythline_messages_delivered_total", "Message frames sent to clients")
GAPS_BACKFILLED = Counter("mythline_gaps_backfilled_total", "Live gaps filled from the database")
SLOW_CLIENTS_CLOSED = Counter("mythline_slow_clients_closed_total", "Sockets closed for not reading")
ERRORS = Counter("mythline_errors_total", "Error frames and responses sent, by code", ["code", "protocol"])


def metrics_view(request):
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
