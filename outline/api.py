"""REST views of the outline (docs/protocol.md, "The outline"). Views parse, call a service, render;
the services check the values (the same checks as over MCP)."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.selectors import parse_int
from mythline_site.api import OneOfField, json_object
from mythline_site.errors import Invalid
from outline import selectors, services
from outline.models import OutlineScene
from outline.policies import access_outline


class RangeSerializer(serializers.Serializer):
    document = serializers.CharField(help_text="The document's name, e.g. 'main'")
    to = serializers.IntegerField(min_value=0, help_text="End (exclusive), in characters")
    revision = serializers.IntegerField(help_text="The document revision the positions count in")
    gone = serializers.BooleanField(read_only=True, help_text="The text it covered was deleted")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField(min_value=0, help_text="Start, in characters")
        return fields


class RangeInSerializer(serializers.Serializer):
    document = serializers.CharField(help_text="The document's name, e.g. 'main'")
    to = serializers.IntegerField(min_value=0, required=False, help_text="End (exclusive), in characters; "
                                                                         "default `from` (a point)")
    revision = serializers.IntegerField(required=False, help_text="The revision the positions count in "
                                                                   "(default: the current one)")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField(min_value=0, help_text="Start, in characters")
        return fields


class SceneFieldsSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=services.TITLE_MAX)
    summary = serializers.CharField(required=False, allow_blank=True, max_length=services.SUMMARY_MAX)
    beats = serializers.ListField(child=serializers.CharField(max_length=services.BEAT_MAX), required=False)
    status = OneOfField(services.STATUSES, required=False)
    pov = serializers.CharField(required=False, allow_blank=True, max_length=services.NAME_MAX)
    characters = serializers.ListField(child=serializers.CharField(max_length=services.NAME_MAX), required=False)
    range = RangeInSerializer(required=False, allow_null=True,
                              help_text="The document range this scene became (null: none)")


class SceneInSerializer(SceneFieldsSerializer):
    position = serializers.IntegerField(required=False, min_value=1,
                                        help_text="Insert at this place (1..N+1); default: at the end")


class ScenePatchSerializer(SceneFieldsSerializer):
    title = serializers.CharField(max_length=services.TITLE_MAX, required=False)
    version = serializers.IntegerField(required=False, help_text="The version you read: 409 `conflict` if the "
                                                                 "scene changed since")


class SceneMoveSerializer(serializers.Serializer):
    position = serializers.IntegerField(min_value=1, help_text="The new place, 1..N")
    version = serializers.IntegerField(required=False, help_text="The version you read (409 if it changed)")


class SceneSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    story = serializers.CharField()
    position = serializers.IntegerField(help_text="The scene number, 1..N")
    title = serializers.CharField()
    summary = serializers.CharField()
    beats = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(services.STATUSES)
    pov = serializers.CharField()
    characters = serializers.ListField(child=serializers.CharField())
    range = RangeSerializer(allow_null=True, help_text="Mapped to the document's current revision")
    created_by = serializers.CharField()
    updated_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    version = serializers.IntegerField()


class OutlineSerializer(serializers.Serializer):
    results = SceneSerializer(many=True)
    count = serializers.IntegerField()


VERSION_PARAM = OpenApiParameter("version", int, required=False,
                                 description="The version you read: 409 `conflict` if the scene changed since")


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise Invalid("The body must be a JSON object.")
    return request.data


def _scene(access, scene_id) -> OutlineScene:
    scene = selectors.get_scene(access.story, scene_id)
    scene.story = access.story
    return scene


class OutlineView(APIView):
    @extend_schema(responses=OutlineSerializer, summary="The story's outline: every scene, in order")
    def get(self, request, story):
        access = access_outline(request.user, story)
        results = selectors.outline_json(access.story)
        return Response({"results": results, "count": len(results)})

    @extend_schema(request=SceneInSerializer, responses={201: SceneSerializer},
                   summary="Add a scene (at the end, or at `position`)")
    def post(self, request, story):
        access = access_outline(request.user, story, write=True)
        data = _body(request)
        scene = services.scene_create(story=access.story, by=request.user, data=data)
        return Response(selectors.scene_detail_json(scene), status=status.HTTP_201_CREATED)


class SceneView(APIView):
    @extend_schema(responses=SceneSerializer, summary="One scene of the outline", operation_id="stories_outline_scene_retrieve")
    def get(self, request, story, scene):
        access = access_outline(request.user, story)
        return Response(selectors.scene_detail_json(_scene(access, scene)))

    @extend_schema(request=ScenePatchSerializer, responses=SceneSerializer,
                   summary="Change a scene (send `version` to refuse overwriting a change you have not seen)")
    def patch(self, request, story, scene):
        access = access_outline(request.user, story, write=True)
        data = _body(request)  # the service names unknown fields (and says how to move a scene)
        found = services.scene_update(scene=_scene(access, scene), by=request.user, data=data)
        return Response(selectors.scene_detail_json(found))

    @extend_schema(parameters=[VERSION_PARAM], responses={204: None}, summary="Delete a scene")
    def delete(self, request, story, scene):
        access = access_outline(request.user, story, write=True)
        version = request.query_params.get("version")
        version = None if version in (None, "") else parse_int(version, "version")
        services.scene_delete(scene=_scene(access, scene), by=request.user, version=version)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SceneMoveView(APIView):
    @extend_schema(request=SceneMoveSerializer, responses=SceneSerializer,
                   summary="Move a scene to another place; the scenes between shift by one")
    def post(self, request, story, scene):
        access = access_outline(request.user, story, write=True)
        data = json_object(SceneMoveSerializer, request)
        if "position" not in data:
            raise Invalid("Send the new 'position'.", details={"position": "required"})
        moved = services.scene_move(scene=_scene(access, scene), by=request.user, position=data["position"],
                                    version=data.get("version"))
        return Response(selectors.scene_detail_json(moved))
