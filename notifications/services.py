"""Writes of notifications: who a stored message notifies (`on_posted`), `notify`, `mark_read`.

Who gets one (docs/protocol.md, "Notifications"): the participants a message mentions (its
`mentions`, worked out when it was posted: notifications/mentions.py), the sender of the message it
replies to, and for a `decision` the story's owners; never the sender, never anyone who may not
read the message (its channel and its audience, as messaging.policies decides), and at most one
per user and message (a mention wins over a reply, a reply over a decision). Deletions and
reactions notify no one; an edit notifies only the people its new payload mentions who had no
notification of the message yet (kind mention, about the edited message).

An agent also gets a copy in its inbox (msg_type `mention`, sent by the one who notified it), so
an agent that reads only its inbox, or gets it by webhook, hears of it. The copy is stored with
messaging.services._insert in the post's transaction, without policies or budget; copies are
never themselves read for mentions (`on_posted` returns at once for them), so they cannot loop.
Nothing is copied for a message in an inbox: its agent reads it there already.

Live frames go out after the commit to the user's group (`user_group`), which every socket
subscribed to `notifications:<username>` joins.
"""
import uuid

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from messaging import events, frames
from messaging.models import Channel, Membership, Message, MessageRecipient
from messaging.policies import audience_includes, can_read_channel
from notifications import selectors
from notifications.mentions import MENTION_COPY_TYPE
from notifications.models import Notification
from stories.models import Participant

User = get_user_model()
MAX_EXCERPT = 200
_PRIORITY = {Notification.Kind.MENTION: 0, Notification.Kind.REPLY: 1, Notification.Kind.DECISION: 2}


def user_group(user_id: int) -> str:
    """The channel-layer group of a user's notification topic (messaging/topics/notifications.py)."""
    return f"notify.user.{user_id}"


def excerpt_of(payload) -> str:
    """The first text of a payload (its `text`, else its first string value), at most MAX_EXCERPT characters."""
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str):
        text = next((v for v in (payload or {}).values() if isinstance(v, str)), "") if isinstance(payload, dict) else ""
    text = " ".join(text.split())
    return text if len(text) <= MAX_EXCERPT else text[:MAX_EXCERPT - 1] + "…"


def _publish(user, notifications: list[Notification]) -> None:
    """The live frames of a user's new notifications, each with the user's unread count, sent once the
    transaction commits. The count is taken then too: its query runs after the post's write lock is
    released, and it counts what is committed."""
    topic = frames.notifications_topic(user.username)
    data = [selectors.notification_json(n) for n in notifications]

    def send():
        unread = selectors.unread_count(user)
        for item in data:
            frame = frames.notification(topic, item, unread)
            events.publish_on_commit(user_group(user.pk), {"type": "notification.event", "topic": topic,
                                                           "frame": events.dumps(frame)})

    transaction.on_commit(send, robust=True)


@transaction.atomic
def notify(*, user, kind: str, story=None, message: Message | None = None, actor=None, excerpt: str = "",
           channel: Channel | None = None) -> Notification:
    """Create one notification and send its live frame on commit (webhooks: "webhook.disabled").
    No access check here: the caller decides who may be told what."""
    if message is not None and channel is None:
        channel = message.channel
    if channel is not None and story is None:
        story = channel.story
    n = Notification.objects.create(user=user, kind=kind, story=story, channel=channel, message=message,
                                    actor=actor, excerpt=excerpt[:MAX_EXCERPT])
    _publish(user, [n])
    return n


def _readers(message: Message, channel: Channel, users: list) -> list:
    """Those of `users` who may read `message`: its channel (messaging.policies.can_read_channel)
    and its audience. Three queries for any number of users."""
    ids = [u.pk for u in users]
    roles = dict(Participant.objects.filter(story_id=channel.story_id, user_id__in=ids).values_list("user_id", "role"))
    member_roles = dict(Membership.objects.filter(channel_id=channel.pk, user_id__in=ids)
                        .values_list("user_id", "role"))
    recipients = None
    if message.audience_kind == Message.Audience.USERS:
        recipients = set(MessageRecipient.objects.filter(message_id=message.pk).values_list("user_id", flat=True))
    owner_id = channel.story.owner_id
    return [u for u in users
            if can_read_channel(channel, u.pk, roles.get(u.pk), member_roles.get(u.pk))
            and audience_includes(message, u, story_owner_id=owner_id, recipient_ids=recipients)]


def writes_on_post(*, msg_type: str, rel_type: str | None, mentions, replies: bool) -> bool:
    """Whether `on_posted` may write (or read) anything for a post with these fields; false only
    where it certainly does nothing. messaging's one-statement post asks it (`_plain`), and
    tests/messaging/test_post_path.py holds the two to each other."""
    if rel_type == Message.RelType.REDACT or rel_type == Message.RelType.REPLACE:
        return True
    if msg_type == MENTION_COPY_TYPE or rel_type == Message.RelType.ANNOTATE:
        return False
    return bool(mentions) or replies or msg_type == "decision"


def on_posted(message: Message, channel: Channel) -> None:
    """Called by messaging.services._insert in the post's transaction, once the message is stored."""
    if message.rel_type == Message.RelType.REDACT:
        _forget(message)
        return
    if message.msg_type == MENTION_COPY_TYPE or message.rel_type == Message.RelType.ANNOTATE:
        return
    about, payload = message, message.payload
    wanted: dict = {}  # user id or username -> kind
    if message.rel_type == Message.RelType.REPLACE:
        about, payload = message.relates_to, (message.payload or {}).get("payload")
        # The feed shows what the message says now, as every read of it does; so do agents' copies.
        excerpt = excerpt_of(payload)
        if Notification.objects.filter(message=about).exclude(excerpt=excerpt).update(excerpt=excerpt):
            _revise_copies(message, excerpt)
        for username in message.mentions or ():
            wanted.setdefault(username, Notification.Kind.MENTION)
    else:
        for username in message.mentions or ():
            wanted.setdefault(username, Notification.Kind.MENTION)
        if message.reply_to_id is not None:
            wanted.setdefault(message.reply_to.sender_id, Notification.Kind.REPLY)
        if message.msg_type == "decision":
            owners = set(Participant.objects.filter(story_id=channel.story_id, role=Participant.Role.OWNER)
                         .values_list("user_id", flat=True)) | {channel.story.owner_id}
            for user_id in sorted(owners):
                wanted.setdefault(user_id, Notification.Kind.DECISION)
    if not wanted:
        return
    names = [key for key in wanted if isinstance(key, str)]
    ids = [key for key in wanted if isinstance(key, int)]
    users, kinds = {}, {}
    for user in User.objects.filter(Q(username__in=names) | Q(pk__in=ids), is_active=True):
        kind = min((k for key, k in wanted.items() if key in (user.username, user.pk)), key=_PRIORITY.get)
        if user.pk != message.sender_id:
            users[user.pk], kinds[user.pk] = user, kind
    if about is not message and users:  # an edit: only those not yet notified of the message
        already = set(Notification.objects.filter(message=about, user_id__in=list(users))
                      .values_list("user_id", flat=True))
        users = {pk: u for pk, u in users.items() if pk not in already}
    readers = _readers(message, channel, list(users.values())) if users else []
    if not readers:
        return
    excerpt = excerpt_of(payload)
    created = Notification.objects.bulk_create([
        Notification(user=u, kind=kinds[u.pk], story_id=channel.story_id, channel=channel, message=about,
                     actor=message.sender, excerpt=excerpt, created_at=timezone.now()) for u in readers])
    for n in created:
        n.story, n.channel, n.actor = channel.story, channel, message.sender
        _publish(n.user, [n])
    if channel.kind != Channel.Kind.INBOX:
        # Inboxes in their agents' order, as `_revise_copies` and `_forget` take them: two posts
        # writing into the same two inboxes lock them in one order (no deadlock).
        for n in sorted(created, key=lambda n: n.user_id):
            if n.user.is_agent:
                _copy_to_inbox(n, about, channel)


def copy_id(about_id: uuid.UUID, agent_username: str) -> uuid.UUID:
    """The id of an agent's inbox copy of its notification about a message (one per agent and message)."""
    return uuid.uuid5(about_id, f"mention:{agent_username}")


def _copy_to_inbox(n: Notification, about: Message, channel: Channel) -> None:
    """The agent's copy of its notification, in its inbox (msg_type `mention`), sent by the notifier.
    In a savepoint: an inbox archived meanwhile (or a copy stored by a concurrent post) loses the
    copy, never the post that notified."""
    from messaging import services as messaging  # messaging.services calls this module
    from mythline_site.errors import Archived

    payload = {"message_id": str(about.pk), "story": channel.story.slug, "channel": channel.name, "kind": n.kind,
               "excerpt": n.excerpt}
    clean = messaging.CleanMessage(msg_type=MENTION_COPY_TYPE, payload=payload,
                                   encoded_payload=events.dumps(payload).encode(), id=None, reply_to=None,
                                   correlation_id=None, audience="all", audience_kind=Message.Audience.ALL)
    try:
        with transaction.atomic():
            inbox = messaging.inbox_ensure(story=channel.story, agent=n.user)
            if inbox.is_archived:
                return
            inbox.story = channel.story
            messaging._insert(inbox, n.actor, clean, copy_id(about.pk, n.user.username))
    except (Archived, IntegrityError):
        return


def _revise_copies(edit: Message, excerpt: str) -> None:
    """An edited message's new excerpt reaches each agent's inbox copy of its notification as an
    `edit` of the copy (by whoever edited the message, in the inbox's log), so the agent's socket,
    replay and webhook hear of it, as `_forget` tells them of a deletion; only for agents that may
    still read the message. A copy deleted already, or in an archived inbox, is left as it is."""
    from messaging import services as messaging  # messaging.services calls this module
    from mythline_site.errors import Archived, Invalid

    about = edit.relates_to
    agents = [n.user for n in Notification.objects.select_related("user").filter(message_id=about.pk,
                                                                                 user__is_agent=True)]
    # Only to agents that may still read the message: the new text is news to the others (a
    # private channel they left, a story they left), as the feed hides it from them.
    readers = _readers(about, about.channel, agents) if agents else []
    copies = Message.objects.select_related("channel__story").filter(
        pk__in=[copy_id(about.pk, agent.username) for agent in readers], msg_type=MENTION_COPY_TYPE,
        rel_type__isnull=True)
    for copy in sorted(copies, key=lambda copy: copy.channel.inbox_agent_id or 0):  # as _copy_to_inbox
        payload = {"payload": {**copy.payload, "excerpt": excerpt}}
        clean = messaging.CleanMessage(msg_type="edit", payload=payload, encoded_payload=events.dumps(payload).encode(),
                                       id=None, reply_to=None, correlation_id=None, audience=copy.audience,
                                       audience_kind=copy.audience_kind)
        clean.relates_to, clean.rel_type = copy, Message.RelType.REPLACE
        try:
            with transaction.atomic():
                messaging._insert(copy.channel, edit.sender, clean, uuid.uuid5(edit.pk, f"copy:{copy.pk}"))
        except (Archived, Invalid, IntegrityError):  # Invalid: the copy was deleted
            continue


def _forget(deletion: Message) -> None:
    """A deleted message's text leaves what told people of it: the excerpts of its notifications are
    emptied, and each agent's inbox copy is deleted in turn (a `delete` by the same person, in the
    inbox's log, so the agent, its replay and its webhook hear of it; the log keeps both, as it
    keeps the message). A reaction taken back (also a deletion) finds nothing here."""
    from messaging import services as messaging  # messaging.services calls this module

    target_id = deletion.relates_to_id
    if not Notification.objects.filter(message_id=target_id).update(excerpt=""):
        return
    agents = Notification.objects.filter(message_id=target_id, user__is_agent=True).values_list(
        "user__username", flat=True)
    copies = Message.objects.select_related("channel__story").filter(
        pk__in=[copy_id(target_id, name) for name in agents], msg_type=MENTION_COPY_TYPE,
        rel_type__isnull=True)
    for copy in sorted(copies, key=lambda copy: copy.channel.inbox_agent_id or 0):  # as _copy_to_inbox
        clean = messaging.CleanMessage(msg_type="delete", payload={}, encoded_payload=b"{}", id=None, reply_to=None,
                                       correlation_id=None, audience=copy.audience, audience_kind=copy.audience_kind)
        clean.relates_to, clean.rel_type = copy, Message.RelType.REDACT
        try:
            with transaction.atomic():
                messaging._insert(copy.channel, deletion.sender, clean, uuid.uuid5(deletion.pk, f"copy:{copy.pk}"))
        except (messaging.RelationRepeat, messaging.Archived, IntegrityError):
            continue  # deleted already, or its inbox is archived: nothing more to take back


@transaction.atomic
def mark_read(*, user, ids=None, all: bool = False) -> int:
    """Mark the user's own notifications read (`ids`: others' are ignored), or all of them; returns
    the unread count after. Every open notifications topic of the user hears of it."""
    rows = Notification.objects.filter(user_id=user.pk, read_at__isnull=True)
    if not all:
        rows = rows.filter(pk__in=ids)
        marked = sorted(rows.values_list("pk", flat=True))
        changed = Notification.objects.filter(pk__in=marked, read_at__isnull=True).update(read_at=timezone.now())
    else:
        marked = "all"
        changed = rows.update(read_at=timezone.now())
    unread = selectors.unread_count(user)
    if changed:
        topic = frames.notifications_topic(user.username)
        frame = frames.notifications_read(topic, marked, unread)
        events.publish_on_commit(user_group(user.pk), {"type": "notification.event", "topic": topic,
                                                       "frame": events.dumps(frame)})
    return unread
