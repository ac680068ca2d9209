"""REST view of who is present in a story."""
from asgiref.sync import async_to_sync
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.models import Channel
from messaging.policies import access_channel
from presence.services import agents_of_story, room_members, state_payload
from stories.services import ROOM


class StoryPresenceView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description='{"story", "members": [...], "agents": [...]}')},
                   summary="Members present in the story's room and every agent of the story with its status")
    def get(self, request, story):
        # Readable exactly where the `room` channel is: the same check as reading it, so an
        # outsider of a private story (or anyone not in the room) gets the same 404.
        access = access_channel(request.user, story, ROOM)
        room = access.channel
        if room.kind != Channel.Kind.PRESENCE:
            state = {"members": [], "agents": agents_of_story(room.story_id)}
        else:
            # The store is async (it serves sockets); the database part stays in this thread.
            state = state_payload(async_to_sync(room_members)(room.pk), room.story_id)
        return Response({"story": room.story.slug, **state})
