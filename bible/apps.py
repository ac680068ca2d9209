from django.apps import AppConfig


class BibleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "bible"
    verbose_name = "Story bible"
