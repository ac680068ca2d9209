from django.apps import AppConfig


class SearchConfig(AppConfig):
    """Full-text search over the messages a reader may read (docs/protocol.md, "Search"). Messages
    are indexed by messaging.services as they are stored (search.services.index_posted)."""
    default_auto_field = "django.db.models.BigAutoField"
    name = "search"
    verbose_name = "Search"
