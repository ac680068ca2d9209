from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """A per-user feed of mentions, replies and decisions, with unread counts (docs/protocol.md, "Notifications")."""
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"
    verbose_name = "Notifications"
