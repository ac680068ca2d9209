"""The REST routes of streaming: full paths under api/, spliced into mythline_site/urls.py's api_urls
(so the access matrices see each one)."""

urlpatterns = []
