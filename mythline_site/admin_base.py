"""Shared admin pieces."""
from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """The audit trail: shown, never added, changed or deleted here, whoever asks."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
