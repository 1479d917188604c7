"""One model call under the run's rules: a deadline, a cancel event, and our own retries.

The SDKs' retries are off (``max_retries=0``) because they know neither the run's deadline nor
its cancel event. Here each attempt runs on a helper thread with a timeout of
min(call timeout, time left); the caller's thread watches ``cancel_event`` every ``POLL_S`` and,
on a cancel or when the attempt overruns, aborts the attempt's connections (so the helper thread
ends too) and moves on. 429, 5xx and connection failures are retried with exponential back-off
(or the provider's ``Retry-After``, capped) while the deadline allows another attempt.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .conversation import ProviderCancelled, ProviderError, ProviderUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL_S = 0.05  # how often the caller's thread looks at cancel_event while an attempt runs
JOIN_S = 0.3  # how long an aborted attempt's thread is given to end (it is a daemon thread either way)
OVERRUN_GRACE_S = 0.5  # an attempt past its timeout by this much is aborted (httpx's timeouts are per read)
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
RETRY_AFTER_MAX_S = 30.0  # a provider asking for longer gets asked again after this
MIN_ATTEMPT_S = 0.05  # less time left than this: no attempt is worth starting
CANCELLED = "the model call was cancelled"


@dataclass(frozen=True)
class Failure:
    """What a failed attempt means: retry (after ``retry_after`` if the provider said), or give up."""

    message: str  # safe for the user: no key, no headers
    retryable: bool = False
    retry_after: float | None = None
    again_now: bool = False  # the request was adjusted to the provider (a parameter it refuses): retry at once
    error: type[ProviderError] = ProviderUnavailable  # raised when giving up


class _AttemptOverran(Exception):
    """The attempt did not finish within its timeout (plus grace) and was aborted."""


def call_with_retries(
    attempt: Callable[[float], T],
    *,
    classify: Callable[[BaseException], Failure],
    deadline: float,
    call_timeout_s: float,
    cancel_event: threading.Event,
    abort: Callable[[], None],
    reset: Callable[[], None],
) -> T:
    """``attempt(timeout)`` until it succeeds, a failure is final, the deadline passes or the run is cancelled."""
    failures = 0
    last: Failure | None = None
    while True:
        if cancel_event.is_set():
            raise ProviderCancelled(CANCELLED)
        left = deadline - time.monotonic()
        if left < MIN_ATTEMPT_S:
            raise ProviderUnavailable(_gave_up(last, failures))
        reset()
        try:
            return _run_attempt(attempt, min(call_timeout_s, left), cancel_event, abort)
        except ProviderCancelled:
            raise
        except _AttemptOverran:
            failure = Failure("the provider did not answer in time", retryable=True)
        except Exception as error:  # noqa: BLE001 -- every SDK or transport error is classified, none escapes raw
            failure = classify(error)
        if not failure.retryable and not failure.again_now:
            raise failure.error(failure.message)
        last = failure
        if failure.again_now:
            continue
        failures += 1
        wait = _backoff(failures, failure.retry_after)
        if time.monotonic() + wait + MIN_ATTEMPT_S > deadline:
            raise ProviderUnavailable(_gave_up(last, failures))
        log.info("model call failed (%s); attempt %d in %.2f s", failure.message, failures + 1, wait)
        if cancel_event.wait(wait):
            raise ProviderCancelled(CANCELLED)


def _run_attempt(attempt: Callable[[float], T], timeout: float, cancel_event: threading.Event, abort) -> T:
    outcome: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = attempt(timeout)
        except BaseException as error:  # noqa: BLE001 -- handed to the caller's thread
            outcome["error"] = error
        finally:
            done.set()

    helper = threading.Thread(target=run, name="model-call", daemon=True)
    helper.start()
    give_up_at = time.monotonic() + timeout + OVERRUN_GRACE_S
    while not done.wait(POLL_S):
        if cancel_event.is_set():
            abort()
            helper.join(JOIN_S)
            raise ProviderCancelled(CANCELLED)
        if time.monotonic() >= give_up_at:
            abort()
            helper.join(JOIN_S)
            raise _AttemptOverran()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _backoff(failures: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_MAX_S)
    ceiling = min(BACKOFF_FIRST_S * 2 ** (failures - 1), BACKOFF_MAX_S)
    # Jitter, so runs sharing a provider do not retry in step (not a secret: random is fine).
    return ceiling * random.uniform(0.75, 1.0)  # noqa: S311


def _gave_up(last: Failure | None, failures: int) -> str:
    if last is None:
        return "the run's time limit was reached before the model could be called"
    tries = f"{failures} attempt" + ("s" if failures != 1 else "")
    return f"the provider is unavailable: {last.message} (gave up at the run's time limit after {tries})"
