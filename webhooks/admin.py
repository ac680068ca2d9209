"""Admin: agents' webhooks (status, failures, re-enable) and the delivery log (read-only).

The secrets (the current one, and the one a rotation replaced) are never shown here: the agent
gets each once (PUT, or rotate). Deliveries are written
by the post (enqueue) and the worker only.
"""
from django.contrib import admin
from django.utils.translation import ngettext

from webhooks.models import Delivery, Webhook
from webhooks.services import webhook_enable


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("agent", "url", "status", "failures", "disabled_at", "created_at")
    list_filter = ("status",)
    search_fields = ("agent__username", "url")
    readonly_fields = ("agent", "url", "status", "disabled_reason", "disabled_at", "failures", "failing_since",
                       "previous_secret_expires_at", "created_at", "updated_at")
    exclude = ("secret", "previous_secret")
    actions = ("re_enable",)

    def has_add_permission(self, request):
        return False  # the agent registers its own (PUT /api/agents/me/webhook)

    @admin.action(description="Re-enable (reset failures; retry what waits)", permissions=["change"])
    def re_enable(self, request, queryset):
        webhooks = list(queryset)
        for webhook in webhooks:
            webhook_enable(webhook)
        self.message_user(request, ngettext("%d webhook re-enabled.", "%d webhooks re-enabled.", len(webhooks))
                          % len(webhooks))


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "agent", "message_id", "event", "status", "attempts", "last_status_code",
                    "next_attempt_at", "delivered_at")
    list_filter = ("status", "event", "created_at")
    search_fields = ("webhook__agent__username", "last_error")
    list_select_related = ("webhook__agent",)
    date_hierarchy = "created_at"

    @admin.display(ordering="webhook__agent__username")
    def agent(self, obj):
        return obj.webhook.agent.username

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
