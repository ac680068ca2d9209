"""Suggestions: changes to a document proposed by an author (an agent or a human) and decided by a
person (docs/protocol.md, "Suggestions").

A suggestion is a list of edits against a revision of its document, kept in the units of the
document's change log (UTF-16 code units, as CodeMirror counts) at `revision`. Reads move it through
the changes made since (suggestions/services.refresh): an edit whose text another change touched
makes it `stale` (kept, never silently dropped). Accepting applies it through the same linear log as
any edit: a new revision by the person who accepted it, recorded in `accepted_revision`.
"""
from django.conf import settings
from django.db import models


class Suggestion(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        STALE = "stale"

    document = models.ForeignKey("stories.Document", on_delete=models.CASCADE, related_name="suggestions")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True)
    edits = models.JSONField(help_text="[[from, to, insert], ...] in UTF-16 code units of the text at `revision`.")
    revision = models.PositiveIntegerField(help_text="The document revision `edits` count in.")
    replaced = models.JSONField(default=list, help_text="The text each edit replaced, when it was suggested.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    stale_revision = models.PositiveIntegerField(null=True, blank=True,
                                                 help_text="The revision whose change touched its text.")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    accepted_revision = models.PositiveIntegerField(null=True, blank=True,
                                                    help_text="The revision accepting it made.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)
    # Sent with `Idempotency-Key`: UUIDv5 of (author, document, key) and the SHA-256 of the body, as
    # for document edits (a repeat answers the suggestion first made; another body is 409).
    idempotency_id = models.UUIDField(null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["document_id", "pk"]
        indexes = [models.Index(fields=["document", "status"], name="suggestion_doc_status")]
        constraints = [models.CheckConstraint(condition=models.Q(status__in=["open", "accepted", "rejected", "stale"]),
                                              name="suggestion_status_valid"),
                       models.UniqueConstraint(fields=["document", "idempotency_id"], name="suggestion_idempotency_unique",
                                               condition=models.Q(idempotency_id__isnull=False))]

    def __str__(self):
        return f"suggestion {self.pk} on {self.document_id} ({self.status})"
