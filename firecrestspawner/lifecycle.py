"""The life of one server as a state machine: every state and every allowed transition.

docs/spawner.md draws this table. :class:`Lifecycle` records the current state of a
spawner and refuses (logs as an error, a programming error) a transition that the
table does not list.

States:

``IDLE``        no job: never started, or the last job was confirmed ended (or handed
                to the reconciler) and JupyterHub cleared the state.
``SUBMITTING``  ``start()`` checks options, sweeps orphans and submits the batch script.
``QUEUED``      the job is known to Slurm and waits for resources.
``STARTING``    the job runs; the hub waits for the launcher's callback.
``RUNNING``     the callback came: JupyterLab serves the user.
``STOPPING``    the spawner cancelled the job and waits for FirecREST to confirm its end.
``ENDED``       FirecREST confirmed a terminal state (or, twice, "Job not found").
``HANDED_OVER`` the end could not be confirmed in time: the reconciler keeps cancelling
                the job until FirecREST confirms (the server is gone for the user).
"""

from __future__ import annotations

import enum
import logging

from .metrics import PhaseClock


class State(enum.Enum):
    """Where one server is in its life (see the module text)."""

    IDLE = "idle"
    SUBMITTING = "submitting"
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    ENDED = "ended"
    HANDED_OVER = "handed over"


#: Every allowed transition, in one place: state -> states it may go to.
TRANSITIONS: dict[State, frozenset[State]] = {
    # start() begins; load_state() restores a running (or queued) server
    State.IDLE: frozenset({State.SUBMITTING, State.RUNNING, State.QUEUED, State.HANDED_OVER}),
    # submitted / refused before any job existed / the answer was lost
    State.SUBMITTING: frozenset({State.QUEUED, State.IDLE, State.HANDED_OVER}),
    # the job starts / ends while queued / start fails or is stopped
    State.QUEUED: frozenset({State.STARTING, State.RUNNING, State.ENDED, State.STOPPING}),
    # the callback arrives / the job ends / start fails or is stopped
    State.STARTING: frozenset({State.RUNNING, State.ENDED, State.STOPPING}),
    # poll() sees the end / stop() or a requeue cancels the job
    State.RUNNING: frozenset({State.ENDED, State.STOPPING}),
    # the end is confirmed, or left to the reconciler
    State.STOPPING: frozenset({State.ENDED, State.HANDED_OVER}),
    # clear_state() (JupyterHub always calls it after a stop)
    State.ENDED: frozenset({State.IDLE}),
    State.HANDED_OVER: frozenset({State.IDLE}),
}


class Lifecycle:
    """The current :class:`State` of one spawner, changed only along :data:`TRANSITIONS`."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter[logging.Logger],
                 name: str) -> None:
        self.state = State.IDLE
        self.log = log
        self.name = name
        #: Every transition taken: (from, to, why), for logs and tests.
        self.history: list[tuple[State, State, str]] = []
        #: Times the phases of a start for the metrics (docs/spawner.md#metrics).
        self.clock = PhaseClock()

    def to(self, new: State, why: str = "") -> None:
        """Move to ``new``; an unlisted transition is logged as an error (and taken, so
        that the job is still tracked)."""
        old = self.state
        if old is new:
            return
        if new not in TRANSITIONS[old]:
            self.log.error("%s: unexpected lifecycle transition %s -> %s (%s)", self.name,
                           old.name, new.name, why)
        self.history.append((old, new, why))
        self.state = new
        self.clock.mark(new.value)
        self.log.debug("%s: %s -> %s %s", self.name, old.name, new.name, why)

    def reset(self) -> None:
        """Back to IDLE (clear_state)."""
        if self.state is not State.IDLE:
            self.to(State.IDLE, "state cleared")
