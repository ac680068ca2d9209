"""REST views for the story bible (docs/protocol.md, "Story bible"). Views parse, call a service,
render; the services check every value (the same checks as the MCP tools and the admin)."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from bible import selectors, services
from bible.models import BibleEntry, BibleProgression
from bible.policies import access_bible
from messaging.selectors import parse_int
from mythline_site.api import json_object
from mythline_site.errors import Invalid, NotFound
from mythline_site.pagination import paginate

KINDS = BibleEntry.Kind.values


class BibleProgressionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    from_scene = serializers.IntegerField(min_value=1)
    description = serializers.CharField(allow_null=True, help_text="Replaces the description from this scene on")
    fields = serializers.DictField(child=serializers.CharField(), help_text="Merged over the entry's fields")
    note = serializers.CharField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()


class BibleEntrySerializer(serializers.Serializer):
    slug = serializers.CharField(help_text="The entry's key in URLs, made from its first name")
    story = serializers.CharField()
    kind = serializers.ChoiceField(BibleEntry.Kind.choices)
    name = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField(help_text="As of `scene` when one was asked for")
    fields = serializers.DictField(child=serializers.CharField(), help_text="As of `scene` when one was asked for")
    progressions = BibleProgressionSerializer(many=True)
    version = serializers.IntegerField(help_text="Bumped on every change; send it back with PATCH to detect others' "
                                                 "changes (409 `conflict`)")
    created_by = serializers.CharField()
    updated_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    scene = serializers.IntegerField(required=False, help_text="With ?scene=N: the scene resolved")
    applied = serializers.ListField(child=serializers.IntegerField(), required=False,
                                    help_text="With ?scene=N: the ids of the progressions applied")


class BibleEntryInSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(BibleEntry.Kind.choices)
    name = serializers.CharField(max_length=120)
    aliases = serializers.ListField(child=serializers.CharField(max_length=120), required=False, max_length=20)
    description = serializers.CharField(required=False, allow_blank=True)
    fields = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)


class BibleEntryPatchSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(BibleEntry.Kind.choices, required=False)
    name = serializers.CharField(max_length=120, required=False)
    aliases = serializers.ListField(child=serializers.CharField(max_length=120), required=False, max_length=20)
    description = serializers.CharField(required=False, allow_blank=True)
    fields = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    version = serializers.IntegerField(required=False, help_text="The version you changed: 409 `conflict` if the "
                                                                 "entry is at another one")


class BibleProgressionInSerializer(serializers.Serializer):
    from_scene = serializers.IntegerField(min_value=1, help_text="The scene number (outline order, from 1) from "
                                                                 "which this applies")
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    fields = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


SCENE = OpenApiParameter("scene", int, description="The entries as of this scene (1-based, outline order): "
                                                   "progressions with from_scene <= scene applied")
LIST_PARAMETERS = [
    OpenApiParameter("kind", str, enum=KINDS, description="Only entries of this kind"),
    OpenApiParameter("q", str, description="Name, an alias or the description holds this text (any case)"),
    SCENE,
    OpenApiParameter("limit", int, description="Page size (default 50, at most 200)"),
]


def _scene(request):
    return selectors.parse_scene(request.query_params.get("scene"))


class BibleListView(APIView):
    @extend_schema(parameters=LIST_PARAMETERS, responses=BibleEntrySerializer(many=True),
                   summary="The story bible's entries, by name (?kind, ?q, ?scene)")
    def get(self, request, story):
        access = access_bible(request.user, story)
        scene = _scene(request)
        qs = selectors.filtered(access.story, kind=request.query_params.get("kind"),
                                query=request.query_params.get("q"))
        slug = access.story.slug
        return paginate(self, request, qs, lambda e: selectors.entry_json(e, story_slug=slug, scene=scene),
                        ordering=("name_key", "id"))

    @extend_schema(request=BibleEntryInSerializer, responses={201: BibleEntrySerializer},
                   summary="Owner, editors and editor agents: add an entry")
    def post(self, request, story):
        access = access_bible(request.user, story, write=True)
        data = json_object(BibleEntryInSerializer, request)  # the service checks the values
        if "name" not in data or "kind" not in data:
            missing = [f for f in ("kind", "name") if f not in data]
            raise Invalid("A new entry needs a 'kind' and a 'name'.", details={f: "required" for f in missing})
        entry = services.entry_create(story=access.story, by=request.user, **data)
        return Response(selectors.entry_json(entry, story_slug=access.story.slug), status=201)


class BibleEntryView(APIView):
    @extend_schema(parameters=[SCENE], responses=BibleEntrySerializer, summary="One entry (as of ?scene)")
    def get(self, request, story, entry):
        access = access_bible(request.user, story)
        scene = _scene(request)
        return Response(selectors.entry_json(selectors.entry_get(access.story, entry), scene=scene))

    @extend_schema(request=BibleEntryPatchSerializer, responses=BibleEntrySerializer,
                   summary="Change an entry (send `version` to refuse others' changes made meanwhile)")
    def patch(self, request, story, entry):
        access = access_bible(request.user, story, write=True)
        data = dict(json_object(BibleEntryPatchSerializer, request))
        found = selectors.entry_get(access.story, entry)
        updated = services.entry_update(entry=found, by=request.user, **data)
        return Response(selectors.entry_json(selectors.entry_get(access.story, updated.slug)))

    @extend_schema(parameters=[OpenApiParameter("version", int, description="Delete only at this version (409 "
                                                                            "`conflict` otherwise)")],
                   responses={204: None}, summary="Delete an entry and its progressions")
    def delete(self, request, story, entry):
        access = access_bible(request.user, story, write=True)
        version = parse_int(request.query_params.get("version"), "version")
        services.entry_delete(entry=selectors.entry_get(access.story, entry), by=request.user, version=version)
        return Response(status=204)


class ProgressionListView(APIView):
    @extend_schema(request=BibleProgressionInSerializer, responses={201: BibleEntrySerializer},
                   summary="Add a progression: the entry changes from a scene on (answers the entry)")
    def post(self, request, story, entry):
        access = access_bible(request.user, story, write=True)
        data = json_object(BibleProgressionInSerializer, request)
        found = selectors.entry_get(access.story, entry)
        if "from_scene" not in data:
            raise Invalid("A progression needs 'from_scene'.", details={"from_scene": "required"})
        services.progression_add(entry=found, by=request.user, **data)
        return Response(selectors.entry_json(selectors.entry_get(access.story, entry)), status=201)


class ProgressionDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Delete a progression")
    def delete(self, request, story, entry, progression):
        access = access_bible(request.user, story, write=True)
        found = selectors.entry_get(access.story, entry)
        p = BibleProgression.objects.filter(entry=found, pk=progression).first()
        if p is None:
            raise NotFound(f"No progression {progression} of entry '{found.slug}'.")
        p.entry = found
        services.progression_delete(progression=p, by=request.user)
        return Response(status=204)
