"""WSGI entry point (gunicorn config.wsgi). Without DJANGO_SETTINGS_MODULE it runs the production settings
(DEBUG off, SECRET_KEY required), as a server must; `manage.py` defaults to the development ones."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_wsgi_application()
