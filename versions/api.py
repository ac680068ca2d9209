"""REST views for document versions (docs/protocol.md, "Versions"; docs/versions.md). Views parse,
call a service or a selector, render; the services check every value (as for the MCP tools)."""
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from mythline_site.api import json_object
from mythline_site.errors import Invalid
from mythline_site.pagination import paginate
from stories.selectors import get_document
from versions import selectors, services
from versions.policies import access_versions


class VersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    document = serializers.CharField()
    revision = serializers.IntegerField(help_text="The revision this version names")
    name = serializers.CharField()
    note = serializers.CharField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()


class VersionInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="1-100 characters, unique in the document in any case")
    revision = serializers.IntegerField(required=False, min_value=0, help_text="Default: the current revision")
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class VersionPatchSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=100)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class RestoreInSerializer(serializers.Serializer):
    revision = serializers.IntegerField(required=False, min_value=0, help_text="The revision whose text comes back")
    version = serializers.IntegerField(required=False, help_text="Or: the id of a version (its revision)")


class DiffOpSerializer(serializers.Serializer):
    op = serializers.ChoiceField(["equal", "insert", "delete"])
    text = serializers.CharField()


class CompareSideSerializer(serializers.Serializer):
    document = serializers.CharField()
    revision = serializers.IntegerField()
    current_revision = serializers.IntegerField()
    length = serializers.IntegerField(help_text="In characters")


class CompareStatsSerializer(serializers.Serializer):
    inserted = serializers.IntegerField(help_text="Characters inserted")
    deleted = serializers.IntegerField(help_text="Characters deleted")
    inserted_words = serializers.IntegerField()
    deleted_words = serializers.IntegerField()


class CompareSerializer(serializers.Serializer):
    from_ = CompareSideSerializer()
    to = CompareSideSerializer()
    diff = DiffOpSerializer(many=True)
    stats = CompareStatsSerializer()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class RestoreSerializer(serializers.Serializer):
    document = serializers.CharField()
    revision = serializers.IntegerField(help_text="The document's revision now (the new one, if `changed`)")
    restored_revision = serializers.IntegerField()
    version = VersionSerializer(allow_null=True)
    changed = serializers.BooleanField(help_text="False: the text already was that text, nothing was written")
    change = serializers.DictField(allow_null=True, help_text="The change appended to the log, as in .../ops")


class VersionListView(APIView):
    @extend_schema(parameters=[OpenApiParameter("limit", int, description="Page size (default 50, at most 200)")],
                   responses=VersionSerializer(many=True), summary="A document's named versions, newest revision first")
    def get(self, request, story, doc):
        access = access_versions(request.user, story)
        document = get_document(access.story, doc, text=False)
        return paginate(self, request, selectors.versions_of(document),
                        lambda v: selectors.version_json(v, document_name=document.name), ordering=("-revision", "-id"))

    @extend_schema(request=VersionInSerializer, responses={201: VersionSerializer},
                   summary="Owner, editors and editor agents: name a revision")
    def post(self, request, story, doc):
        access = access_versions(request.user, story, write=True)
        data = json_object(VersionInSerializer, request)  # the service checks the values
        if "name" not in data:
            raise Invalid("A version needs a 'name'.", details={"name": "required"})
        document = get_document(access.story, doc, text=False)
        version = services.version_create(doc=document, by=request.user, name=data["name"],
                                          revision=data.get("revision"), note=data.get("note", ""))
        return Response(selectors.version_json(version), status=201)


class VersionDetailView(APIView):
    @extend_schema(responses=VersionSerializer, summary="One named version")
    def get(self, request, story, doc, version):
        access = access_versions(request.user, story)
        document = get_document(access.story, doc, text=False)
        return Response(selectors.version_json(selectors.get_version(document, version)))

    @extend_schema(request=VersionPatchSerializer, responses=VersionSerializer,
                   summary="Rename a version or change its note")
    def patch(self, request, story, doc, version):
        access = access_versions(request.user, story, write=True)
        data = json_object(VersionPatchSerializer, request)
        document = get_document(access.story, doc, text=False)
        found = selectors.get_version(document, version)
        return Response(selectors.version_json(services.version_update(version=found, by=request.user, **data)))

    @extend_schema(responses={204: None}, summary="Delete a version (the revision stays in the log)")
    def delete(self, request, story, doc, version):
        access = access_versions(request.user, story, write=True)
        document = get_document(access.story, doc, text=False)
        services.version_delete(version=selectors.get_version(document, version), by=request.user)
        return Response(status=204)


class CompareView(APIView):
    @extend_schema(parameters=[
        OpenApiParameter("from", int, description="The revision to compare from"),
        OpenApiParameter("to", int, description="The revision to compare to (default: the current one)"),
        OpenApiParameter("parent", int, enum=[1], description="A fork: its parent's current text to the fork's"),
    ], responses=CompareSerializer, summary="A word-level diff of two revisions, or of a fork with its parent")
    def get(self, request, story, doc):
        access = access_versions(request.user, story)
        document = get_document(access.story, doc)
        return Response(selectors.compare_query(document, request.query_params))


class RestoreView(APIView):
    def get_throttles(self):
        self.throttle_scope = "post"  # an edit of the document, as POST .../ops
        return super().get_throttles()

    @extend_schema(request=RestoreInSerializer, responses={200: RestoreSerializer, 413: OpenApiResponse(
        description="More than MYTHLINE_DOC_MAX_INSERT_CHARS would come back in one change")},
        summary="Owner, editors and editor agents: make an old revision's text current again (one new change)")
    def post(self, request, story, doc):
        access = access_versions(request.user, story, write=True)
        data = json_object(RestoreInSerializer, request)
        document = get_document(access.story, doc, text=False)
        return Response(services.restore(doc=document, by=request.user, revision=data.get("revision"),
                                         version=data.get("version")))
