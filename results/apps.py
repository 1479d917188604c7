from django.apps import AppConfig


class ResultsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "results"

    def ready(self):
        from results import signals  # noqa: F401 (journals files of rows deleted by a cascade)
