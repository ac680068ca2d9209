"""Browser pages: the lobby, the story room, the agent monitor, and the invite-link page.

The server renders the shell of each page and hands the live part its starting state as JSON
(`json_script`, never inline script); the bundle (`static/js/mythline.js`, built from
`frontend/src/`) takes it from there over the one shared socket. Everything users and agents wrote
travels as JSON data and is rendered as text.
"""
from datetime import timedelta

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, Q
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from agents.services import agent_json
from messaging.models import Channel, Message
from messaging.policies import readable_channels
from messaging.selectors import channels_for_reader, inbox_rows
from messaging.serializers import channel_json, iso, sender_json
from mythline_site.errors import MythlineError, NotFound, RateLimited
from mythline_site.throttling import check_rate
from stories.models import SLUG_RE, Document, Participant, Story
from stories.policies import access_story, role_subquery
from stories.selectors import live_invite
from stories.services import ROLE_RANK, ROOM, invite_accept, story_create, story_join

# Built-in message types the compose box offers (SPEC 6); `vote` is cast from a proposal's card.
COMPOSE_TYPES = ["text", "narration", "dialogue", "scene_plan", "feedback", "query", "proposal", "decision",
                 "task_update"]
MONITOR_WINDOW = timedelta(minutes=5)


class StoryCreateForm(forms.Form):
    title = forms.CharField(max_length=200)
    slug = forms.RegexField(SLUG_RE, max_length=64, help_text="Lowercase letters, digits and '-'; in the URL.",
                            error_messages={"invalid": "Use lowercase letters, digits or '-', starting with a letter "
                                                       "or digit."})
    premise = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    visibility = forms.ChoiceField(choices=Story.Visibility.choices, initial=Story.Visibility.PUBLIC)


def _story_or_404(request, slug):
    try:
        return access_story(request.user, slug)
    except NotFound:
        raise Http404 from None


def _no_story(request):
    """The page for a story the signed-in user may not know of: the same page (and status 404)
    whether it does not exist or is private without them, so it tells nothing."""
    return render(request, "stories/no_access.html", {}, status=404)


@login_required
@require_http_methods(["GET", "POST"])
def lobby(request):
    form = StoryCreateForm(prefix="new")
    if request.method == "POST":
        if request.POST.get("action") == "join":
            access = _story_or_404(request, request.POST.get("story", ""))
            if access.story.visibility != Story.Visibility.PUBLIC and access.role is None:
                raise Http404
            story_join(story=access.story, user=request.user)
            return redirect("story-room", access.story.slug)
        form = StoryCreateForm(request.POST, prefix="new")
        if form.is_valid():
            try:
                story = story_create(owner=request.user, by=request.user, **form.cleaned_data)
            except MythlineError as error:
                form.add_error("slug" if (error.details or {}).get("slug") else None, error.message)
            else:
                return redirect("story-room", story.slug)
    stories = (Story.objects.select_related("owner").annotate(caller_role=role_subquery(request.user))
               .filter(Q(visibility=Story.Visibility.PUBLIC)
                       | Q(pk__in=Participant.objects.filter(user=request.user).values("story_id")))
               .order_by("-created_at")[:200])
    unread = {}
    for row in inbox_rows(request.user):
        unread[row["story"]] = unread.get(row["story"], 0) + row["unread"]
    counts = {row["story_id"]: row for row in Participant.objects.filter(story__in=[s.pk for s in stories])
              .values("story_id").annotate(n=Count("pk"), agents=Count("pk", filter=Q(user__is_agent=True)))}
    for s in stories:
        row = counts.get(s.pk, {})
        s.n_participants = row.get("n", 0)
        s.n_agents = row.get("agents", 0)
        s.n_people = s.n_participants - s.n_agents  # humans: agents are counted on their own
        s.unread = unread.get(s.slug, 0)
    mine = [s for s in stories if s.caller_role]
    others = [s for s in stories if not s.caller_role]
    return render(request, "stories/lobby.html", {"mine": mine, "others": others, "form": form,
                                                  "config": {"page": "lobby"}})


def _documents(story):
    return [{"name": d.name, "title": d.title, "revision": d.revision,
             "forked_from": d.forked_from.name if d.forked_from_id else None,
             "forked_at_revision": d.forked_at_revision}
            for d in Document.objects.filter(story=story).select_related("forked_from").order_by("created_at", "id")]


def _agents(story):
    rows = (Participant.objects.filter(story=story, user__is_agent=True)
            .select_related("user__agent_profile").order_by("user__username"))
    return [agent_json(p.user) for p in rows if hasattr(p.user, "agent_profile")]


def _page_user(user):
    return {**sender_json(user), "is_staff": user.is_staff}


@login_required
def room(request, story):
    try:
        access = access_story(request.user, story)
    except NotFound:
        return _no_story(request)
    story = access.story
    user = request.user
    cursors = {row["channel"]: row for row in inbox_rows(user) if row["story"] == story.slug}
    channels = []
    for channel in channels_for_reader(user, story):
        data = channel_json(channel, story_slug=story.slug)
        row = cursors.get(channel.name)
        data["read_seq"] = row["read_seq"] if row else channel.last_seq
        data["unread"] = row["unread"] if row else 0
        data["readable"] = True
        data["can_manage"] = access.is_owner or channel.created_by_id == user.pk
        channels.append(data)
    readable = {c["name"] for c in channels}
    agents = _agents(story)
    if access.can_write:
        # Editors post to every agent's inbox even though only the agent (and the owner) reads it.
        for channel in (Channel.objects.filter(story=story, kind=Channel.Kind.INBOX).exclude(name__in=readable)
                        .select_related("story", "created_by", "inbox_agent").order_by("name")):
            data = channel_json(channel, story_slug=story.slug)
            data.update(read_seq=0, unread=0, readable=False, can_manage=False)
            channels.append(data)
    requested = request.GET.get("channel") or ""
    initial = requested if requested in readable else ("general" if "general" in readable else
                                                        next(iter(sorted(readable)), None))
    config = {
        "page": "room",
        "story": {"slug": story.slug, "title": story.title, "premise": story.premise,
                  "visibility": story.visibility, "owner": story.owner.username},
        "me": _page_user(user),
        "role": access.role,
        "can_write": access.can_write,
        "is_owner": access.is_owner,
        "channels": channels,
        "channel": initial,
        "documents": _documents(story),
        "agents": agents,
        "compose_types": COMPOSE_TYPES,
        "csrf_token": get_token(request),
        "urls": {"lobby": reverse("lobby"), "monitor": reverse("agent-monitor", args=[story.slug]),
                 "room": reverse("story-room", args=[story.slug])},
    }
    return render(request, "stories/room.html", {"story": story, "role": access.role, "config": config,
                                                 "agents": agents})


@login_required
def agent_monitor(request, story):
    try:
        access = access_story(request.user, story)
    except NotFound:
        return _no_story(request)
    story = access.story
    user = request.user
    agents = _agents(story)
    channels = list(readable_channels(user, story=story).filter(archived_at__isnull=True)
                    .values_list("name", "kind", "last_seq"))
    since = timezone.now() - MONITOR_WINDOW
    recent = {a["username"]: [] for a in agents}
    rows = (Message.objects.filter(story=story, created_at__gte=since, sender__is_agent=True,
                                   channel__in=readable_channels(user, story=story))
            .values_list("sender__username", "created_at").order_by("created_at")[:5000])
    for username, created_at in rows:
        recent.setdefault(username, []).append(iso(created_at))
    last_message = {}
    for username, created_at in (Message.objects.filter(story=story, sender__is_agent=True,
                                                        channel__in=readable_channels(user, story=story))
                                 .values("sender__username").annotate(last=Max("created_at"))
                                 .values_list("sender__username", "last")):
        last_message[username] = iso(created_at)
    config = {
        "page": "monitor",
        "story": {"slug": story.slug, "title": story.title},
        "me": _page_user(user),
        "agents": agents,
        "recent": recent,
        "last_message": last_message,
        "channels": [{"name": n, "kind": k, "last_seq": s} for n, k, s in channels],
        "room": ROOM if any(n == ROOM for n, _, _ in channels) else None,
        "csrf_token": get_token(request),
        "urls": {"room": reverse("story-room", args=[story.slug]), "lobby": reverse("lobby")},
    }
    return render(request, "stories/agents.html", {"story": story, "agents": agents, "config": config})


@login_required
@require_http_methods(["GET", "POST"])
def invite(request, token):
    """An invite link: the story's title and the role offered, with a button to join (a POST here,
    which accepts it and opens the room). A link that is unknown, expired or revoked gets the same
    page, 404. Each try counts against the caller's `write` rate, as the API's accept does."""
    try:
        check_rate("write", f"u{request.user.pk}")
        if request.method == "POST":
            participant, _ = invite_accept(raw_token=token, user=request.user)
            return redirect("story-room", participant.story.slug)
        found = live_invite(token)
    except NotFound as error:
        return render(request, "stories/invite.html", {"message": error.message}, status=404)
    except MythlineError as error:  # an agent (403), too many tries (429)
        limited = isinstance(error, RateLimited)
        response = render(request, "stories/invite.html", {
            "heading": "Too many tries" if limited else "You cannot join by link",
            "message": f"Wait {error.retry_after} s and try again." if limited else error.message},
            status=error.status)
        if limited:
            response["Retry-After"] = str(error.retry_after)
        return response
    current = (Participant.objects.filter(story=found.story, user=request.user).values_list("role", flat=True)
               .first())
    return render(request, "stories/invite.html", {
        "invite": found, "story": found.story, "role": found.role, "current_role": current,
        "already_in": current is not None and ROLE_RANK[current] >= ROLE_RANK[found.role]})
