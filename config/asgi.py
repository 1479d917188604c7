"""ASGI entry point. Without DJANGO_SETTINGS_MODULE it runs the production settings
(DEBUG off, SECRET_KEY required), as a server must; `manage.py` defaults to the development ones."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_asgi_application()
