"""The audit log of rights in the admin: read-only for everyone, superusers included (no add,
change or delete), filtered by event type and story, searched by username or story."""
from django.contrib import admin

from audit.models import RightsEvent
from mythline_site.admin_base import ReadOnlyAdmin


@admin.register(RightsEvent)
class RightsEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event_type", "actor", "subject", "story", "channel", "note")
    list_filter = ("event_type", ("story", admin.RelatedOnlyFieldListFilter), "note", "created_at")
    list_select_related = ("actor", "subject", "story", "channel")
    search_fields = ("actor__username", "subject__username", "story__slug")
    date_hierarchy = "created_at"
    fields = ("created_at", "event_type", "actor", "subject", "story", "channel", "before", "after", "extra",
              "note")
    readonly_fields = fields
    actions = None
