"""Classify Slurm job states as reported by FirecREST v2.

FirecREST reports ``status.state`` strings such as ``PENDING``, ``RUNNING``,
``COMPLETING``, ``COMPLETED``, ``FAILED``, ``TIMEOUT`` and ``CANCELLED by <uid>``
(the uid is part of the string, so states are compared by their first word).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Phase(enum.Enum):
    """What a Slurm state means for a JupyterLab server."""

    #: Waiting for resources (or held, or being requeued): not started yet.
    QUEUED = "queued"
    #: The allocation exists and the batch script runs.
    RUNNING = "running"
    #: Slurm is ending the job (COMPLETING): the server is going away; the final
    #: state and exit code follow.
    ENDING = "ending"
    #: The job ended: the server is gone.
    TERMINAL = "terminal"
    #: A state this module does not know: treated as "still there" by poll().
    UNKNOWN = "unknown"


#: States that mean "waiting, not started".
QUEUED_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESV_DEL_HOLD",
        "SPECIAL_EXIT",
        "SUSPENDED",
        "STOPPED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "UPDATE_DB",
        "POWER_UP_NODE",
    }
)
#: States that mean "the batch script runs".
RUNNING_STATES = frozenset({"RUNNING"})
#: States that mean "the job is being ended".
ENDING_STATES = frozenset({"COMPLETING"})
#: States that mean "the job is over": the server ends.
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
    }
)


def base_state(state: str) -> str:
    """Return the bare state word: ``"CANCELLED by 1000"`` → ``"CANCELLED"``.

    Slurm may also append a ``+`` (``CANCELLED+``) in some outputs; it is dropped.
    """
    word = state.strip().split(" ", 1)[0] if state.strip() else ""
    return word.rstrip("+").upper()


def classify(state: str) -> Phase:
    """Return the :class:`Phase` of a FirecREST ``status.state`` string."""
    word = base_state(state)
    if word in RUNNING_STATES:
        return Phase.RUNNING
    if word in QUEUED_STATES:
        return Phase.QUEUED
    if word in ENDING_STATES:
        return Phase.ENDING
    if word in TERMINAL_STATES:
        return Phase.TERMINAL
    return Phase.UNKNOWN


@dataclass(frozen=True)
class JobStatus:
    """The parts of a FirecREST job record the spawner acts on."""

    job_id: str
    state: str
    reason: str
    exit_code: int | None
    nodes: str
    #: ``time.limit`` in seconds (FirecREST gives minutes); None: not given / no limit.
    time_limit: int | None = None
    #: ``time.start``, epoch seconds: the start, or while pending Slurm's estimate;
    #: None when FirecREST gave 0/null.
    start_time: int | None = None

    @property
    def phase(self) -> Phase:
        """The :class:`Phase` of :attr:`state`."""
        return classify(self.state)

    @property
    def over(self) -> bool:
        """Whether the job ended or is ending (no server can run any more)."""
        return self.phase in (Phase.ENDING, Phase.TERMINAL)

    @property
    def has_reason(self) -> bool:
        """Whether Slurm gave a reason worth showing (FirecREST sends ``"None"`` for none)."""
        return bool(self.reason) and self.reason != "None"

    def describe(self) -> str:
        """A one-line human description, e.g. ``"PENDING (Resources)"``."""
        text = self.state or "UNKNOWN"
        if self.has_reason:
            text += f" ({self.reason})"
        if self.exit_code not in (None, 0) and self.phase is Phase.TERMINAL:
            text += f", exit code {self.exit_code}"
        return text

    @classmethod
    def from_firecrest(cls, record: Mapping[str, Any]) -> JobStatus:
        """Build from one element of FirecREST's ``{"jobs": [...]}`` answer.

        Raises ValueError when the record has no ``jobId`` or ``status.state``.
        """
        try:
            job_id = str(record["jobId"])
            status = record["status"]
            state = str(status["state"])
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"FirecREST job record lacks {exc}: expected jobId and status.state "
                "(is the FirecREST URL pointing at a FirecREST v2 server?)"
            ) from exc
        reason = status.get("stateReason")
        exit_code = status.get("exitCode")
        times = record.get("time")
        times = times if isinstance(times, Mapping) else {}
        limit, start = _integer(times.get("limit")), _integer(times.get("start"))
        return cls(
            job_id=job_id,
            state=state,
            reason="" if reason is None else str(reason),
            exit_code=exit_code if isinstance(exit_code, int) else None,
            nodes=str(record.get("nodes") or ""),
            time_limit=None if limit is None else limit * 60,
            start_time=start if start else None,
        )


def _integer(value: Any) -> int | None:
    """``value`` when it is a JSON integer (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
