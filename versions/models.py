"""Named revisions of a document (docs/versions.md): a name and a note on one revision of a
document's linear change log. The log itself is never rewritten: naming a revision stores only
this row, and restoring one appends a new change (versions/services.py)."""
from django.conf import settings
from django.db import models


class DocumentVersion(models.Model):
    document = models.ForeignKey("stories.Document", on_delete=models.CASCADE, related_name="versions")
    revision = models.PositiveIntegerField(help_text="The named revision (at most the document's revision when named).")
    name = models.CharField(max_length=100)
    # The name casefolded: unique per document whatever its case. Text, not 100 characters:
    # casefolding may lengthen a name ("ß" -> "ss").
    name_key = models.TextField(editable=False)
    note = models.TextField(blank=True, max_length=2000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document_id", "-revision", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["document", "name_key"], name="document_version_name_unique"),
        ]

    def __str__(self):
        return f"{self.name} (r{self.revision})"
