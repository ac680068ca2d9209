"""REST views of a story's writers' room (docs/crew.md). Views parse, check access, call a service."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mythline_site.api import json_object
from writers import selectors, services
from writers.policies import access_crew
from writers.roles import NAMES


class CrewAgentSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    role = serializers.ChoiceField(NAMES)
    paused = serializers.BooleanField()


class CrewRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(NAMES)
    username = serializers.CharField(help_text="The agent playing it in this story ('' when not in the crew)")
    display_name = serializers.CharField()
    description = serializers.CharField()
    required = serializers.BooleanField(help_text="Every crew has it")


class CrewSerializer(serializers.Serializer):
    story = serializers.CharField()
    enabled = serializers.BooleanField(help_text="The story has a crew")
    paused = serializers.BooleanField(help_text="The whole crew is paused")
    script = serializers.CharField(help_text="'' (writes from the story) or 'lighthouse' (the demo's scenes)")
    writes_to = serializers.ChoiceField(["main", "fork"], help_text="Where its scenes go: 'main', or 'fork' (its own "
                                                                    "fork of main, the document 'crew-draft')")
    roles = serializers.ListField(child=serializers.ChoiceField(NAMES))
    agents = CrewAgentSerializer(many=True)
    available_roles = CrewRoleSerializer(many=True)
    version = serializers.IntegerField(help_text="Bumped on every change")
    can_manage = serializers.BooleanField(help_text="The caller may add or remove the crew (the owner)")
    can_pause = serializers.BooleanField(help_text="The caller may pause and resume it (the owner, human editors)")


class CrewInSerializer(serializers.Serializer):
    roles = serializers.ListField(child=serializers.ChoiceField(NAMES), required=False,
                                  help_text="Default: every role. The required ones are always added.")
    writes_to = serializers.ChoiceField(["main", "fork"], required=False,
                                        help_text="'main' (default) or 'fork': the crew writes into its own fork")


class CrewPatchSerializer(serializers.Serializer):
    paused = serializers.BooleanField()
    agent = serializers.CharField(required=False, help_text="A role or its agent's username: pause or resume "
                                                            "that agent only")


def _render(crew_access, crew) -> dict:
    return {**selectors.crew_json(crew_access.access.story, crew), "can_manage": crew_access.can_manage,
            "can_pause": crew_access.can_pause}


class CrewView(APIView):
    @extend_schema(responses=CrewSerializer, summary="The story's writers' room: its agents and whether they "
                                                     "are paused")
    def get(self, request, story):
        crew_access = access_crew(request.user, story)
        return Response(_render(crew_access, selectors.crew_of(crew_access.access.story)))

    @extend_schema(request=CrewInSerializer, responses={201: CrewSerializer, 200: CrewSerializer},
                   summary="Owner: add the writers' room to the story (or change its roles)")
    def post(self, request, story):
        crew_access = access_crew(request.user, story, manage=True)
        body = json_object(CrewInSerializer, request)
        crew, created = services.crew_add(story=crew_access.access.story, by=request.user,
                                          roles=body.get("roles"), writes_to=body.get("writes_to"))
        return Response(_render(crew_access, crew), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=CrewPatchSerializer, responses=CrewSerializer,
                   summary="Owner or human editor: pause or resume the crew, or one of its agents")
    def patch(self, request, story):
        crew_access = access_crew(request.user, story, pause=True)
        body = json_object(CrewPatchSerializer, request)
        crew = services.crew_pause(story=crew_access.access.story, by=request.user, paused=body.get("paused"),
                                   agent=body.get("agent"))
        return Response(_render(crew_access, crew))

    @extend_schema(responses={204: None}, summary="Owner: remove the crew (its agents stay participants)")
    def delete(self, request, story):
        crew_access = access_crew(request.user, story, manage=True)
        services.crew_remove(story=crew_access.access.story, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
