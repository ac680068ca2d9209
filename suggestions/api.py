"""REST views of suggestions (docs/protocol.md, "Suggestions"). Views parse, check access, call a service."""
from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.api import idempotency_key
from mythline_site.errors import Invalid, NotFound
from stories.models import Document
from stories.policies import access_story
from stories.selectors import get_document
from suggestions import selectors, services
from suggestions.models import Suggestion

User = get_user_model()
STATUSES = selectors.STATUSES


class SuggestionEditSerializer(serializers.Serializer):
    to = serializers.IntegerField(min_value=0)
    insert = serializers.CharField(allow_blank=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField(min_value=0)
        return fields


class SuggestionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    story = serializers.CharField()
    document = serializers.CharField()
    author = serializers.CharField()
    author_kind = serializers.CharField(help_text="human or agent")
    note = serializers.CharField()
    status = serializers.ChoiceField(STATUSES)
    revision = serializers.IntegerField(help_text="The revision its edits count in (the current one while open)")
    edits = SuggestionEditSerializer(many=True, allow_null=True, help_text="In characters of the text at `revision`")
    edits_utf16 = serializers.ListField(child=serializers.ListField(), help_text="[from, to, insert] in UTF-16 units")
    replaced = serializers.ListField(child=serializers.CharField(), help_text="The text each edit replaced")
    stale_revision = serializers.IntegerField(allow_null=True)
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    accepted_revision = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    version = serializers.IntegerField()


class SuggestionInSerializer(serializers.Serializer):
    base_revision = serializers.IntegerField(required=False)
    edits = SuggestionEditSerializer(many=True, required=False)
    find = serializers.CharField(required=False)
    replace = serializers.CharField(required=False, allow_blank=True)
    append = serializers.CharField(required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_NOTE)


class DecisionSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, help_text="The version you read (409 if it changed)")


class DecideAllSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(services.DECISIONS)
    author = serializers.CharField(required=False, help_text="Only this author's open suggestions")


def _suggestion(doc: Document, pk) -> Suggestion:
    s = Suggestion.objects.select_related("author", "decided_by", "document__story").filter(document=doc, pk=pk).first()
    if s is None:
        raise NotFound(f"No suggestion {pk} on '{doc.name}'.")
    return s


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise Invalid("The body must be a JSON object.")
    return request.data


class SuggestionListView(APIView):
    @extend_schema(parameters=[OpenApiParameter("status", str, enum=STATUSES, required=False)],
                   responses=SuggestionSerializer(many=True),
                   summary="The document's suggestions (open ones moved to the current revision)")
    def get(self, request, story, doc):
        access = access_story(request.user, story)
        document = get_document(access.story, doc)
        return Response(selectors.suggestions_json(document, request.query_params.get("status")))

    @extend_schema(request=SuggestionInSerializer, responses={201: SuggestionSerializer},
                   summary="Suggest an edit (as a REST edit: edits, find/replace or append; plus a note)")
    def post(self, request, story, doc):
        access = access_story(request.user, story, write=True)
        document = get_document(access.story, doc)
        s = services.suggestion_create(doc=document, author=request.user, body=_body(request),
                                       idempotency_key=idempotency_key(request))
        return Response(services.suggestion_json(s), status=status.HTTP_201_CREATED)


class SuggestionDetailView(APIView):
    @extend_schema(responses=SuggestionSerializer, summary="One suggestion")
    def get(self, request, story, doc, suggestion):
        access = access_story(request.user, story)
        document = get_document(access.story, doc)
        s = _suggestion(document, suggestion)
        services.refresh(document, [s])
        s.document = document
        return Response(services.suggestion_json(s))


class SuggestionDecisionView(APIView):
    decision = ""

    @extend_schema(request=DecisionSerializer, responses=SuggestionSerializer,
                   summary="A person accepts (a new revision) or rejects (kept in the history) a suggestion")
    def post(self, request, story, doc, suggestion):
        access = access_story(request.user, story, write=True)
        document = get_document(access.story, doc)
        s = _suggestion(document, suggestion)
        body = _body(request)
        unknown = sorted(set(body) - {"version"})
        if unknown:
            raise Invalid("The body has unknown fields.", details={k: "unknown field" for k in unknown})
        s = services.suggestion_decide(suggestion=s, by=request.user, decision=self.decision,
                                       version=body.get("version"))
        return Response(services.suggestion_json(s))


class SuggestionAcceptView(SuggestionDecisionView):
    decision = "accept"


class SuggestionRejectView(SuggestionDecisionView):
    decision = "reject"


class SuggestionDecideAllView(APIView):
    @extend_schema(request=DecideAllSerializer,
                   responses={200: OpenApiResponse(description='{"decision", "decided": [ids], "skipped": [ids]}')},
                   summary="Accept or reject every open suggestion (of one author)")
    def post(self, request, story, doc):
        access = access_story(request.user, story, write=True)
        document = get_document(access.story, doc)
        body = _body(request)
        unknown = sorted(set(body) - {"decision", "author"})
        if unknown:
            raise Invalid("The body has unknown fields.", details={k: "unknown field" for k in unknown})
        author = None
        if "author" in body:
            if not isinstance(body["author"], str):
                raise Invalid("author must be a username.", details={"author": "must be a username"})
            author = User.objects.filter(username=body["author"]).first()
            if author is None:
                raise Invalid(f"No user '{body['author']}'.", details={"author": "unknown user"})
        services.decidable(Suggestion(document=document), request.user)
        return Response(services.suggestions_decide_all(doc=document, by=request.user,
                                                        decision=body.get("decision"), author=author))


class MergeInSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_NOTE)


class ForkMergeView(APIView):
    @extend_schema(request=MergeInSerializer,
                   responses={201: OpenApiResponse(description='{"into", "from", "base_revision", "suggestions": '
                                                               '[suggestion, ...], "conflicts": [...]}')},
                   summary="Merge a fork back into its parent as suggestions people accept or reject")
    def post(self, request, story, doc):
        access = access_story(request.user, story, write=True)
        fork = get_document(access.story, doc)
        body = _body(request)
        unknown = sorted(set(body) - {"note"})
        if unknown:
            raise Invalid("The body has unknown fields.", details={k: "unknown field" for k in unknown})
        result = services.fork_merge(fork=fork, by=request.user, note=body.get("note") or "")
        return Response({**result, "suggestions": [services.suggestion_json(s) for s in result["suggestions"]]},
                        status=status.HTTP_201_CREATED)
