"""Transient tracking-store failures, told apart from user errors and retried with backoff.

A server that restarts, a proxy answering 5xx or SQLite's `database is locked` go away by
themselves: the step that met them runs again (it is idempotent, see
`tasks.registry.registration`). A wrong name, a refused alias or a deleted experiment never change
on retry and fail at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from mlflow.exceptions import MlflowException
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from tasks.core.errors import RefineryError

T = TypeVar("T")
LOGGER = logging.getLogger(__name__)
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "WORKSPACE_TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}
_TRANSIENT_TEXT = (
    "database is locked",
    "connection refused",
    "max retries exceeded",
    "connection aborted",
    "connection reset",
    "read timed out",
    "remote end closed connection",
    "too many 500 error responses",
    "too many 502 error responses",
    "too many 503 error responses",
    "too many 504 error responses",
    "bad gateway",
    "service unavailable",
    "gateway timeout",
)


def is_transient(err: BaseException) -> bool:
    """True for failures of the store's availability (connection, 5xx, a locked SQLite file)."""
    if isinstance(err, RefineryError):
        return False
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    if isinstance(err, MlflowException) and err.error_code in _TRANSIENT_CODES:
        return True
    text = str(err).lower()
    return any(marker in text for marker in _TRANSIENT_TEXT)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    first_line = str(error).splitlines()[0][:200] if error else "?"
    LOGGER.warning(
        "tracking store unavailable (attempt %d): %s; retrying in %.0f s",
        state.attempt_number,
        first_line,
        wait,
    )


def with_retries(action: Callable[[], T], attempts: int, first_wait_s: float) -> T:
    """`action()`, run again after a transient failure with exponential backoff (`attempts` in all)."""
    retrying = Retrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential(multiplier=first_wait_s, min=first_wait_s, max=60 * first_wait_s),
        retry=retry_if_exception(is_transient),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(action)
