"""Why a run failed, as the recovery and alert sensors need it: a data error (retrying cannot
help: dead-letter at once and alert) or anything else (a killed worker, a lost JVM, Python worker
or executor, a missing secret: retry), with a message safe to store and send.

A message is kept only when it comes from our own code (the exception types of
`lake_assets.errors`, Dagster's `Failure`, Dagster's own run failure notes), which names files,
feeds and batches. Errors of other libraries may quote a record value, so only their type and a
fixed phrase are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import dagster as dg

from lake_assets import errors

FaultKind = Literal["data", "infrastructure"]

# Our errors that a retry cannot mend: the data or the metadata must change first.
DATA_ERRORS = frozenset({
    "Failure", "DeltaSchemaError", "DeltaPredicateError", "ColumnSourceError", "BronzeRunError",
    "MetadataError", "CheckEvaluationError",
})
_PHRASES = {
    "Py4JNetworkError": "the run's Spark JVM stopped answering",
    "Py4JError": "the run's Spark JVM failed",
    "Py4JJavaError": "a Spark job failed in the JVM (an executor or its worker was lost)",
    "ConnectionRefusedError": "a connection was refused (Spark JVM or server gone)",
    "SparkConnectGrpcException": "the Spark Connect server was lost or refused the session",
    "PythonException": "a Spark Python worker failed",
    "SparkException": "a Spark job failed (an executor was lost)",
    "EOFError": "a Spark Python worker or JVM connection closed",
    "BrokenPipeError": "a Spark Python worker or JVM connection closed",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:;/|@=+()'\[\]\-]")
_MAX_MESSAGE = 300
_WRAPPERS = ("Dagster", "RetryRequested")


@dataclass(frozen=True)
class RunFault:
    """What made a run fail: its kind, the error type, and a message without record values."""

    kind: FaultKind
    error: str
    message: str

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed (everything but data errors)."""
        return self.kind != "data"


def run_fault(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunFault:
    """Why `run` failed, from its last step failure, else its run failure event.

    A run without either (its process was killed and the run marked failed from outside) is
    an infrastructure fault.
    """
    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    records = instance.get_records_for_run(run.run_id, of_type=kinds, ascending=False,
                                           limit=20).records
    events = [r.event_log_entry.dagster_event for r in records]
    for event in events:
        if event is not None and event.event_type == dg.DagsterEventType.STEP_FAILURE:
            return _step_fault(event.step_failure_data)
    for event in events:
        if event is not None and event.event_type == dg.DagsterEventType.RUN_FAILURE:
            return RunFault("infrastructure", "RunFailure", safe_text(event.message or ""))
    if run.status == dg.DagsterRunStatus.CANCELED:
        return RunFault("infrastructure", "RunCanceled", "the run was canceled")
    return RunFault("infrastructure", "RunLost", "the run ended without a failure event")


def _step_fault(data: object) -> RunFault:
    error = getattr(data, "error", None)
    user_failure = getattr(data, "user_failure_data", None) is not None
    cause = _innermost(error)
    name = getattr(cause, "cls_name", None) or "Error"
    kind: FaultKind = "data" if user_failure or name in DATA_ERRORS else "infrastructure"
    return RunFault(kind, name, _message(name, getattr(cause, "message", "") or ""))


def _innermost(error: object) -> object:
    """The first error in the cause chain that is not a Dagster wrapper around user code."""
    current = error
    while current is not None:
        name = getattr(current, "cls_name", None) or ""
        if not name.startswith(_WRAPPERS):
            return current
        current = getattr(current, "cause", None) or getattr(current, "context", None)
    return error


def _message(name: str, message: str) -> str:
    if name in _our_errors():
        # "lake_assets.errors.X: feed y ..." -> the sentence itself, first line only.
        text = message.split("\n", 1)[0]
        return safe_text(text.split(f"{name}: ", 1)[-1])
    return _PHRASES.get(name, f"{name} (its message is withheld: it may quote record values)")


def _our_errors() -> set[str]:
    found: set[str] = {"Failure"}
    pending: list[type] = [errors.LakehouseError]
    while pending:
        kind = pending.pop()
        found.add(kind.__name__)
        pending.extend(kind.__subclasses__())
    return found


def safe_text(text: str, *, limit: int = _MAX_MESSAGE) -> str:
    """`text` on one line, cut to `limit` characters of a plain alphabet."""
    return _UNSAFE.sub("_", " ".join(text.split()))[:limit]
