"""Comments in the admin: staff browse threads by story and state. Changes go through the API and
MCP (the services keep anchors in step and publish events), so rows are shown, not edited."""
from django.contrib import admin

from comments.models import Comment, CommentThread
from mythline_site.admin_base import ReadOnlyAdmin


class CommentInline(admin.TabularInline):
    model = Comment
    fields = ("author", "body", "created_at", "edited_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CommentThread)
class CommentThreadAdmin(ReadOnlyAdmin):
    list_display = ("document", "quote", "created_by", "resolved", "orphaned", "revision", "created_at", "version")
    list_filter = ("resolved", "orphaned")
    search_fields = ("quote", "document__story__slug", "document__name")
    list_select_related = ("document__story", "created_by")
    ordering = ("-created_at",)
    inlines = [CommentInline]
