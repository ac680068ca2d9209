from rest_framework.pagination import CursorPagination


class ResultsCursorPagination(CursorPagination):
    """Lists other than messages: `{"results": [...], "next": url|null, "previous": url|null}`."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = "pk"


def paginate(view, request, queryset, render, *, ordering=None):
    paginator = ResultsCursorPagination()
    if ordering is not None:  # say "-pk": newest first
        paginator.ordering = ordering
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response([render(item) for item in page])
