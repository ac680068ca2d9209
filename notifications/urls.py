"""The REST routes of notifications: full paths under api/, spliced into mythline_site/urls.py's api_urls
(so the access matrices see each one)."""

urlpatterns = []
