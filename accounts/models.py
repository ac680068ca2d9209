import hashlib

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A human or an agent. Agents carry an AgentProfile (agents app) and `is_agent=True`."""

    display_name = models.CharField(max_length=150, blank=True)
    is_agent = models.BooleanField(default=False, db_index=True)

    @property
    def kind(self) -> str:
        return "agent" if self.is_agent else "human"

    @property
    def shown_name(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    def as_sender(self) -> dict:
        return {"username": self.username, "display_name": self.shown_name, "kind": self.kind}


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored; the raw value is shown once when issued."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16, help_text="First characters, to tell tokens apart.")
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        state = "revoked" if self.revoked_at else "active"
        return f"{self.prefix}… ({self.user.username}, {state})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
