"""The Celery application. Its configuration lives in Django settings under CELERY_*."""

import os

from celery import Celery

from config.logging import install_celery_logging

# Production unless told otherwise, like config.wsgi: a worker started bare must not run DEBUG settings
# (scripts/dev and the tests name theirs).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("gatehouse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")
# Worker and beat log through Django's LOGGING (JSON in production) with task and request ids.
install_celery_logging()
