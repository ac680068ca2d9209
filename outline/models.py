"""The outline of a story: an ordered list of scenes with beats, a status, and the range of a
document each became (docs/protocol.md, "The outline").

Positions are dense, 1..N per story (the scene number); every write that changes them runs under
the story's row lock (outline/services.py). The range is stored in UTF-16 code units of the
document at `range_revision` (the units of the document's change log); reads map it through the
changes made since, so it follows the text as people edit (outline/selectors.py); a read that maps
a range through many changes stores it re-anchored at the current revision (same text, fewer
changes to map next time).
"""
from django.conf import settings
from django.db import models


class OutlineScene(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned"
        DRAFTING = "drafting"
        DRAFTED = "drafted"
        REVISED = "revised"

    story = models.ForeignKey("stories.Story", on_delete=models.CASCADE, related_name="outline_scenes")
    position = models.IntegerField(help_text="1-based place in the story's outline (the scene number).")
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    beats = models.JSONField(default=list, blank=True, help_text="A list of short strings.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLANNED)
    pov = models.CharField(max_length=200, blank=True, help_text="Whose point of view (a name; optional).")
    characters = models.JSONField(default=list, blank=True, help_text="Names of the characters in the scene.")
    document = models.ForeignKey("stories.Document", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="outline_scenes")
    range_from = models.PositiveIntegerField(null=True, blank=True,
                                             help_text="UTF-16 code units in the document at range_revision.")
    range_to = models.PositiveIntegerField(null=True, blank=True)
    range_revision = models.PositiveIntegerField(null=True, blank=True)
    range_gone = models.BooleanField(default=False, help_text="The text the range covered was deleted "
                                                              "(as of range_revision).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["story_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["story", "position"], name="outline_scene_position_unique"),
            models.CheckConstraint(condition=models.Q(status__in=["planned", "drafting", "drafted", "revised"]),
                                   name="outline_scene_status_valid"),
        ]

    def __str__(self):
        return f"{self.story_id} #{self.position}: {self.title}"
