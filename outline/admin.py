"""The outline in the admin: staff browse scenes by story and status. Changes go through the API
and MCP (the services keep positions dense and publish events), so rows are shown, not edited."""
from django.contrib import admin

from mythline_site.admin_base import ReadOnlyAdmin
from outline.models import OutlineScene


@admin.register(OutlineScene)
class OutlineSceneAdmin(ReadOnlyAdmin):
    list_display = ("story", "position", "title", "status", "pov", "document", "updated_by", "updated_at", "version")
    list_filter = ("status", "story")
    search_fields = ("title", "summary", "story__slug")
    list_select_related = ("story", "document", "updated_by")
    ordering = ("story", "position")
    readonly_fields = ("mapped_range",)

    @admin.display(description="range now")
    def mapped_range(self, obj):
        from outline.selectors import mapped_ranges

        found = mapped_ranges([obj]).get(obj.pk)
        if found is None:
            return "-"
        state = "gone" if found["gone"] else "live"
        return f"{found['document']} {found['from']}..{found['to']} at r{found['revision']} ({state})"
