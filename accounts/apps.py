from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self):
        from accounts import checks, schema  # noqa: F401  (registers the system checks and the OpenAPI security schemes)
        from accounts.models import User
        from accounts.services import user_row_changed

        # Cached sessions carry the user row (is_active, is_staff, ...): any save or deletion outdates them,
        # whoever makes it (the Django admin saves through the ORM, not through a service).
        post_save.connect(user_row_changed, sender=User, dispatch_uid="accounts.user_saved_forget_sessions")
        post_delete.connect(user_row_changed, sender=User, dispatch_uid="accounts.user_deleted_forget_sessions")
