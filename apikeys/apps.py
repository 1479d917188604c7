from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self):
        # Registers the X-API-Key OpenAPI scheme. Imported here, not in authentication.py:
        # drf_spectacular imports the DRF settings, which import the authentication classes.
        # accounts may not import apikeys (pyproject's layers), so a reset, a password change or a
        # deactivation tells us by a signal.
        from accounts.signals import password_changed, password_reset, user_deactivated
        from apikeys import schema  # noqa: F401
        from apikeys.services import (
            api_keys_revoke_on_deactivation,
            api_keys_revoke_on_password_change,
            api_keys_revoke_on_password_reset,
        )

        password_reset.connect(api_keys_revoke_on_password_reset, dispatch_uid="apikeys.revoke_on_password_reset")
        password_changed.connect(api_keys_revoke_on_password_change, dispatch_uid="apikeys.revoke_on_password_change")
        user_deactivated.connect(api_keys_revoke_on_deactivation, dispatch_uid="apikeys.revoke_on_deactivation")
