"""An agent's webhook (one per agent) and the deliveries of its inbox to it (docs/protocol.md, "Webhooks").

A Delivery is enqueued in the transaction that stores the message (webhooks.services.on_posted)
and sent later by the worker (webhooks.worker): never from the request. Its body is frozen at
enqueue, so every attempt carries the same bytes (only the timestamp and signature change).
"""
from django.conf import settings
from django.db import models


class Webhook(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        DISABLED = "disabled"

    agent = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook")
    url = models.CharField(max_length=2000)
    # "whsec_" + base64 of 24 random bytes; the HMAC key is the decoded bytes. Kept as it is: the
    # worker signs with it (a symmetric key cannot be stored hashed).
    secret = models.CharField(max_length=100)
    # After a rotation: the secret before it, which signs too (a second signature) until it expires.
    # (A database default too: hosts still on the code before it insert webhooks without it.)
    previous_secret = models.CharField(max_length=100, blank=True, default="", db_default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Failed attempts in a row (any delivery), and when the first of them failed; a 2xx resets both.
    failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(status__in=["active", "disabled"]),
                                              name="webhook_status_valid")]

    def __str__(self):
        return f"{self.agent} -> {self.url} ({self.status})"

    def signing_secrets(self, now) -> list[str]:
        """The secrets an attempt at `now` is signed with: the current one, then the previous one
        while it has not expired."""
        if self.previous_secret and self.previous_secret_expires_at and now < self.previous_secret_expires_at:
            return [self.secret, self.previous_secret]
        return [self.secret]


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # not tried yet
        FAILED = "failed"  # the last attempt failed; tried again at next_attempt_at
        DELIVERED = "delivered"  # a 2xx answer
        DEAD = "dead"  # given up: MYTHLINE_WEBHOOK_MAX_ATTEMPTS failed, or the agent may no longer read it

    EVENT = "message.created"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey("messaging.Message", on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=64, default=EVENT)
    body = models.TextField(help_text="The JSON body, exactly as sent (and signed)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the worker may take it (again). While an attempt is under way it is pushed past the
    # attempt's timeout: a worker that dies mid-attempt leaves it to be taken again (at least once).
    next_attempt_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "message"], name="delivery_unique_per_message"),
            models.CheckConstraint(condition=models.Q(status__in=["pending", "failed", "delivered", "dead"]),
                                   name="delivery_status_valid"),
        ]
        indexes = [
            # The worker's claim: due deliveries, soonest first (delivered and dead ones stay out of it).
            models.Index(fields=["next_attempt_at"], condition=models.Q(status__in=["pending", "failed"]),
                         name="delivery_due_idx"),
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_time_idx"),
            # The worker's pruning of finished deliveries (webhooks.worker.prune).
            models.Index(fields=["created_at"], condition=models.Q(status__in=["delivered", "dead"]),
                         name="delivery_finished_idx"),
        ]

    def __str__(self):
        return f"{self.event} {self.message_id} -> {self.webhook_id} ({self.status})"

    @property
    def due(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.FAILED)
