"""A local SMTP server for the mail tests, and a way to run the mail jobs in the test process.

A pytest plugin (the root conftest.py lists it in `pytest_plugins`), so every app's tests can ask for
`smtp_server`, `smtp_mail` and `run_jobs` by name.

- `smtp_server`: aiosmtpd's Controller on 127.0.0.1 and a free port, speaking real SMTP; what it receives
  is parsed into `email.message.EmailMessage`s. It can be told to refuse the next N messages (451, a
  temporary failure) to exercise the job's retries.
- `smtp_mail`: Django's settings point the SMTP backend at it (the tests' default backend is locmem).
- `run_jobs`: a context manager. The transaction callbacks queued inside it run at its end (pytest-django's
  django_capture_on_commit_callbacks: a non-transactional test never commits), and the jobs they send run
  here through Celery's own tracer (`Task.apply`, retries included) instead of going to a broker. Only the
  broker is stood in for; tests with the `worker` marker prove the real path with a worker process.
"""

import email
import logging
import re
import socket
import threading
import time
from contextlib import contextmanager
from email import policy
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller

LINK = re.compile(r"https?://\S+\?uid=[^\s&]+&token=\S+")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """The aiosmtpd handler: keeps what it receives; refuses the next `refuse_next` messages with 451."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.refuse_next = 0
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 -- aiosmtpd's hook name
        with self._lock:
            if self.refuse_next:
                self.refuse_next -= 1
                self.refused += 1
                return "451 4.3.0 Try again later"
            message = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            self.messages.append(message)
        return "250 OK"


class SMTPServer:
    def __init__(self, controller: Controller, mailbox: Mailbox):
        self.controller, self.mailbox = controller, mailbox
        self.host, self.port = controller.hostname, controller.port

    @property
    def url(self) -> str:
        """For EMAIL_URL (a worker's environment)."""
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list:
        return list(self.mailbox.messages)

    def to(self, address: str) -> list:
        return [m for m in self.messages if address.lower() in m["To"].lower()]

    def wait_for(self, count: int = 1, *, timeout: float = 30) -> list:
        deadline = time.monotonic() + timeout
        while len(self.mailbox.messages) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"the SMTP server received {len(self.mailbox.messages)} of {count} mail(s) in {timeout}s")
            time.sleep(0.1)
        return self.messages


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def link_in(message) -> tuple[str, dict]:
    """The link of a reset or verification mail (its plain text): (url, {"uid": ..., "token": ...})."""
    found = LINK.findall(text_of(message))
    assert len(found) == 1, f"expected one link in the mail, found {found}"
    query = parse_qs(urlsplit(found[0]).query)
    return found[0], {"uid": query["uid"][0], "token": query["token"][0]}


@pytest.fixture
def smtp_server():
    # aiosmtpd logs every SMTP command at INFO: noise in a failing test's output.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield SMTPServer(controller, mailbox)
    controller.stop()


@pytest.fixture
def smtp_mail(settings, smtp_server):
    """Mails sent in this process go over SMTP to `smtp_server`."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    return smtp_server


@pytest.fixture
def run_jobs(django_capture_on_commit_callbacks):
    """`with run_jobs() as sent:` runs what is queued inside at its end; `sent` lists (job name, kwargs)."""
    import accounts.jobs  # noqa: F401 -- registers the accounts jobs with the app, as a worker's autodiscovery does
    from config import celery_app

    @contextmanager
    def run(*, execute: bool = True):
        sent: list[tuple[str, dict]] = []

        def send_task(name, args=None, kwargs=None, **options):
            sent.append((name, dict(kwargs or {})))
            if execute:
                # throw=False lets Celery's eager retry run (a Retry raised would end the job); a failure after
                # the retries is raised here.
                result = celery_app.tasks[name].apply(args=args, kwargs=kwargs, throw=False)
                if result.failed():
                    raise result.result

        with pytest.MonkeyPatch.context() as patch, django_capture_on_commit_callbacks(execute=True):
            patch.setattr(celery_app, "send_task", send_task)
            yield sent

    return run
