"""The REST routes of streaming: full paths under api/, spliced into mythline_site/urls.py's api_urls
(so the access matrices see each one)."""
from django.urls import path

from streaming import api

C = "api/stories/<str:story>/channels/<str:channel>"

urlpatterns = [
    path(f"{C}/streams", api.StreamListView.as_view(), name="stream-list"),
    path("api/streams/<str:stream_id>/append", api.AppendView.as_view(), name="stream-append"),
    path("api/streams/<str:stream_id>/complete", api.CompleteView.as_view(), name="stream-complete"),
    path("api/streams/<str:stream_id>/cancel", api.CancelView.as_view(), name="stream-cancel"),
]
