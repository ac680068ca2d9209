"""REST views of streaming (docs/protocol.md, "Streaming messages"): each parses its body and calls
the service, which does what the socket frames and the MCP tools do."""
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.policies import access_channel
from messaging.serializers import MessageSerializer, SenderSerializer
from mythline_site.api import json_object
from mythline_site.errors import Invalid
from streaming import services


class StreamSerializer(serializers.Serializer):
    """The shape of `services.stream_json` (for the OpenAPI schema)."""
    id = serializers.UUIDField()
    story = serializers.CharField()
    channel = serializers.CharField()
    sender = SenderSerializer()
    msg_type = serializers.CharField()
    payload = serializers.JSONField(help_text="The payload without the streamed field")
    field = serializers.CharField(help_text="The payload field the text goes to")
    text = serializers.CharField(help_text="The text written so far")
    status = serializers.ChoiceField(choices=["open", "completed", "cancelled"])
    reply_to = serializers.UUIDField(allow_null=True)
    correlation_id = serializers.CharField(allow_null=True)
    audience = serializers.JSONField()
    started_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class StreamInSerializer(serializers.Serializer):
    msg_type = serializers.CharField()
    payload = serializers.JSONField(required=False, help_text="The payload without the streamed field")
    field = serializers.CharField(required=False, help_text='Default "text"; a text field of the msg_type')
    id = serializers.UUIDField(required=False, help_text="The id the final message will have (a retry with it "
                                                         "answers 200 with the same stream)")
    reply_to = serializers.UUIDField(required=False, allow_null=True)
    correlation_id = serializers.CharField(required=False, allow_null=True)
    audience = serializers.JSONField(required=False)


class AppendInSerializer(serializers.Serializer):
    text = serializers.CharField()
    offset = serializers.IntegerField(required=False, min_value=0,
                                      help_text="The text's length before this chunk (characters): a retry is "
                                                "ignored, a gap or an overlap is 409 with the current length")


class CompleteInSerializer(serializers.Serializer):
    payload = serializers.JSONField(required=False, help_text="Replaces the payload's other fields")


def body(serializer_class, request) -> dict:
    """The JSON object body naming only the serializer's fields; the service checks the values."""
    return json_object(serializer_class, request) if request.data else {}


class StreamListView(APIView):
    throttle_scope = "read"

    def get_throttles(self):
        # Opening is limited by the service (one unit of the "post" budget, as a post).
        return [] if self.request.method == "POST" else super().get_throttles()

    @extend_schema(responses=inline_serializer("StreamPage", {"results": StreamSerializer(many=True)}),
                   summary="The channel's open streams, each with its text so far")
    def get(self, request, story, channel):
        access = access_channel(request.user, story, channel)
        return Response({"results": [services.stream_json(s)
                                     for s in services.readable_open_streams(access, request.user)]})

    @extend_schema(request=StreamInSerializer, responses={201: StreamSerializer, 200: StreamSerializer},
                   summary="Open a streaming message (anyone who may post here)")
    def post(self, request, story, channel):
        stream, created = services.stream_open(sender=request.user, story=story, channel=channel, data=request.data)
        return Response(services.stream_json(stream), status=201 if created else 200)


class AppendView(APIView):
    @extend_schema(request=AppendInSerializer,
                   responses=inline_serializer("StreamLength", {"id": serializers.UUIDField(),
                                                                "length": serializers.IntegerField()}),
                   summary="Append a chunk of text (the stream's opener)")
    def post(self, request, stream_id):
        data = body(AppendInSerializer, request)
        stream = services.stream_append(user=request.user, stream_id=stream_id, text=data.get("text"),
                                        offset=data.get("offset"))
        return Response({"id": str(stream.id), "length": len(stream.text)})


class CompleteView(APIView):
    @extend_schema(request=CompleteInSerializer, responses={201: MessageSerializer, 200: MessageSerializer},
                   summary="Store the final message (the stream's opener); again: the same message")
    def post(self, request, stream_id):
        data = body(CompleteInSerializer, request)
        result = services.stream_complete(user=request.user, stream_id=stream_id, payload=data.get("payload"))
        return Response(result.data, status=201 if result.created else 200)


class CancelView(APIView):
    @extend_schema(request=None, responses=inline_serializer("StreamCancelled", {
        "id": serializers.UUIDField(), "status": serializers.ChoiceField(choices=["cancelled"])}),
                   summary="Cancel (the opener, the channel's owner or the story owner); again: no-op")
    def post(self, request, stream_id):
        if request.data:
            raise Invalid("Cancelling takes no body.")
        stream = services.stream_cancel(user=request.user, stream_id=stream_id)
        return Response({"id": str(stream.id), "status": stream.status})
