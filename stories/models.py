from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

SLUG_RE = r"^[a-z0-9][a-z0-9-]{0,63}$"
slug_validator = RegexValidator(SLUG_RE, "Use 1-64 lowercase letters, digits or '-', starting with a letter or digit.")


class Story(models.Model):
    class Visibility(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"

    slug = models.CharField(max_length=64, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    premise = models.TextField(blank=True)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    requires_approval = models.BooleanField(
        default=False, help_text="Human in the loop: the demo crew proposes each scene plan and waits for a "
                                 "human vote or decision before writing it.")
    agents_suggest = models.BooleanField(
        default=False, help_text="Agents suggest, people accept: an agent's edit of a document becomes a "
                                 "suggestion a person accepts or rejects (docs/protocol.md, \"Suggestions\").")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_stories")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "stories"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(visibility__in=["public", "private"]), name="story_visibility_valid"),
            models.CheckConstraint(condition=models.Q(slug__regex=SLUG_RE), name="story_slug_format"),
        ]

    def __str__(self):
        return self.slug


class Participant(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        EDITOR = "editor"
        VIEWER = "viewer"

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="participations")
    role = models.CharField(max_length=10, choices=Role.choices)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["story", "user"], name="participant_unique"),
            models.CheckConstraint(condition=models.Q(role__in=["owner", "editor", "viewer"]), name="participant_role_valid"),
        ]

    def __str__(self):
        return f"{self.user} in {self.story} ({self.role})"

    @property
    def can_write(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.EDITOR)


class Invite(models.Model):
    """A link that lets a signed-in user join a story with a role (editor or viewer) until it
    expires or is revoked. Only the SHA-256 of its raw token is stored (the raw token is shown
    once, when the link is made); `prefix` tells links apart."""

    class State(models.TextChoices):
        LIVE = "live"
        EXPIRED = "expired"
        REVOKED = "revoked"

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Participant.Role.choices)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters of the token, to tell links apart.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["story", "expires_at"], name="invite_story_expires")]
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=["editor", "viewer"]), name="invite_role_valid"),
        ]

    def __str__(self):
        return f"{self.prefix}… ({self.story_id}, {self.role})"

    def state_at(self, now) -> str:
        if self.revoked_at is not None:
            return self.State.REVOKED
        return self.State.LIVE if self.expires_at > now else self.State.EXPIRED

    @property
    def state(self) -> str:
        return self.state_at(timezone.now())


class Document(models.Model):
    """A co-edited text of a story. The server is the single authority: `text` at `revision`,
    with one DocumentChange row per applied change (revision 1, 2, ...)."""

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="documents")
    name = models.CharField(max_length=64)
    title = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True)
    revision = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    forked_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="forks")
    forked_at_revision = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["story_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["story", "name"], name="document_name_unique_in_story"),
            models.CheckConstraint(condition=models.Q(name__regex=r"^[a-z0-9][a-z0-9._-]{0,63}$"),
                                   name="document_name_format"),
        ]

    def __str__(self):
        return f"{self.story_id}:{self.name}@{self.revision}"

    @property
    def group_name(self) -> str:
        return f"doc.{self.pk}"


class DocumentChange(models.Model):
    """One applied change: the audit trail of a document, and the log its text is rebuilt from."""

    document = models.ForeignKey(Document, on_delete=models.PROTECT, related_name="changes")
    revision = models.PositiveIntegerField(help_text="The revision this change produced.")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changes = models.JSONField(help_text="CodeMirror ChangeSet.toJSON() form, positions in UTF-16 code units.")
    client_id = models.CharField(max_length=64, blank=True)
    via = models.CharField(max_length=8, default="ws")
    created_at = models.DateTimeField(auto_now_add=True)
    # A REST edit sent with `Idempotency-Key`: UUIDv5 of (sender, document, key), and the SHA-256
    # of its body (a repeat with the same key and body answers this change; another body is 409).
    idempotency_id = models.UUIDField(null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["document_id", "revision"]
        constraints = [
            models.UniqueConstraint(fields=["document", "revision"], name="document_change_revision_unique"),
            models.UniqueConstraint(fields=["document", "idempotency_id"], name="document_change_idempotency_unique",
                                    condition=models.Q(idempotency_id__isnull=False)),
            models.CheckConstraint(condition=models.Q(revision__gte=1), name="document_change_revision_positive"),
        ]

    def __str__(self):
        return f"{self.document_id}@{self.revision}"


class DocumentSnapshot(models.Model):
    """The text at a revision (0, stored when the document first changes, and every
    MYTHLINE_DOC_SNAPSHOT_EVERY): rebuilding any revision replays fewer changes than that."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="snapshots")
    revision = models.PositiveIntegerField()
    text = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["document", "revision"], name="document_snapshot_unique")]
