import uuid

from django.conf import settings
from django.db import models

from messaging.models import default_audience


class Stream(models.Model):
    """A message being written in chunks (Ably's message-per-response pattern for AI output).

    Not part of the channel's log: it has no seq, and nothing of it is stored in the log until it
    completes, as one ordinary message with the stream's id (`message`). Subscribers watch it grow
    through live frames; a subscriber that joins mid-stream gets the text so far (`text`)."""

    class Status(models.TextChoices):
        OPEN = "open"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    # The id the final message will have: completing is a post with this id, so it is idempotent.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    story = models.ForeignKey("stories.Story", on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey("messaging.Channel", on_delete=models.CASCADE, related_name="streams")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    msg_type = models.CharField(max_length=64)
    # The payload without the streamed field; `field` holds the text written so far.
    payload = models.JSONField(default=dict)
    field = models.CharField(max_length=64, default="text")
    text = models.TextField(default="", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # As the post will have them (checked when the stream opens, again when it completes).
    reply_to = models.UUIDField(null=True, blank=True)
    correlation_id = models.CharField(max_length=128, null=True, blank=True)
    audience = models.JSONField(default=default_audience)
    audience_kind = models.CharField(max_length=10, default="all")
    # For an audience of usernames: their ids, to filter live frames as message frames are.
    recipient_ids = models.JSONField(default=list, blank=True)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()  # the last append (or the open): the idle clock
    message = models.ForeignKey("messaging.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+", db_constraint=False)

    class Meta:
        ordering = ["opened_at"]
        indexes = [models.Index(fields=["channel", "status"], name="stream_channel_status_idx"),
                   models.Index(fields=["sender", "status"], name="stream_sender_status_idx"),
                   models.Index(fields=["status", "updated_at"], name="stream_status_updated_idx")]
        constraints = [models.CheckConstraint(condition=models.Q(status__in=["open", "completed", "cancelled"]),
                                              name="stream_status_valid")]

    def __str__(self):
        return f"{self.id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN
