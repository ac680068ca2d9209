from django.contrib import admin

from writers.models import CrewAgent, StoryCrew


@admin.register(StoryCrew)
class StoryCrewAdmin(admin.ModelAdmin):
    """Read-mostly: add, pause and remove a crew from the room or the API, where the rights are checked
    and the room is told."""
    list_display = ("story", "paused", "script", "version", "updated_at")
    list_filter = ("paused", "script")
    search_fields = ("story__slug", "story__title")
    readonly_fields = ("story", "members", "paused", "paused_agents", "script", "added_by", "created_at",
                       "updated_at", "version")

    def has_add_permission(self, request):
        return False


@admin.register(CrewAgent)
class CrewAgentAdmin(admin.ModelAdmin):
    list_display = ("user", "story", "role", "created_at")
    search_fields = ("user__username", "story__slug", "role")
    readonly_fields = ("user", "story", "role", "created_at")

    def has_add_permission(self, request):
        return False
