"""Signals the accounts app sends, for apps that accounts may not import (the layers in pyproject.toml).

Each is sent inside the transaction of the change, after the user row is saved; a receiver that fails
rolls the change back, so it never leaves a thief's credential working. apikeys receives them
(apikeys/apps.py):

- `password_reset`, with `user` and `reset_at`: every key of the user created before `reset_at` is revoked.
- `password_changed`, with `user`, `changed_at` and `revoke_api_keys` (the owner's choice): when it is
  true, every key created before `changed_at` is revoked.
- `user_deactivated`, with `user` and `deactivated_at`: every key of the user is revoked (a reactivated
  account gets no old key back).
"""

from django.dispatch import Signal

password_reset = Signal()
password_changed = Signal()
user_deactivated = Signal()
