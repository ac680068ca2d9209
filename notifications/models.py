from django.conf import settings
from django.db import models


class Notification(models.Model):
    """One line of a user's notification feed: a mention, a reply, a decision, or a notice."""

    class Kind(models.TextChoices):
        MENTION = "mention"
        REPLY = "reply"
        DECISION = "decision"
        WEBHOOK_DISABLED = "webhook.disabled"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    story = models.ForeignKey("stories.Story", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey("messaging.Channel", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+")
    message = models.ForeignKey("messaging.Message", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    excerpt = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One per user and message (a mention wins over a reply: services decide which).
            models.UniqueConstraint(fields=["user", "message"], condition=models.Q(message__isnull=False),
                                    name="notification_once_per_message"),
        ]
        indexes = [
            # The feed, newest first, paged by id.
            models.Index(fields=["user", "id"], name="notification_feed_idx"),
            # The unread count and the unread feed.
            models.Index(fields=["user", "id"], condition=models.Q(read_at__isnull=True),
                         name="notification_unread_idx"),
        ]

    def __str__(self):
        return f"{self.kind} for {self.user_id} ({'read' if self.read_at else 'unread'})"
