"""Reads for stories."""
from django.utils import timezone

from accounts.models import hash_token
from audit.selectors import rights_event_json, story_rights_events
from messaging.models import Channel, Membership, Message
from messaging.serializers import channel_json, message_json
from mythline_site.errors import NotFound
from stories.models import Document, Invite, Participant, Story
from stories.serializers import invite_json, participant_json, story_json

# The same words for an unknown, an expired and a revoked link: the answer tells nothing more.
INVITE_NOT_VALID = "This invite link is not valid any more; ask the story's owner for a new one."
INVITE_TOKEN_MAX_LENGTH = 128  # a raw token is 32 characters; anything much longer is not one


def story_export(story: Story):
    """The story as (key, value) pairs; `messages` is an iterator so the export streams.

    Every message of every channel, audience-restricted ones included: the export is the
    owner's audit trail.
    """
    yield "format", "mythline.export/1"
    yield "story", story_json(story)
    yield "participants", [participant_json(p) for p in
                           Participant.objects.filter(story=story).select_related("user")]
    channels = list(Channel.objects.filter(story=story).select_related("created_by", "inbox_agent").order_by("name"))
    members = {}
    for m in Membership.objects.filter(channel__story=story).select_related("user").order_by("joined_at", "id"):
        members.setdefault(m.channel_id, []).append({"username": m.user.username, "role": m.role})
    yield "channels", [{**channel_json(c, story_slug=story.slug), "members": members.get(c.pk, [])} for c in channels]
    names = {c.pk: c.name for c in channels}
    messages = (Message.objects.filter(story=story).select_related("sender")
                .order_by("channel_id", "seq").iterator(chunk_size=1000))
    yield "messages", (message_json(m, story_slug=story.slug, channel_name=names[m.channel_id]) for m in messages)
    yield "documents", (_document_export(doc) for doc in
                        Document.objects.filter(story=story).select_related("story", "created_by", "forked_from"))
    from outline.selectors import outline_json  # the outline, in order, ranges mapped to the current text
    yield "outline", outline_json(story)
    from versions.selectors import story_versions_json  # every document's named revisions (versions/)
    yield "versions", story_versions_json(story)
    from suggestions.models import Suggestion  # every suggestion, decided ones too, as stored
    from suggestions.services import suggestion_json
    suggestions = (Suggestion.objects.filter(document__story=story)
                   .select_related("document__story", "author", "decided_by").order_by("document_id", "pk"))
    yield "suggestions", (suggestion_json(x) for x in suggestions.iterator(chunk_size=500))
    from comments.models import CommentThread  # every thread with all its comments, resolved ones too
    from comments.services import thread_json
    threads = (CommentThread.objects.filter(document__story=story)
               .select_related("document__story", "created_by", "resolved_by")
               .prefetch_related("comments__author").order_by("document_id", "pk"))
    yield "comments", (thread_json(t) for t in threads.iterator(chunk_size=200))
    from writers.selectors import crew_json, crew_of  # the writers' room, if the story has one
    yield "crew", crew_json(story, crew_of(story))
    from bible.selectors import entries, entry_json  # every entry with all its progressions, by name
    yield "bible", (entry_json(e, story_slug=story.slug) for e in entries(story).iterator(chunk_size=500))
    now = timezone.now()
    yield "invites", [invite_json(invite, now=now) for invite in story_invites(story)]
    # The audit log of rights in the story (audit/), oldest first.
    yield "audit", (rights_event_json(e) for e in story_rights_events(story).iterator(chunk_size=1000))



def _document_export(doc: Document) -> dict:
    from stories.documents import changes_after, document_json

    history = []
    after = 0
    while True:  # the whole log, page by page
        page = changes_after(doc, after)
        history += page
        if len(page) < 1000:
            break
        after = page[-1]["revision"]
    return {**document_json(doc), "changes": history}


def get_document(story: Story, name, *, text: bool = True) -> Document:
    """The story's document `name`, or NotFound (also for a name that is not a string). With who
    created it and what it was forked from, for stories.documents.document_json, in the same query;
    `doc.story` is `story`. `text=False` leaves the current text unread (an old revision's is built
    from the log)."""
    doc = None
    if isinstance(name, str):
        qs = Document.objects.select_related("created_by", "forked_from").defer("forked_from__text") \
            .filter(story=story, name=name)
        doc = (qs if text else qs.defer("text")).first()
    if doc is None:
        raise NotFound(f"No document '{name}' in story '{story.slug}'.")
    doc.story = story
    return doc


def story_invites(story: Story):
    """Every invite link of the story, live and past, newest first."""
    return Invite.objects.filter(story=story).select_related("created_by").order_by("-created_at", "-id")


def live_invites(story: Story, now=None):
    """The story's invite links that still work (neither expired nor revoked)."""
    return Invite.objects.filter(story=story, revoked_at__isnull=True, expires_at__gt=now or timezone.now())


def invites_with_token(raw_token):
    """The live invite link (at most one) whose raw token this is, as a queryset: empty for a token
    that is unknown, expired, revoked or not even shaped like one."""
    if not isinstance(raw_token, str) or not 0 < len(raw_token) <= INVITE_TOKEN_MAX_LENGTH:
        return Invite.objects.none()
    return Invite.objects.filter(key_hash=hash_token(raw_token), revoked_at__isnull=True,
                                 expires_at__gt=timezone.now())


def live_invite(raw_token) -> Invite:
    """The live invite link with this raw token, or the one NotFound for unknown, expired and revoked
    links alike (the answer does not tell which)."""
    invite = invites_with_token(raw_token).select_related("story", "created_by").first()
    if invite is None:
        raise NotFound(INVITE_NOT_VALID)
    return invite
