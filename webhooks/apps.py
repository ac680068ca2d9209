from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Signed HTTP deliveries of an agent's inbox and mentions, by a worker (docs/protocol.md, "Webhooks")."""
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"
    verbose_name = "Webhooks"
