"""The project package. `config.celery_app` is the Celery application (config/celery.py), imported on first
use: a worker imports it as it starts (`celery -A config`), a web process only when it first queues a job, so
the web's workers do not carry Celery, kombu and their dependencies from the start (3.4 MB of each worker's
memory, measured). @shared_task binds to it whenever it is imported.
"""


def __getattr__(name: str):
    if name == "celery_app":
        from config.celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
