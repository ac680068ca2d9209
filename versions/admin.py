"""Admin for document versions: staff see every named revision (by story and document) and delete
one through the service (the same `document.version.deleted` event as the API). Versions are named
in the room, over REST or MCP, not here: a name is a reader's bookmark on a revision."""
from django.contrib import admin

from versions import services
from versions.models import DocumentVersion


@admin.register(DocumentVersion)
class DocumentVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "document", "revision", "created_by", "created_at"]
    list_filter = ["document__story"]
    search_fields = ["name", "note", "document__name", "document__story__slug"]
    list_select_related = ["document", "created_by"]
    fields = ["document", "revision", "name", "note", "created_by", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        version = DocumentVersion.objects.select_related("document__story").get(pk=obj.pk)
        services.version_delete(version=version, by=request.user)

    def delete_queryset(self, request, queryset):
        for version in queryset.select_related("document__story"):
            services.version_delete(version=version, by=request.user)
