"""A story's writers' room: which crew agents serve it, and whether they are paused (docs/crew.md).

The crew worker (`manage.py run_crew`) reads these rows and runs a crew for every story that has one
and is not paused; the agents themselves are ordinary agent accounts, participants of the story.
"""
from django.conf import settings
from django.db import models


class StoryCrew(models.Model):
    class Script(models.TextChoices):
        STORY = "", "from the story (premise, bible, outline)"
        LIGHTHOUSE = "lighthouse", "the demo's scripted scenes"

    class WritesTo(models.TextChoices):
        MAIN = "main", "the story's main document"
        FORK = "fork", "the crew's own fork of main (crew-draft)"

    story = models.OneToOneField("stories.Story", on_delete=models.CASCADE, related_name="crew")
    members = models.JSONField(default=dict, help_text="role -> the username of the agent playing it")
    paused = models.BooleanField(default=False, help_text="The whole crew stops until resumed.")
    paused_agents = models.JSONField(default=list, blank=True, help_text="Roles paused one by one.")
    script = models.CharField(max_length=20, choices=Script.choices, default=Script.STORY, blank=True)
    writes_to = models.CharField(max_length=10, choices=WritesTo.choices, default=WritesTo.MAIN,
                                 help_text="Where the crew writes its scenes: into main, or into its own "
                                           "fork of main for the writers to take from.")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change (the worker restarts "
                                                               "a story's crew when it moves).")

    class Meta:
        verbose_name = "story crew"

    def __str__(self):
        return f"crew of {self.story_id}"


class CrewAgent(models.Model):
    """An agent account the writers' room made (or, for the demo, took on) for a story's role. The
    crew worker issues tokens only to these: an outside agent that happens to be named like a role is
    never driven by the worker."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crew_role")
    story = models.ForeignKey("stories.Story", on_delete=models.CASCADE, related_name="crew_agents")
    role = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["story", "role"], name="crew_agent_story_role_unique")]

    def __str__(self):
        return f"{self.role} of {self.story_id}"


class WorkerLease(models.Model):
    """Which crew worker serves the crews: one at a time, however many are started (two would
    drive the same agents and revoke each other's tokens). The holder renews it every poll; one
    that stops renewing loses it when it expires (writers.services.lease_acquire)."""

    name = models.CharField(max_length=40, unique=True)
    holder = models.CharField(max_length=120)
    expires_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} held by {self.holder} until {self.expires_at:%H:%M:%S}"
