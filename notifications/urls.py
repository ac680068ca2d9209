"""The REST routes of notifications: full paths under api/, spliced into mythline_site/urls.py's api_urls
(so the access matrices see each one)."""
from django.urls import path

from notifications import api

urlpatterns = [
    path("api/notifications", api.NotificationListView.as_view(), name="notification-list"),
    path("api/notifications/read", api.MarkReadView.as_view(), name="notifications-read"),
]
