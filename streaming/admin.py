from django.contrib import admin

from streaming.models import Stream


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    """Read-only: streams are written through the API only (their live frames go out from the services)."""
    list_display = ("id", "story", "channel", "sender", "msg_type", "field", "status", "opened_at", "updated_at",
                    "message")
    list_filter = ("status",)
    search_fields = ("id", "sender__username", "msg_type")
    list_select_related = ("story", "channel", "sender")
    readonly_fields = [f.name for f in Stream._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
