"""Signals the accounts app sends, for apps that accounts may not import (the layers in pyproject.toml).

`password_reset` is sent inside the reset's transaction, after the new password is saved, with `user`
and `reset_at`: apikeys revokes every key of the user created before `reset_at` (apikeys/apps.py). A
receiver that fails rolls the reset back, so a reset never leaves a thief's credential working.
"""

from django.dispatch import Signal

password_reset = Signal()
