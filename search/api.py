"""REST: GET /api/search (docs/protocol.md, "Search")."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.serializers import MessageSerializer
from search import selectors


class SearchResultSerializer(serializers.Serializer):
    message = MessageSerializer()
    story = serializers.CharField()
    channel = serializers.CharField()
    rank = serializers.FloatField(help_text="Higher is better; comparable only within one answer")
    highlight = serializers.CharField(help_text="HTML: the text around the hits, escaped, hits in <mark></mark>")


class SearchPageSerializer(serializers.Serializer):
    results = SearchResultSerializer(many=True)
    next_offset = serializers.IntegerField(allow_null=True)


class SearchView(APIView):
    throttle_scope = "read"

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True,
                             description='1-200 characters: words (all must occur) and "quoted phrases"'),
            OpenApiParameter("story", str, description="Only this story (default: every story you take part in)"),
            OpenApiParameter("channel", str, description="Only this channel (needs story)"),
            OpenApiParameter("sender", str, description="Only messages of this username"),
            OpenApiParameter("type", str, description="Only these msg_types (comma-separated)"),
            OpenApiParameter("after", str, description="Only messages created after this ISO-8601 time"),
            OpenApiParameter("before", str, description="Only messages created before this ISO-8601 time"),
            OpenApiParameter("limit", int, description=f"default {selectors.DEFAULT_LIMIT}, at most "
                                                       f"{selectors.MAX_LIMIT}"),
            OpenApiParameter("offset", int, description=f"skip this many results (at most {selectors.MAX_OFFSET}); "
                                                        "pass back next_offset"),
        ],
        responses=SearchPageSerializer, summary="Full-text search over the messages you may read, best first")
    def get(self, request):
        p = request.query_params
        params = selectors.parse_params(q=p.get("q"), story=p.get("story"), channel=p.get("channel"),
                                        sender=p.get("sender"), type=p.get("type"), after=p.get("after"),
                                        before=p.get("before"), limit=p.get("limit"), offset=p.get("offset"))
        return Response(selectors.search_messages(request.user, params))
