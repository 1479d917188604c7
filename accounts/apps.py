from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self):
        from accounts import checks, schema  # noqa: F401  (registers the system checks and the OpenAPI security schemes)
