"""REST view of who is present in a story."""
from asgiref.sync import async_to_sync
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.models import Channel
from presence.services import agents_of_story, room_members, state_payload
from stories.policies import access_story
from stories.services import ROOM


class StoryPresenceView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description='{"story", "members": [...], "agents": [...]}')},
                   summary="Members present in the story's room and every agent of the story with its status")
    def get(self, request, story):
        access = access_story(request.user, story)
        room = Channel.objects.filter(story=access.story, name=ROOM, kind=Channel.Kind.PRESENCE).first()
        if room is None:
            state = {"members": [], "agents": agents_of_story(access.story.pk)}
        else:
            # The store is async (it serves sockets); the database part stays in this thread.
            state = state_payload(async_to_sync(room_members)(room.pk), access.story.pk)
        return Response({"story": access.story.slug, **state})
