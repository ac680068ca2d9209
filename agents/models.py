from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class AgentProfile(models.Model):
    """What an agent says about itself (capabilities) and what it is doing now (status)."""

    class Status(models.TextChoices):
        IDLE = "idle"
        WORKING = "working"
        WAITING = "waiting"
        ERROR = "error"
        OFFLINE = "offline"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile")
    description = models.TextField(blank=True)
    capabilities = models.JSONField(default=list, blank=True, help_text="msg_type names this agent handles.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OFFLINE)
    task = models.CharField(max_length=500, blank=True)
    progress = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1)])
    status_updated_at = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"agent {self.user.username}"

    def handles(self, msg_type: str) -> bool:
        return msg_type in (self.capabilities or [])
