"""Reads for stories."""
from messaging.models import Channel, Membership, Message
from messaging.serializers import channel_json, message_json
from stories.models import Document, Participant, Story
from stories.serializers import participant_json, story_json


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
