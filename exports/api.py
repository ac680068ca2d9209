"""REST: a document, or the whole story, as a file to download (docs/export.md).

Whoever may read the story may export it (stories.policies.access_story: a private story's
outsiders get 404). Success is the file itself, not JSON; errors are the usual JSON envelope.
"""
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from exports import selectors
from exports.formats import FORMATS
from stories.policies import access_story


class JSONErrorsOnly(BaseContentNegotiation):
    """The file is the answer; DRF renders only errors, always as JSON. DRF's own negotiation
    would read `?format=` as a renderer's name and answer 404 for `md`."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


FORMAT = OpenApiParameter("format", str, enum=list(FORMATS), default=selectors.DEFAULT_FORMAT,
                          description="md (Markdown), txt (plain text) or epub")
FILE_RESPONSES = {
    (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="format=md"),
    (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="format=txt"),
    (200, "application/epub+zip"): OpenApiResponse(OpenApiTypes.BINARY, description="format=epub"),
}


def file_response(export: selectors.Export) -> HttpResponse:
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["X-Mythline-Revision"] = str(export.revision)
    return response


class ExportView(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONErrorsOnly
    throttle_scope = "read"


class DocumentExportView(ExportView):
    @extend_schema(parameters=[FORMAT, OpenApiParameter("revision", int, description="the text at this revision")],
                   responses=FILE_RESPONSES, summary="A document as a file: Markdown, plain text or EPUB")
    def get(self, request, story, doc):
        access = access_story(request.user, story)
        return file_response(selectors.document_export(access.story, doc, request.query_params.get("format"),
                                                       request.query_params.get("revision")))


class BookExportView(ExportView):
    @extend_schema(parameters=[FORMAT], responses=FILE_RESPONSES,
                   summary="The whole story as a book: its title, its premise, then `main`")
    def get(self, request, story):
        access = access_story(request.user, story)
        return file_response(selectors.book_export(access.story, request.query_params.get("format")))
