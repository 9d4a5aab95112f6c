"""Which tracking-store failures are retried, and how often."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from tasks.core.errors import RefineryError
from tasks.registry.retrying import is_transient, with_retries

REFUSED = (
    "API request to http://127.0.0.1:5999/api/2.0/mlflow/runs/create failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=5999): Max retries exceeded with url: ... "
    "(Caused by NewConnectionError(...: [Errno 111] Connection refused))"
)


@pytest.mark.parametrize(
    "error",
    [
        MlflowException(REFUSED, error_code=INTERNAL_ERROR),
        MlflowException("(sqlite3.OperationalError) database is locked"),
        MlflowException("API request failed: too many 503 error responses"),
        MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_availability_failures_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        MlflowException("Invalid alias name: 'v9' is reserved", error_code=INVALID_PARAMETER_VALUE),
        MlflowException("Registered Model with name=x not found", error_code=RESOURCE_DOES_NOT_EXIST),
        RefineryError("register.experiment: 'x' is deleted in MLflow"),
        OSError(28, "No space left on device"),
        ValueError("bad"),
    ],
)
def test_user_errors_and_a_full_disk_are_not_retried(error: Exception) -> None:
    assert not is_transient(error)


def test_a_transient_failure_is_retried_until_it_succeeds() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise MlflowException("database is locked")
        return "done"

    assert with_retries(flaky, attempts=4, first_wait_s=0.01) == "done"
    assert len(calls) == 3


def test_retries_stop_at_the_limit_and_a_user_error_is_raised_at_once() -> None:
    calls: list[str] = []

    def down() -> None:
        calls.append("down")
        raise MlflowException(REFUSED)

    with pytest.raises(MlflowException, match="Connection refused"):
        with_retries(down, attempts=2, first_wait_s=0.01)
    assert calls == ["down", "down"]

    def wrong() -> None:
        calls.append("wrong")
        raise MlflowException("'v9' is reserved", error_code=INVALID_PARAMETER_VALUE)

    with pytest.raises(MlflowException, match="reserved"):
        with_retries(wrong, attempts=5, first_wait_s=0.01)
    assert calls.count("wrong") == 1
