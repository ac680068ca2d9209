"""REST views for channels, members, messages, cursors, activity and routing."""
from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import selectors, services
from messaging.policies import access_channel
from messaging.schemas import BUILT_IN_TYPES
from messaging.serializers import (MESSAGE_IN, AckInSerializer, AckSerializer, ActivityPageSerializer,
                                   BatchInSerializer, BatchResultSerializer, ChannelInSerializer,
                                   ChannelPatchSerializer, ChannelSerializer,
                                   InboxRowSerializer, MemberInSerializer, MemberSerializer, MessagePageSerializer,
                                   MessageSerializer, RouteResultSerializer, channel_json, iso)
from mythline_site.api import validated
from mythline_site.errors import Invalid, NotFound
from mythline_site.pagination import paginate
from stories.policies import access_story

User = get_user_model()
POST_DESCRIPTION = ("The body names a msg_type and its payload. The built-in types "
                    f"({', '.join(BUILT_IN_TYPES)}) each have a payload "
                    "schema: components MessageIn<Type> and <Type>Payload. Any other msg_type is accepted, with "
                    "any JSON object as its payload (MessageInOther).")
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Repeat a post safely: same key and content -> 200 and the original; other content -> 409. "
                "Scoped to the sender: no one else's post or id can take it.")


def idempotency_key(request) -> str | None:
    """The request's `Idempotency-Key`: 1-255 characters, no control characters (400 otherwise)."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and (not 1 <= len(key) <= 255 or any(ord(c) < 32 or ord(c) == 127 for c in key)):
        raise Invalid("Idempotency-Key must be 1-255 characters, without control characters.",
                      details={"Idempotency-Key": "1-255 characters, no control characters"})
    return key


def member_json(membership) -> dict:
    user = membership.user
    return {"username": user.username, "display_name": user.display_name or user.username,
            "kind": "agent" if user.is_agent else "human", "role": membership.role, "joined_at": iso(membership.joined_at)}


class ChannelListView(APIView):
    @extend_schema(responses=ChannelSerializer(many=True), summary="Channels the caller can read")
    def get(self, request, story):
        access = access_story(request.user, story)
        return paginate(self, request, selectors.channels_for_reader(request.user, access.story),
                        lambda c: channel_json(c, story_slug=access.story.slug))

    @extend_schema(request=ChannelInSerializer, responses={201: ChannelSerializer}, summary="Editors create a channel")
    def post(self, request, story):
        access = access_story(request.user, story, write=True)
        data = validated(ChannelInSerializer, request)
        channel = services.channel_create(story=access.story, creator=request.user, **data)
        return Response(channel_json(channel, story_slug=access.story.slug), status=201)


class ChannelDetailView(APIView):
    @extend_schema(responses=ChannelSerializer)
    def get(self, request, story, channel):
        access = access_channel(request.user, story, channel)
        return Response(channel_json(access.channel))

    @extend_schema(request=ChannelPatchSerializer, responses=ChannelSerializer,
                   summary="The channel's owner or the story owner changes the topic or archives")
    def patch(self, request, story, channel):
        access = access_channel(request.user, story, channel, for_manage=True)
        data = validated(ChannelPatchSerializer, request)
        services.channel_update(channel=access.channel, by=request.user, **data)
        return Response(channel_json(access.channel))


class MemberListView(APIView):
    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request, story, channel):
        access = access_channel(request.user, story, channel)
        return paginate(self, request, selectors.channel_members(access.channel), member_json)

    @extend_schema(request=MemberInSerializer, responses={200: MemberSerializer, 201: MemberSerializer},
                   summary="The channel's owner or the story owner invites a participant")
    def post(self, request, story, channel):
        access = access_channel(request.user, story, channel, for_manage=True)
        data = validated(MemberInSerializer, request)
        user = User.objects.filter(username=data["username"], is_active=True).first()
        if user is None:
            raise Invalid(f"No user '{data['username']}'.", details={"username": "no such user"})
        membership, created = services.member_add(channel=access.channel, user=user, by=request.user)
        return Response(member_json(membership), status=201 if created else 200)


class MemberDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Remove a member (or leave: remove yourself)")
    def delete(self, request, story, channel, username):
        leaving = username == request.user.username
        access = access_channel(request.user, story, channel, for_manage=not leaving)
        user = User.objects.filter(username=username).first()
        if user is None or not access.channel.memberships.filter(user=user).exists():
            raise NotFound(f"'{username}' is not a member of this channel.")
        services.member_remove(channel=access.channel, user=user, by=request.user)
        return Response(status=204)


class MessageListView(APIView):
    throttle_scope = "read"

    def get_throttles(self):
        # Reads are limited like any read. A post is limited by `message_publish`, which takes one
        # unit of the sender's "post" budget, as it does for the WebSocket and MCP.
        if self.request.method == "POST":
            return []
        return super().get_throttles()

    @extend_schema(
        parameters=[OpenApiParameter("after", int), OpenApiParameter("before", int),
                    OpenApiParameter("limit", int, description="default 100, at most 500"),
                    OpenApiParameter("type", str, description="only these msg_types (comma-separated)")],
        responses=MessagePageSerializer, summary="Read a channel's log: ascending after N, or descending before N")
    def get(self, request, story, channel):
        access = access_channel(request.user, story, channel)
        params = request.query_params
        after = selectors.parse_int(params.get("after"), "after")
        before = selectors.parse_int(params.get("before"), "before", minimum=1)
        if after is not None and before is not None:
            raise Invalid("Give 'after' or 'before', not both.", details={"before": "not with 'after'"})
        types = [t for t in params.get("type", "").split(",") if t] or None
        page = selectors.messages_page(access, request.user, after=after, before=before,
                                       limit=selectors.parse_limit(params.get("limit")), msg_types=types)
        return Response(page)

    @extend_schema(request=MESSAGE_IN, parameters=[IDEMPOTENCY_HEADER], description=POST_DESCRIPTION,
                   responses={201: MessageSerializer, 200: MessageSerializer}, summary="Post a message")
    def post(self, request, story, channel):
        result = services.message_publish(sender=request.user, story=story, channel=channel, data=request.data,
                                          idempotency_key=idempotency_key(request), via="rest")
        return Response(result.data, status=201 if result.created else 200)


class MessageBatchView(APIView):
    def get_throttles(self):
        return []  # `message_publish_batch` takes one unit of the "post" budget per message

    @extend_schema(request=BatchInSerializer, responses={200: BatchResultSerializer},
                   summary="Post several messages to one channel in one request",
                   description="One transaction, consecutive seqs in the batch's order; each message is validated, "
                               "checked for a repeat by its `id` and policy-checked as if posted alone, and "
                               "answered on its own in `results` (status 201, 200 or its error). 413 over "
                               "MYTHLINE_BATCH_MAX_MESSAGES; one post budget unit per message.")
    def post(self, request, story, channel):
        body = request.data
        if not isinstance(body, dict) or set(body) != {"messages"}:
            raise Invalid("The body must be {\"messages\": [...]}.",
                          details={"messages": "is required, and is the only field"})
        results = services.message_publish_batch(sender=request.user, story=story, channel=channel,
                                                 items=body["messages"], via="rest")
        return Response({"results": [item.as_json() for item in results]})


class AckView(APIView):
    @extend_schema(request=AckInSerializer, responses=AckSerializer, summary="Move the caller's read cursor forward")
    def post(self, request, story, channel):
        access = access_channel(request.user, story, channel)
        data = validated(AckInSerializer, request)
        read_seq = services.cursor_ack(channel=access.channel, user=request.user, seq=data["seq"])
        return Response({"story": story, "channel": channel, "read_seq": read_seq, "last_seq": access.channel.last_seq})


class InboxView(APIView):
    @extend_schema(responses=InboxRowSerializer(many=True),
                   summary="A row per readable channel of the caller's stories, with unread counts")
    def get(self, request):
        return Response({"results": selectors.inbox_rows(request.user), "next": None})


class MessageDetailView(APIView):
    @extend_schema(responses=MessageSerializer)
    def get(self, request, message_id):
        return Response(selectors.message_detail(request.user, message_id))


class ThreadView(APIView):
    @extend_schema(responses=MessageSerializer(many=True), summary="The whole reply tree from its root, in order")
    def get(self, request, message_id):
        return Response(selectors.thread_for_reader(request.user, message_id))


class ActivityView(APIView):
    @extend_schema(parameters=[OpenApiParameter("story", str), OpenApiParameter("after", str),
                               OpenApiParameter("limit", int)],
                   responses=ActivityPageSerializer, summary="Every readable message across channels, oldest first")
    def get(self, request):
        params = request.query_params
        story = access_story(request.user, params["story"]).story if params.get("story") else None
        return Response(selectors.activity_page(request.user, story=story, after=params.get("after"),
                                                limit=selectors.parse_limit(params.get("limit"))))


class RouteView(APIView):
    throttle_scope = "post"

    @extend_schema(request=MESSAGE_IN, parameters=[IDEMPOTENCY_HEADER], description=POST_DESCRIPTION,
                   responses={201: RouteResultSerializer, 200: RouteResultSerializer},
                   summary="Post to the inbox of every agent whose capabilities include msg_type")
    def post(self, request, story):
        access = access_story(request.user, story, write=True)
        results, routed_to = services.message_route(sender=request.user, story=access.story, data=request.data,
                                                    idempotency_key=idempotency_key(request))
        created = any(r.created for r in results)
        return Response({"results": [r.data for r in results], "routed_to": routed_to}, status=201 if created else 200)
