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
        from django.db.models.signals import post_delete, post_save

        from accounts.signals import password_changed, password_reset, user_deactivated
        from apikeys import schema  # noqa: F401
        from apikeys.models import APIKey
        from apikeys.services import (
            api_key_row_changed,
            api_keys_revoke_on_deactivation,
            api_keys_revoke_on_password_change,
            api_keys_revoke_on_password_reset,
        )

        password_reset.connect(api_keys_revoke_on_password_reset, dispatch_uid="apikeys.revoke_on_password_reset")
        password_changed.connect(api_keys_revoke_on_password_change, dispatch_uid="apikeys.revoke_on_password_change")
        user_deactivated.connect(api_keys_revoke_on_deactivation, dispatch_uid="apikeys.revoke_on_deactivation")
        # Keys are cached with their owner in every process (config/local_cache.py): an edit anywhere outdates them.
        post_save.connect(api_key_row_changed, sender=APIKey, dispatch_uid="apikeys.key_saved_forget_cached")
        post_delete.connect(api_key_row_changed, sender=APIKey, dispatch_uid="apikeys.key_deleted_forget_cached")
