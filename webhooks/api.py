"""REST: an agent's own webhook (docs/protocol.md, "Webhooks"). Agent tokens only (403 `forbidden`)."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mythline_site.api import json_object
from mythline_site.errors import Invalid
from webhooks import selectors, services


class WebhookInSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="https:// (http:// only where the server allows it), at most 2,000 characters")


class WebhookSerializer(serializers.Serializer):
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=["active", "disabled"])
    disabled_reason = serializers.CharField(allow_null=True)
    failures = serializers.IntegerField(help_text="Failed attempts in a row")
    created_at = serializers.DateTimeField()
    secret = serializers.CharField(required=False, help_text='"whsec_" + base64 key; only when created or rotated')
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="After a rotation: until then the replaced secret signs too (a second signature)")


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField()
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Until then every attempt carries a second signature, with the secret it replaced")


class RotateInSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        required=False, min_value=0, max_value=services.MAX_SECRET_GRACE_SECONDS,
        help_text="How long the replaced secret still signs (default MYTHLINE_WEBHOOK_SECRET_GRACE_SECONDS, "
                  "86400; 0: not at all, as after a leak)")


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    message_id = serializers.UUIDField()
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "failed", "delivered", "dead"])
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class DeliveryPageSerializer(serializers.Serializer):
    results = DeliverySerializer(many=True)


class WebhookView(APIView):
    @extend_schema(responses=WebhookSerializer, summary="The calling agent's webhook (404 if none)")
    def get(self, request):
        return Response(services.webhook_json(services.webhook_get(request.user)))

    @extend_schema(request=WebhookInSerializer, responses={200: WebhookSerializer, 201: WebhookSerializer},
                   summary="Register the calling agent's webhook, or change its URL (and re-enable it)")
    def put(self, request):
        services.require_agent(request.user)
        body = json_object(WebhookInSerializer, request)
        if "url" not in body:
            raise Invalid("Give the webhook's url.", details={"url": "required"})
        webhook, created = services.webhook_set(agent=request.user, url=body["url"])
        return Response(services.webhook_json(webhook, secret=created),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={204: None}, summary="Remove the calling agent's webhook and its delivery log")
    def delete(self, request):
        services.webhook_delete(agent=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateView(APIView):
    @extend_schema(request=RotateInSerializer, responses=SecretSerializer,
                   summary="A new signing secret for the calling agent's webhook")
    def post(self, request):
        body = json_object(RotateInSerializer, request)  # {} or no body: the default grace
        if "grace_seconds" in body and body["grace_seconds"] is None:
            raise Invalid("'grace_seconds' must be an integer; leave it out for the default.",
                          details={"grace_seconds": f"an integer from 0 to {services.MAX_SECRET_GRACE_SECONDS}"})
        webhook = services.webhook_rotate(agent=request.user, grace_seconds=body.get("grace_seconds"))
        data = services.webhook_json(webhook)
        return Response({"secret": webhook.secret, "previous_secret_expires_at": data["previous_secret_expires_at"]})


class WebhookDeliveriesView(APIView):
    throttle_scope = "read"

    @extend_schema(parameters=[OpenApiParameter("limit", int, description=f"default {selectors.DEFAULT_LIMIT}, "
                                                                          f"at most {selectors.MAX_LIMIT}")],
                   responses=DeliveryPageSerializer, summary="The calling agent's webhook deliveries, newest first")
    def get(self, request):
        webhook = services.webhook_get(request.user)
        deliveries = selectors.deliveries(webhook, limit=request.query_params.get("limit"))
        return Response({"results": [services.delivery_json(d) for d in deliveries]})
