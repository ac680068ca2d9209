"""Comments on a passage of a document: a thread anchored to a range of the text, its comments in
order (docs/protocol.md, "Comments").

The anchor is kept in the units of the document's change log (UTF-16 code units, as CodeMirror
counts) at `revision`. Reads move it through the changes made since (comments/services.refresh), as
the outline's ranges move: text typed inside grows it, at either edge stays outside, part of it
deleted shrinks it. When all of its text is deleted the thread is `orphaned`: kept and shown, its
anchor collapsed to where the text was.
"""
from django.conf import settings
from django.db import models

QUOTE_MAX = 500


class CommentThread(models.Model):
    document = models.ForeignKey("stories.Document", on_delete=models.CASCADE, related_name="comment_threads")
    anchor_from = models.PositiveIntegerField(help_text="Start of the anchor, UTF-16 units of the text at `revision`.")
    anchor_to = models.PositiveIntegerField(help_text="End of the anchor, UTF-16 units of the text at `revision`.")
    revision = models.PositiveIntegerField(help_text="The document revision the anchor counts in.")
    orphaned = models.BooleanField(default=False, help_text="All of its text was deleted: the anchor collapsed.")
    quote = models.TextField(blank=True, help_text=f"The anchored text when the thread was made (≤{QUOTE_MAX} kept).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    resolved = models.BooleanField(default=False)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["document_id", "pk"]
        indexes = [models.Index(fields=["document", "resolved"], name="commentthread_doc_resolved")]
        constraints = [models.CheckConstraint(condition=models.Q(anchor_from__lte=models.F("anchor_to")),
                                              name="commentthread_anchor_ordered")]

    def __str__(self):
        return f"comment thread {self.pk} on {self.document_id}"


class Comment(models.Model):
    thread = models.ForeignKey(CommentThread, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["thread_id", "pk"]

    def __str__(self):
        return f"comment {self.pk} in thread {self.thread_id}"
