"""The REST routes of webhooks: full paths under api/, spliced into mythline_site/urls.py's api_urls
(so the access matrices see each one)."""
from django.urls import path

from webhooks import api

urlpatterns = [
    path("api/agents/me/webhook", api.WebhookView.as_view(), name="agent-webhook"),
    path("api/agents/me/webhook/rotate", api.WebhookRotateView.as_view(), name="agent-webhook-rotate"),
    path("api/agents/me/webhook/deliveries", api.WebhookDeliveriesView.as_view(), name="agent-webhook-deliveries"),
]
