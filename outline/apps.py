from django.apps import AppConfig


class OutlineConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "outline"
