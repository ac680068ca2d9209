import os

from django.conf import settings
from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import views as account_views
from bible import api as bible_api
from exports import api as exports_api
from agents.api import AgentStatusView
from messaging import api as messaging_api
from messaging.asyncapi import asyncapi_view
from messaging.sse import channel_events
from mythline_site import openapi  # noqa: F401 - registers the bearer scheme with drf-spectacular
from mythline_site.health import healthz
from mythline_site.metrics import metrics_view
from notifications import urls as notification_urls
from outline import api as outline_api
from presence.api import StoryPresenceView
from search.api import SearchView
from stories import api as stories_api
from stories import views as story_views
from streaming import urls as stream_urls
from suggestions import api as suggestions_api
from comments import api as comments_api
from writers import api as writers_api
from versions import api as versions_api
from webhooks import urls as webhook_urls

S = "api/stories/<str:story>"
C = f"{S}/channels/<str:channel>"

api_urls = [
    path("api/stories", stories_api.StoryListView.as_view(), name="story-list"),
    path(f"{S}", stories_api.StoryDetailView.as_view(), name="story-detail"),
    path(f"{S}/join", stories_api.StoryJoinView.as_view(), name="story-join"),
    path(f"{S}/participants", stories_api.ParticipantListView.as_view(), name="participant-list"),
    path(f"{S}/participants/<str:username>", stories_api.ParticipantDetailView.as_view(), name="participant-detail"),
    path(f"{S}/export", stories_api.StoryExportView.as_view(), name="story-export"),
    path(f"{S}/invites", stories_api.InviteListView.as_view(), name="invite-list"),
    path(f"{S}/invites/<int:invite>", stories_api.InviteDetailView.as_view(), name="invite-detail"),
    path("api/invites/<str:token>/accept", stories_api.InviteAcceptView.as_view(), name="invite-accept"),
    path(f"{S}/presence", StoryPresenceView.as_view(), name="story-presence"),
    path(f"{S}/route", messaging_api.RouteView.as_view(), name="story-route"),
    path(f"{S}/documents", stories_api.DocumentListView.as_view(), name="document-list"),
    path(f"{S}/documents/<str:doc>", stories_api.DocumentDetailView.as_view(), name="document-detail"),
    path(f"{S}/documents/<str:doc>/ops", stories_api.DocumentOpsView.as_view(), name="document-ops"),
    path(f"{S}/documents/<str:doc>/versions", versions_api.VersionListView.as_view(), name="document-versions"),
    path(f"{S}/documents/<str:doc>/versions/<int:version>", versions_api.VersionDetailView.as_view(),
         name="document-version"),
    path(f"{S}/documents/<str:doc>/compare", versions_api.CompareView.as_view(), name="document-compare"),
    path(f"{S}/documents/<str:doc>/restore", versions_api.RestoreView.as_view(), name="document-restore"),
    path(f"{S}/documents/<str:doc>/export", exports_api.DocumentExportView.as_view(), name="document-export"),
    path(f"{S}/export/book", exports_api.BookExportView.as_view(), name="story-export-book"),
    path(f"{S}/bible", bible_api.BibleListView.as_view(), name="bible-list"),
    path(f"{S}/bible/<str:entry>", bible_api.BibleEntryView.as_view(), name="bible-entry"),
    path(f"{S}/bible/<str:entry>/progressions", bible_api.ProgressionListView.as_view(), name="bible-progressions"),
    path(f"{S}/bible/<str:entry>/progressions/<int:progression>", bible_api.ProgressionDetailView.as_view(),
         name="bible-progression"),
    path(f"{S}/outline", outline_api.OutlineView.as_view(), name="outline"),
    path(f"{S}/outline/<int:scene>", outline_api.SceneView.as_view(), name="outline-scene"),
    path(f"{S}/outline/<int:scene>/move", outline_api.SceneMoveView.as_view(), name="outline-scene-move"),
    path(f"{S}/crew", writers_api.CrewView.as_view(), name="story-crew"),
    path(f"{S}/documents/<str:doc>/suggestions", suggestions_api.SuggestionListView.as_view(), name="suggestion-list"),
    path(f"{S}/documents/<str:doc>/merge", suggestions_api.ForkMergeView.as_view(), name="document-merge"),
    path(f"{S}/documents/<str:doc>/suggestions/decide", suggestions_api.SuggestionDecideAllView.as_view(),
         name="suggestion-decide-all"),
    path(f"{S}/documents/<str:doc>/suggestions/<int:suggestion>", suggestions_api.SuggestionDetailView.as_view(),
         name="suggestion-detail"),
    path(f"{S}/documents/<str:doc>/suggestions/<int:suggestion>/accept",
         suggestions_api.SuggestionAcceptView.as_view(), name="suggestion-accept"),
    path(f"{S}/documents/<str:doc>/suggestions/<int:suggestion>/reject",
         suggestions_api.SuggestionRejectView.as_view(), name="suggestion-reject"),
    path(f"{S}/documents/<str:doc>/comments", comments_api.ThreadListView.as_view(), name="comment-list"),
    path(f"{S}/documents/<str:doc>/comments/<int:thread>", comments_api.ThreadDetailView.as_view(),
         name="comment-detail"),
    path(f"{S}/documents/<str:doc>/comments/<int:thread>/replies", comments_api.ReplyView.as_view(),
         name="comment-replies"),
    path(f"{S}/documents/<str:doc>/comments/<int:thread>/resolve", comments_api.ResolveView.as_view(),
         name="comment-resolve"),
    path(f"{S}/channels", messaging_api.ChannelListView.as_view(), name="channel-list"),
    path(f"{C}", messaging_api.ChannelDetailView.as_view(), name="channel-detail"),
    path(f"{C}/members", messaging_api.MemberListView.as_view(), name="member-list"),
    path(f"{C}/members/<str:username>", messaging_api.MemberDetailView.as_view(), name="member-detail"),
    path(f"{C}/messages", messaging_api.MessageListView.as_view(), name="message-list"),
    path(f"{C}/messages/batch", messaging_api.MessageBatchView.as_view(), name="message-batch"),
    path(f"{C}/ack", messaging_api.AckView.as_view(), name="channel-ack"),
    path(f"{C}/events", channel_events, name="channel-events"),
    path("api/inbox", messaging_api.InboxView.as_view(), name="inbox"),
    path("api/messages/<str:message_id>", messaging_api.MessageDetailView.as_view(), name="message-detail"),
    path("api/messages/<str:message_id>/thread", messaging_api.ThreadView.as_view(), name="message-thread"),
    path("api/activity", messaging_api.ActivityView.as_view(), name="activity"),
    path("api/search", SearchView.as_view(), name="search"),
    path("api/agents/me/status", AgentStatusView.as_view(), name="agent-status"),
    *notification_urls.urlpatterns,
    *webhook_urls.urlpatterns,
    *stream_urls.urlpatterns,
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/asyncapi.json", asyncapi_view, name="asyncapi"),
]

urlpatterns = [
    *api_urls,
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    # The admin's password change, with the old password under the sign-in limits (accounts/views.py).
    path("admin/password_change/", account_views.admin_password_change),
    path("admin/", admin.site.urls),
    # Only the account pages the site uses; password change is the admin's, password reset is off
    # unless MYTHLINE_PASSWORD_RESET=1 (it sends mail: docs/deploy.md "Sign-in limits").
    path("accounts/login/", account_views.signin, name="login"),  # Django's LoginView behind the sign-in limits
    path("accounts/signup/", account_views.signup, name="signup"),
    path("accounts/logout/", account_views.signout, name="logout"),
    path("", story_views.lobby, name="lobby"),
    path("stories/<str:story>/", story_views.room, name="story-room"),
    path("stories/<str:story>/agents/", story_views.agent_monitor, name="agent-monitor"),
    path("invite/<str:token>/", story_views.invite, name="invite"),
]

if settings.MYTHLINE_PASSWORD_RESET:
    from django.contrib.auth import views as auth_views

    urlpatterns += [
        path("accounts/password_reset/", account_views.ThrottledPasswordResetView.as_view(), name="password_reset"),
        path("accounts/password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
        path("accounts/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(),
             name="password_reset_confirm"),
        path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    ]

if os.environ.get("MYTHLINE_BENCH_BASELINE") == "1":  # bench/ingest.py, bench/fanout.py only: token-less floors to compare with
    from bench.baseline import baseline_post

    urlpatterns.append(path("bench/baseline/<int:channel_id>", baseline_post, name="bench-baseline"))

    from bench.baseline_consumer import baseline_publish  # bench/fanout.py: group_send from a bare view

    urlpatterns.append(path("bench/publish", baseline_publish, name="bench-publish"))
