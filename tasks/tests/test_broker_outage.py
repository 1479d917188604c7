"""The broker down: an initiate still answers 202 (the run is in the database), the run is held since its message
never reached the broker, and the first sweep after the broker is back sends it. Publishing fails fast."""

import logging
import os
import subprocess
import sys

import pytest
from celery import Celery
from django.conf import settings

from tasks import services
from tasks.models import Task, TaskStatus
from tasks.tests.factories import STEPS, TaskFactory, create_task, initiate

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


def celery_app_with_broker(url: str) -> Celery:
    """The project's Celery app, configured from the settings as config/celery.py does, on another broker; not made
    Celery's current app, which the @shared_task proxies (tasks.jobs) would otherwise follow after this test."""
    app = Celery("gatehouse", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = url
    app.conf.broker_transport_options = {}  # the settings' own may be the filesystem transport's
    return app


@pytest.fixture
def use_broker(monkeypatch):
    """Make `config.celery_app` (what the services send with) an app on the broker at `url`."""

    # Celery prefers this variable to its setting (the test environment names the tests' Redis broker).
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)

    def use(url: str) -> Celery:
        app = celery_app_with_broker(url)
        monkeypatch.setattr("config.celery.app", app)
        return app

    return use


def messages(app: Celery) -> list[tuple]:
    """The (task name, args) of every message waiting in the default queue of `app`'s broker."""
    found = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(settings.CELERY_TASK_DEFAULT_QUEUE)
        while queue.qsize():
            message = queue.get(timeout=1)
            found.append((message.headers["task"], tuple(message.payload[0])))
            message.ack()
        queue.close()
    return found


def test_initiate_with_the_broker_down_answers_202_and_the_next_sweep_sends_the_run(
    auth_client, use_broker, django_capture_on_commit_callbacks, caplog
):
    use_broker("redis://127.0.0.1:1/0")  # nothing listens on port 1: refused, as a stopped Redis
    task_id = create_task(auth_client)
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        body = initiate(auth_client, task_id, {"steps": STEPS})

    assert body["status"] == "queued"
    assert "could not send run 1 of task" in caplog.text
    task = Task.objects.get(pk=task_id)
    # Held: no message exists, so the resend rule's 5 minutes do not apply; the next sweep sends it.
    assert (task.status, task.enqueued_at, task.dispatched_at) == (TaskStatus.QUEUED, None, None)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.task_sweep_stale_runs().dispatched == [task_id]  # tried: still down, so held again
    assert Task.objects.get(pk=task_id).enqueued_at is None

    back = use_broker("memory://")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.task_sweep_stale_runs().dispatched == [task_id]
    assert Task.objects.get(pk=task_id).enqueued_at is not None
    assert messages(back) == [("tasks.run_task", (task_id, 1))]


def test_a_message_the_worker_got_although_the_publish_failed_is_neither_lost_nor_run_twice(
    user, use_broker, django_capture_on_commit_callbacks
):
    """A publish that timed out after Redis took the message: the worker claims the run before it is held, and
    the hold (conditional on the run still waiting) leaves the running run alone."""
    use_broker("redis://127.0.0.1:1/0")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        task = services.task_initiate(task=TaskFactory(owner=user), instruction="check", steps=STEPS)
    assert services.task_run_claim(task_id=task.pk, run_number=1) is not None  # the message arrived after all
    (send,) = callbacks
    send()  # its publish reports a failure
    task.refresh_from_db()
    assert (task.status, task.enqueued_at is not None) == (TaskStatus.RUNNING, True)


def test_publishing_to_a_broker_that_never_answers_fails_instead_of_holding_the_request(silent_redis_url, tmp_path):
    """With kombu's defaults the publish waits forever; with the settings' timeouts and one retry it gives up."""
    script = (
        "import django; django.setup()\n"
        "import config\n"
        "try:\n"
        "    config.celery_app.send_task('tasks.run_task', args=(0, 0))\n"
        "except Exception as error:\n"
        "    print(type(error).__name__)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_BROKER_URL": silent_redis_url,
        "VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "OperationalError", done.stderr
