"""REST views of comments (docs/protocol.md, "Comments"). Views parse, check access, call a service."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from comments import selectors, services
from mythline_site.errors import Invalid
from stories.policies import access_story
from stories.selectors import get_document


class AnchorSerializer(serializers.Serializer):
    to = serializers.IntegerField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField()
        return fields


class CommentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    thread = serializers.IntegerField()
    author = serializers.CharField()
    author_kind = serializers.CharField(help_text="human or agent")
    body = serializers.CharField()
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)


class ThreadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    story = serializers.CharField()
    document = serializers.CharField()
    anchor = AnchorSerializer(allow_null=True, help_text="In characters (code points) of the text at `revision`")
    anchor_utf16 = AnchorSerializer(help_text="In UTF-16 code units, as the browser's editor counts")
    revision = serializers.IntegerField(help_text="The revision the anchor counts in (the current one)")
    orphaned = serializers.BooleanField(help_text="All of its text was deleted: the anchor collapsed")
    quote = serializers.CharField(help_text="The text anchored when the thread was opened (at most 500 characters)")
    created_by = serializers.CharField()
    created_by_kind = serializers.CharField()
    resolved = serializers.BooleanField()
    resolved_by = serializers.CharField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    version = serializers.IntegerField()
    comment_count = serializers.IntegerField()
    comments = CommentSerializer(many=True, required=False, help_text="Every comment, oldest first (one thread)")
    first_comment = CommentSerializer(required=False, help_text="The opening comment (in lists)")


class ThreadInSerializer(serializers.Serializer):
    to = serializers.IntegerField(min_value=0)
    revision = serializers.IntegerField(required=False, help_text="The revision from/to count in (default: current)")
    body = serializers.CharField(max_length=services.BODY_MAX)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField(min_value=0)
        return fields


class ReplyInSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=services.BODY_MAX)


class ResolveInSerializer(serializers.Serializer):
    resolved = serializers.BooleanField()
    version = serializers.IntegerField(required=False, help_text="The version you read (409 if it changed)")


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise Invalid("The body must be a JSON object.")
    return request.data


class ThreadListView(APIView):
    @extend_schema(parameters=[OpenApiParameter("resolved", bool, required=False)],
                   responses=ThreadSerializer(many=True),
                   summary="The document's comment threads, anchors moved to the current text")
    def get(self, request, story, doc):
        access = access_story(request.user, story)
        document = get_document(access.story, doc)
        resolved = selectors.parse_resolved(request.query_params.get("resolved"))
        return Response(selectors.threads_json(document, resolved))

    @extend_schema(request=ThreadInSerializer, responses={201: ThreadSerializer},
                   summary="Open a comment thread on a passage (positions in characters)")
    def post(self, request, story, doc):
        access = access_story(request.user, story, write=True)
        document = get_document(access.story, doc)
        t = services.thread_create(doc=document, author=request.user, body=_body(request))
        return Response(services.thread_json(t), status=status.HTTP_201_CREATED)


class ThreadDetailView(APIView):
    @extend_schema(responses=ThreadSerializer, summary="One comment thread with every comment")
    def get(self, request, story, doc, thread):
        access = access_story(request.user, story)
        document = get_document(access.story, doc)
        return Response(selectors.thread_detail_json(document, thread))


class ReplyView(APIView):
    @extend_schema(request=ReplyInSerializer, responses={201: CommentSerializer}, summary="Reply in a thread")
    def post(self, request, story, doc, thread):
        access = access_story(request.user, story, write=True)
        document = get_document(access.story, doc)
        t = selectors.get_thread(document, thread)
        c = services.comment_reply(thread=t, author=request.user, body=_body(request))
        return Response(services.comment_json(c), status=status.HTTP_201_CREATED)


class ResolveView(APIView):
    @extend_schema(request=ResolveInSerializer, responses=ThreadSerializer, summary="Resolve or reopen a thread")
    def post(self, request, story, doc, thread):
        access = access_story(request.user, story, write=True)
        document = get_document(access.story, doc)
        t = selectors.get_thread(document, thread)
        body = _body(request)
        unknown = sorted(set(body) - {"resolved", "version"})
        if unknown:
            raise Invalid("The body has unknown fields.", details={k: "unknown field" for k in unknown})
        if "resolved" not in body:
            raise Invalid("'resolved' is required.", details={"resolved": "required"})
        t = services.thread_resolve(thread=t, by=request.user, resolved=body["resolved"], version=body.get("version"))
        return Response(services.thread_json(t))
