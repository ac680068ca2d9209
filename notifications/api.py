"""REST: the caller's own notifications (docs/protocol.md, "Notifications")."""
from urllib.parse import urlencode

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.serializers import SenderSerializer
from mythline_site.api import json_object
from mythline_site.errors import Invalid
from notifications import selectors, services

MAX_IDS = 500


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="mention, reply, decision or webhook.disabled")
    story = serializers.CharField(allow_null=True)
    channel = serializers.CharField(allow_null=True)
    message_id = serializers.UUIDField(allow_null=True)
    actor = SenderSerializer(allow_null=True)
    excerpt = serializers.CharField(help_text="At most 200 characters of the message's text")
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class NotificationPageSerializer(serializers.Serializer):
    results = NotificationSerializer(many=True)
    unread = serializers.IntegerField(help_text="How many of your notifications are unread")
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, or null")


class MarkReadInSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=MAX_IDS)
    all = serializers.BooleanField(required=False)


class UnreadSerializer(serializers.Serializer):
    unread = serializers.IntegerField()


class NotificationListView(APIView):
    throttle_scope = "read"

    @extend_schema(parameters=[
        OpenApiParameter("unread", int, description="1: only unread ones"),
        OpenApiParameter("before", int, description="Only notifications with an id below this (the next page)"),
        OpenApiParameter("limit", int, description=f"default {selectors.DEFAULT_LIMIT}, at most {selectors.MAX_LIMIT}"),
    ], responses=NotificationPageSerializer, summary="Your notifications, newest first, with the unread count")
    def get(self, request):
        params = request.query_params
        unread_only = selectors.parse_flag(params.get("unread"), "unread")
        limit = selectors.parse_positive(params.get("limit"), "limit", default=selectors.DEFAULT_LIMIT,
                                         maximum=selectors.MAX_LIMIT)
        page = selectors.page(request.user, unread_only=unread_only,
                              before=selectors.parse_positive(params.get("before"), "before"), limit=limit)
        after = page.pop("next_before")
        page["next"] = None
        if after is not None:
            query = {**({"unread": "1"} if unread_only else {}), "before": after, "limit": limit}
            page["next"] = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
        return Response(page)


def parse_mark_read(body) -> dict:
    """`{"ids": [...]}` or `{"all": true}`, nothing else (REST and MCP)."""
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object.")
    unknown = sorted(set(body) - {"ids", "all"})
    if unknown:
        raise Invalid("The body is invalid.", details={name: "unknown field" for name in unknown})
    ids, everything = body.get("ids"), body.get("all")
    if everything is not None and not isinstance(everything, bool):
        raise Invalid("'all' must be true or false.", details={"all": "must be a boolean"})
    if ids is not None and (not isinstance(ids, list) or len(ids) > MAX_IDS
                            or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)):
        raise Invalid(f"'ids' must be a list of at most {MAX_IDS} notification ids.",
                      details={"ids": f"a list of at most {MAX_IDS} positive integers"})
    if (ids is None) == (not everything):
        raise Invalid("Give 'ids' (a list of notification ids) or 'all': true, not both.",
                      details={"ids": "give ids or all: true"})
    return {"ids": ids, "all": bool(everything)}


class MarkReadView(APIView):
    throttle_scope = "write"

    @extend_schema(request=MarkReadInSerializer, responses=UnreadSerializer,
                   summary="Mark your notifications read: some (ids; others' ids are ignored) or all")
    def post(self, request):
        json_object(MarkReadInSerializer, request)
        return Response({"unread": services.mark_read(user=request.user, **parse_mark_read(request.data))})
