from django.db import models


class MessageText(models.Model):
    """The searchable text of one message (search/extract.py), kept in the message's transaction.

    The full-text index over `text` is per database, made by migration 0001 outside the ORM:
    SQLite, the FTS5 table `search_messagetext_fts` (external content: this table; triggers keep it
    in step); PostgreSQL, the generated column `tsv` (`to_tsvector('simple', text)`) with a GIN index.
    The integer `id` is the FTS5 rowid: it never changes (SQLite may renumber implicit rowids)."""

    message = models.OneToOneField("messaging.Message", on_delete=models.CASCADE, related_name="search_text")
    text = models.TextField()

    class Meta:
        verbose_name = "message text"

    def __str__(self):
        return f"{self.message_id}: {self.text[:60]}"
