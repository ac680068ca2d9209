from django.apps import AppConfig


class StreamingConfig(AppConfig):
    """Messages written in chunks that subscribers watch grow, stored once complete (docs/protocol.md, "Streaming messages")."""
    default_auto_field = "django.db.models.BigAutoField"
    name = "streaming"
    verbose_name = "Streaming"
