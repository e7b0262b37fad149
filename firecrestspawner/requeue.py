"""Whether a job was requeued (or interrupted so that it must not come back), and what to say.

Unless the site sets ``allow_requeue``, a server ends when its job is seen in one of
:data:`REQUEUE_STATES`, or back in PENDING after FirecREST reported it RUNNING (Slurm
requeued it: the job may run again elsewhere, later, and its callback would be
refused). The start flow and the poll flow both judge a status with :func:`requeued`.
"""

from __future__ import annotations

from .slurm import JobStatus, base_state

#: States that end a server unless the site allows requeueing.
REQUEUE_STATES = frozenset({"REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED",
                            "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE"})


def requeued(status: JobStatus, seen_running: bool) -> bool:
    """Whether ``status`` means the job was requeued or interrupted. PENDING counts only
    after FirecREST itself reported RUNNING (``seen_running``): its accounting lags, so a
    job whose launcher already called back may still show PENDING."""
    word = base_state(status.state)
    return word in REQUEUE_STATES or (word == "PENDING" and seen_running)


def requeue_message(job_id: str, status: JobStatus) -> str:
    """The sentence the user (and the log) gets for a requeued job."""
    word = base_state(status.state)
    why = ("it went back to PENDING after running (requeued by Slurm)"
           if word not in REQUEUE_STATES else f"Slurm reports {status.describe()}")
    return (f"Job {job_id} was interrupted: {why}. The job is cancelled; start "
            "the server again")
