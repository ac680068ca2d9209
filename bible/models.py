"""The story bible: characters, places, objects, lore and style notes of a story (docs/protocol.md,
"Story bible"). An entry may change from a given scene on: its progressions."""
from django.conf import settings
from django.db import models


class BibleEntry(models.Model):
    class Kind(models.TextChoices):
        CHARACTER = "character"
        PLACE = "place"
        OBJECT = "object"
        LORE = "lore"
        STYLE = "style"

    story = models.ForeignKey("stories.Story", on_delete=models.CASCADE, related_name="bible_entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=120)
    # The name casefolded: names are unique in a story whatever their case (and kind). Text, not
    # 120 characters: casefolding may lengthen a name ("ß" -> "ss", "ﬃ" -> "ffi").
    name_key = models.TextField(editable=False)
    slug = models.CharField(max_length=64, help_text="The entry's key in URLs; made from its first name, kept on rename.")
    aliases = models.JSONField(default=list, blank=True, help_text="Other names: a list of strings.")
    description = models.TextField(blank=True)
    fields = models.JSONField(default=dict, blank=True, help_text="Short named values: {\"voice\": \"...\"}.")
    # Name and aliases, casefolded, one a line: what `?q=` and the admin search match.
    search_names = models.TextField(blank=True, editable=False)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change (optimistic concurrency).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "bible entry"
        verbose_name_plural = "bible entries"
        ordering = ["story_id", "name_key", "id"]
        constraints = [
            models.UniqueConstraint(fields=["story", "slug"], name="bible_entry_slug_unique"),
            models.UniqueConstraint(fields=["story", "name_key"], name="bible_entry_name_unique"),
            models.CheckConstraint(condition=models.Q(kind__in=["character", "place", "object", "lore", "style"]),
                                   name="bible_entry_kind_valid"),
        ]

    def __str__(self):
        return f"{self.name} ({self.kind})"


class BibleProgression(models.Model):
    """From scene `from_scene` on (the scene's number in the story's outline order, 1-based), the
    entry reads with this description (if set) and these fields merged over its own."""

    entry = models.ForeignKey(BibleEntry, on_delete=models.CASCADE, related_name="progressions")
    from_scene = models.PositiveIntegerField()
    description = models.TextField(null=True, blank=True, help_text="Replaces the description; empty: unchanged.")
    fields = models.JSONField(default=dict, blank=True, help_text="Merged over the entry's fields.")
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["entry_id", "from_scene"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "from_scene"], name="bible_progression_scene_unique"),
            models.CheckConstraint(condition=models.Q(from_scene__gte=1), name="bible_progression_scene_positive"),
        ]

    def __str__(self):
        return f"{self.entry_id} from scene {self.from_scene}"
