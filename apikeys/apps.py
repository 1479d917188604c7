from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self):
        # Registers the X-API-Key OpenAPI scheme. Imported here, not in authentication.py:
        # drf_spectacular imports the DRF settings, which import the authentication classes.
        from apikeys import schema  # noqa: F401
