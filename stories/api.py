"""REST views for stories, participants and the export. Views parse, call a service, render."""
import json

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.api import idempotency_key
from messaging.selectors import parse_int
from mythline_site.api import json_object, validated
from mythline_site.errors import Invalid, NotFound
from mythline_site.pagination import paginate
from stories import documents, selectors, services
from stories.models import Document, Invite, Participant, Story
from stories.policies import access_story, role_subquery
from stories.serializers import (InviteAcceptedSerializer, InviteCreatedSerializer, InviteInSerializer,
                                 InviteSerializer, ParticipantInSerializer, ParticipantSerializer,
                                 StoryInSerializer, StoryPatchSerializer, StorySerializer, invite_json,
                                 participant_json, story_json)

User = get_user_model()


class StoryListView(APIView):
    @extend_schema(responses=StorySerializer(many=True), summary="Stories the caller can read")
    def get(self, request):
        qs = (Story.objects.select_related("owner").annotate(caller_role=role_subquery(request.user))
              .filter(Q(visibility=Story.Visibility.PUBLIC)
                      | Q(pk__in=Participant.objects.filter(user=request.user).values("story_id"))))
        return paginate(self, request, qs, story_json)

    @extend_schema(request=StoryInSerializer, responses={201: StorySerializer}, summary="Create a story")
    def post(self, request):
        data = validated(StoryInSerializer, request)
        story = services.story_create(owner=request.user, by=request.user, **data)
        return Response(story_json(story, Participant.Role.OWNER), status=status.HTTP_201_CREATED)


class StoryDetailView(APIView):
    @extend_schema(responses=StorySerializer)
    def get(self, request, story):
        access = access_story(request.user, story)
        return Response(story_json(access.story, access.role))

    @extend_schema(request=StoryPatchSerializer, responses=StorySerializer, summary="Owner updates the story")
    def patch(self, request, story):
        access = access_story(request.user, story, owner=True)
        data = validated(StoryPatchSerializer, request)
        services.story_update(story=access.story, by=request.user, **data)
        return Response(story_json(access.story, access.role))


class StoryJoinView(APIView):
    @extend_schema(request=None, responses={200: ParticipantSerializer, 201: ParticipantSerializer},
                   summary="Join a public story as editor")
    def post(self, request, story):
        access = access_story(request.user, story)
        validated(serializers.Serializer, request)  # no body, or {}: a role or other field is a mistake
        participant, created = services.story_join(story=access.story, user=request.user)
        return Response(participant_json(participant), status=201 if created else 200)


class ParticipantListView(APIView):
    @extend_schema(responses=ParticipantSerializer(many=True))
    def get(self, request, story):
        access = access_story(request.user, story)
        qs = Participant.objects.filter(story=access.story).select_related("user")
        return paginate(self, request, qs, participant_json)

    @extend_schema(request=ParticipantInSerializer, responses={200: ParticipantSerializer, 201: ParticipantSerializer},
                   summary="Owner adds a user or agent (or changes their role)")
    def post(self, request, story):
        access = access_story(request.user, story, owner=True)
        data = validated(ParticipantInSerializer, request)
        user = User.objects.filter(username=data["username"], is_active=True).first()
        if user is None:
            raise Invalid(f"No user '{data['username']}'.", details={"username": "no such user"})
        participant, created = services.participant_add(story=access.story, user=user, role=data["role"],
                                                        by=request.user)
        return Response(participant_json(participant), status=201 if created else 200)


class ParticipantDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Owner removes a participant (or leave: remove yourself)")
    def delete(self, request, story, username):
        leaving = username == request.user.username
        access = access_story(request.user, story, owner=not leaving)
        user = User.objects.filter(username=username).first()
        if user is None:
            raise NotFound(f"'{username}' does not take part in story '{story}'.")
        services.participant_remove(story=access.story, user=user, by=request.user)
        return Response(status=204)


class InviteListView(APIView):
    @extend_schema(responses=InviteSerializer(many=True),
                   summary="Story owner: the invite links, live and past, newest first (never their tokens)")
    def get(self, request, story):
        access = access_story(request.user, story, owner=True)
        qs = Invite.objects.filter(story=access.story).select_related("created_by")
        return paginate(self, request, qs, invite_json, ordering="-pk")

    @extend_schema(request=InviteInSerializer, responses={201: InviteCreatedSerializer},
                   summary="Story owner: a new invite link (its token is in this answer only)")
    def post(self, request, story):
        access = access_story(request.user, story, owner=True)
        data = json_object(InviteInSerializer, request)  # the service checks the values
        invite, raw = services.invite_create(
            story=access.story, by=request.user, role=data.get("role"),
            expires_in_hours=data.get("expires_in_hours", services.INVITE_DEFAULT_HOURS))
        return Response({**invite_json(invite), "token": raw, "url": reverse("invite", args=[raw])},
                        status=status.HTTP_201_CREATED)


class InviteDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Story owner: revoke an invite link")
    def delete(self, request, story, invite):
        access = access_story(request.user, story, owner=True)
        found = Invite.objects.filter(story=access.story, pk=invite).first()
        if found is None:
            raise NotFound(f"No invite {invite} in story '{access.story.slug}'.")
        services.invite_revoke(invite=found, by=request.user)
        return Response(status=204)


class InviteAcceptView(APIView):
    throttle_scope = "write"  # per caller: tokens cannot be tried quickly

    @extend_schema(request=None, responses={200: InviteAcceptedSerializer, 201: InviteAcceptedSerializer},
                   summary="Accept an invite link: join its story with its role (a role is never lowered)")
    def post(self, request, token):
        validated(serializers.Serializer, request)  # no body, or {}
        participant, created = services.invite_accept(raw_token=token, user=request.user)
        return Response({**participant_json(participant), "story": participant.story.slug},
                        status=201 if created else 200)


class StoryExportView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The whole story as one JSON document")},
                   summary="Story owner: everything, for the audit trail")
    def get(self, request, story):
        access = access_story(request.user, story, owner=True)
        response = StreamingHttpResponse(_json_chunks(selectors.story_export(access.story)),
                                         content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{access.story.slug}.json"'
        return response


def _json_chunks(export):
    """Stream {"story": ..., "messages": [...]} without holding every message in memory."""
    first = True
    yield "{"
    for key, value in export:
        yield ("" if first else ",") + json.dumps(key) + ":"
        first = False
        if isinstance(value, (list, dict, str, int, float, bool)) or value is None:
            yield json.dumps(value, ensure_ascii=False)
        else:  # a generator of items, streamed as an array
            yield "["
            for i, item in enumerate(value):
                yield ("," if i else "") + json.dumps(item, ensure_ascii=False)
            yield "]"
    yield "}"


# --- Documents (co-editing) ---------------------------------------------------------------------

class DocumentInSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[a-z0-9][a-z0-9._-]{0,63}$", error_messages={
        "invalid": "Use 1-64 lowercase letters, digits, '.', '_' or '-'."})
    title = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    fork_of = serializers.CharField(required=False, max_length=64)
    at_revision = serializers.IntegerField(required=False, min_value=0)


class DocumentSerializer(serializers.Serializer):
    story = serializers.CharField()
    name = serializers.CharField()
    title = serializers.CharField()
    text = serializers.CharField()
    revision = serializers.IntegerField(help_text="The revision of `text` (the one asked for, or the current one)")
    current_revision = serializers.IntegerField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    forked_from = serializers.CharField(allow_null=True)
    forked_at_revision = serializers.IntegerField(allow_null=True)


class DocumentOpsInSerializer(serializers.Serializer):
    """One of: edits (with base_revision), find/replace (with base_revision), append."""
    base_revision = serializers.IntegerField(required=False)
    edits = serializers.ListField(child=serializers.DictField(), required=False,
                                  help_text='[{"from": a, "to": b, "insert": "..."}], positions in characters')
    find = serializers.CharField(required=False)
    replace = serializers.CharField(required=False, allow_blank=True)
    append = serializers.CharField(required=False)
    client_id = serializers.CharField(required=False)


class DocumentListView(APIView):
    @extend_schema(responses=DocumentSerializer(many=True))
    def get(self, request, story):
        access = access_story(request.user, story)
        qs = Document.objects.filter(story=access.story).select_related("story", "created_by", "forked_from")
        return paginate(self, request, qs, documents.document_json)

    @extend_schema(request=DocumentInSerializer, responses={201: DocumentSerializer},
                   summary="Create a document, or fork one at a revision")
    def post(self, request, story):
        access = access_story(request.user, story, write=True)
        data = validated(DocumentInSerializer, request)
        fork_of = selectors.get_document(access.story, data.pop("fork_of")) if "fork_of" in data else None
        if fork_of is None and "at_revision" in data:
            raise Invalid("'at_revision' goes with 'fork_of'.", details={"at_revision": "needs fork_of"})
        doc = documents.document_create(story=access.story, creator=request.user, fork_of=fork_of, **data)
        return Response(documents.document_json(doc), status=201)


class DocumentDetailView(APIView):
    @extend_schema(parameters=[OpenApiParameter("revision", int, description="the text at this revision")],
                   responses=DocumentSerializer)
    def get(self, request, story, doc):
        access = access_story(request.user, story)
        revision = request.query_params.get("revision")
        if revision in (None, ""):
            return Response(documents.document_json(selectors.get_document(access.story, doc)))
        revision = parse_int(revision, "revision")
        document = selectors.get_document(access.story, doc, text=False)  # the current text is not read for an old revision
        return Response(documents.document_json(document, text=documents.text_at(document, revision),
                                                revision=revision))


DOC_OPS_IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Repeat an edit safely: same key and body -> 200 and the change first made; another body -> 409. "
                "Scoped to the sender and the document.")


class DocumentOpsView(APIView):
    def get_throttles(self):
        self.throttle_scope = "post" if self.request.method == "POST" else "read"
        return super().get_throttles()

    @extend_schema(parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int)],
                   responses={200: OpenApiResponse(description='{"results": [changes], "revision": R}')},
                   summary="The change log after a revision")
    def get(self, request, story, doc):
        access = access_story(request.user, story)
        document = selectors.get_document(access.story, doc)
        after = parse_int(request.query_params.get("after"), "after", default=0)
        limit = min(parse_int(request.query_params.get("limit"), "limit", minimum=1, default=1000), 1000)
        return Response({"results": documents.changes_after(document, after, limit), "revision": document.revision})

    @extend_schema(request=DocumentOpsInSerializer, parameters=[DOC_OPS_IDEMPOTENCY_HEADER],
                   responses={200: OpenApiResponse(description='{"revision": R, "change": {...}}')},
                   summary="Edit (positions in characters), find/replace, or append")
    def post(self, request, story, doc):
        access = access_story(request.user, story, write=True)
        document = selectors.get_document(access.story, doc)
        from suggestions.services import edit_or_suggest, suggestion_json  # suggestions build on documents

        change, suggestion = edit_or_suggest(doc=document, author=request.user, body=request.data,
                                             idempotency_key=idempotency_key(request))
        if suggestion is not None:  # the story has agents suggest: nothing changed, a person decides
            return Response({"revision": None, "change": None, "suggestion": suggestion_json(suggestion)},
                            status=202)
        return Response({"revision": change.revision, "change": documents.change_json(change, request.user)})
