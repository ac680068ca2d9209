from django.contrib import admin

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "kind", "story", "channel", "actor", "created_at", "read_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "actor__username", "excerpt")
    raw_id_fields = ("user", "story", "channel", "message", "actor")
    list_select_related = ("user", "story", "channel", "actor")
