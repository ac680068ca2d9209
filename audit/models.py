"""The audit log of rights: one row per change of who may do what (docs/deploy.md, "Audit log").

Written by the services that change rights, inside the change's own transaction (audit/services.py):
a change that rolls back leaves no row, and a row never describes a change that did not happen.
Read in the Django admin (read-only) and in the story's export; never through the API.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone


class EventType(models.TextChoices):
    STORY_CREATED = "story.created"
    STORY_VISIBILITY_CHANGED = "story.visibility_changed"
    PARTICIPANT_ADDED = "participant.added"
    PARTICIPANT_ROLE_CHANGED = "participant.role_changed"
    PARTICIPANT_REMOVED = "participant.removed"
    MEMBER_ADDED = "member.added"
    MEMBER_REMOVED = "member.removed"
    CHANNEL_ARCHIVED = "channel.archived"
    CHANNEL_UNARCHIVED = "channel.unarchived"
    INVITE_CREATED = "invite.created"
    INVITE_REVOKED = "invite.revoked"
    TOKEN_ISSUED = "token.issued"
    TOKEN_ROTATED = "token.rotated"
    TOKEN_REVOKED = "token.revoked"
    TOKENS_REVOKED_ALL = "token.revoked_all"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_STAFF_CHANGED = "user.staff_changed"
    USER_SUPERUSER_CHANGED = "user.superuser_changed"
    USER_GROUPS_CHANGED = "user.groups_changed"
    USER_PERMISSIONS_CHANGED = "user.permissions_changed"
    USER_DELETED = "user.deleted"


class RightsEvent(models.Model):
    Type = EventType

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event_type = models.CharField(max_length=40, choices=EventType.choices, db_index=True)
    # Who made the change: null for the system (the idle sweeper) and management commands (`note`).
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    # Whose rights changed (the participant, member, token holder or deactivated user).
    subject = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    story = models.ForeignKey("stories.Story", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="rights_events")
    channel = models.ForeignKey("messaging.Channel", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=100, blank=True,
                            help_text="How an actor-less change came: 'cli' (a management command), "
                                      "'idle' (the idle-channel sweeper), 'system'.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "rights event"
        indexes = [
            models.Index(fields=["story", "id"], name="audit_story_idx"),
            models.Index(fields=["subject", "id"], name="audit_subject_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(event_type__in=EventType.values),
                                   name="audit_event_type_valid"),
        ]

    def __str__(self):
        return f"{self.event_type} #{self.pk}"
