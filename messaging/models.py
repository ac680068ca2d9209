import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

CHANNEL_NAME_RE = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MSG_TYPE_RE = r"^[a-z][a-z0-9_.-]{0,63}$"
channel_name_validator = RegexValidator(
    CHANNEL_NAME_RE, "Use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.")


class Channel(models.Model):
    class Kind(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"
        PRESENCE = "presence"
        INBOX = "inbox"

    story = models.ForeignKey("stories.Story", on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=64, validators=[channel_name_validator])
    kind = models.CharField(max_length=10, choices=Kind.choices)
    topic = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # The last seq handed out: bumped in the same transaction as the insert, under the row lock.
    last_seq = models.BigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    idle_archive_seconds = models.PositiveIntegerField(null=True, blank=True)
    # For kind=inbox: the agent whose inbox this is.
    inbox_agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")

    class Meta:
        ordering = ["story_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["story", "name"], name="channel_name_unique_in_story"),
            models.CheckConstraint(condition=models.Q(kind__in=["public", "private", "presence", "inbox"]),
                                   name="channel_kind_valid"),
            models.CheckConstraint(condition=models.Q(last_seq__gte=0), name="channel_last_seq_nonnegative"),
            models.CheckConstraint(condition=models.Q(name__regex=CHANNEL_NAME_RE), name="channel_name_format"),
        ]
        indexes = [models.Index(fields=["idle_archive_seconds", "archived_at"], name="channel_idle_idx")]

    def __str__(self):
        return f"{self.story_id}:{self.name}"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def group_name(self) -> str:
        """Channel-layer group for live delivery of this channel."""
        return f"chan.{self.pk}"


class Membership(models.Model):
    """Who belongs to a private, presence or inbox channel."""

    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channel_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [models.UniqueConstraint(fields=["channel", "user"], name="membership_unique")]

    def __str__(self):
        return f"{self.user} in {self.channel} ({self.role})"


class ReadCursor(models.Model):
    """A reader's position in a channel (any kind, public included). It never moves back."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="read_cursors")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="read_cursors")
    seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "user"], name="read_cursor_unique")]


def default_audience():
    return "all"


class Message(models.Model):
    """One entry of a channel's durable, append-only log."""

    class Audience(models.TextChoices):
        ALL = "all"
        AGENTS = "agents"
        HUMANS = "humans"
        USERS = "users"  # an explicit list of usernames, kept in MessageRecipient

    class RelType(models.TextChoices):
        """A relation to an earlier message of the same channel (Matrix m.replace, m.redaction,
        m.annotation): an edit, a deletion, a reaction. The related message is never rewritten."""
        REPLACE = "replace"  # msg_type "edit"
        REDACT = "redact"  # msg_type "delete"
        ANNOTATE = "annotate"  # msg_type "reaction"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    story = models.ForeignKey("stories.Story", on_delete=models.PROTECT, related_name="messages")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="messages")
    seq = models.BigIntegerField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="messages")
    msg_type = models.CharField(max_length=64)
    payload = models.JSONField()
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="replies")
    # The root of the reply tree, so a whole thread is one indexed query.
    thread_root = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    correlation_id = models.CharField(max_length=128, null=True, blank=True)
    # For an edit, deletion or reaction: the message it relates to (same channel), and how.
    relates_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="relations",
                                   db_index=False)  # message_relation_idx starts with it
    rel_type = models.CharField(max_length=10, choices=RelType.choices, null=True, blank=True)
    audience = models.JSONField(default=default_audience)
    audience_kind = models.CharField(max_length=10, choices=Audience.choices, default=Audience.ALL)
    created_at = models.DateTimeField()
    # The sender's `Idempotency-Key` (a route's copy: the key, a newline, the inbox agent's
    # username), unique per sender: a namespace of the sender's own that no one else's post, and
    # no client-chosen `id`, can occupy. Null for posts without a key (and for those stored before
    # migration 0003, whose ids were derived from the key: see messaging.services.legacy_key_id).
    idempotency_key = models.CharField(max_length=512, null=True, blank=True, editable=False)
    # The usernames the message mentions (its explicit `mentions` list and the `@username`s of its
    # text that name participants: notifications/mentions.py). Null for none (and for messages
    # stored before migration 0005).
    mentions = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["channel_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "seq"], name="message_seq_unique_in_channel"),
            models.UniqueConstraint(fields=["channel", "id"], name="message_id_unique_in_channel"),
            models.UniqueConstraint(fields=["sender", "idempotency_key"], condition=models.Q(idempotency_key__isnull=False),
                                    name="message_idempotency_key_unique"),
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="message_seq_positive"),
            models.CheckConstraint(condition=models.Q(msg_type__regex=MSG_TYPE_RE), name="message_type_format"),
            models.CheckConstraint(condition=models.Q(relates_to__isnull=True, rel_type__isnull=True)
                                   | models.Q(relates_to__isnull=False, rel_type__in=["replace", "redact", "annotate"]),
                                   name="message_relation_valid"),
        ]
        indexes = [
            models.Index(fields=["channel", "msg_type", "seq"], name="message_type_idx"),
            models.Index(fields=["story", "created_at"], name="message_story_time_idx"),
            models.Index(fields=["thread_root", "created_at"], name="message_thread_idx"),
            models.Index(fields=["created_at"], name="message_time_idx"),
            # A sender's recent messages: loop prevention (messaging/loops.py), the admin's filter.
            models.Index(fields=["sender", "created_at"], name="message_sender_time_idx"),
            # The relations of a page of messages, by kind: the aggregated view (messaging/relations.py).
            models.Index(fields=["relates_to", "rel_type", "seq"], name="message_relation_idx"),
        ]

    def __str__(self):
        return f"{self.channel_id}#{self.seq} {self.msg_type}"


class MessageRecipient(models.Model):
    """The usernames of a message whose audience is an explicit list."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="recipients")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="recipient_unique")]
