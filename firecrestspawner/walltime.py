"""Walltime: the job's time limit and Slurm's estimated start on the progress page, its end on the home page.

FirecREST v2's job record carries ``time{elapsed, start, end, suspended, limit}``:
epoch seconds (0 or null: not yet) and ``limit`` in **minutes** (null: no limit), as
sacct/squeue give them. While a job is pending, ``start`` is Slurm's estimate of its
start when the scheduler computed one (squeue's StartTime; 0 otherwise). From these:

* the progress page's "queued" event shows the time limit and, when Slurm has one, the
  estimated start; the "running" event shows the time limit and the end
  (start + limit);
* :class:`WalltimeMixin` keeps ``job_time_limit`` and ``job_end`` on the spawner (saved
  with its state, so that a restarted hub still knows them), which the hub's home page
  shows for each running server (``hub_templates/home.html``, found through
  ``c.JupyterHub.template_paths = [TEMPLATES]``; the hub image sets it).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from traitlets import HasTraits, Int

from .hubconfig import HUB_TEMPLATES
from .slurm import JobStatus, Phase

#: The directory of the hub page templates (for ``JupyterHub.template_paths``).
TEMPLATES = HUB_TEMPLATES


def duration_text(seconds: int) -> str:
    """``5400`` -> ``"1 h 30 min"``; days when over 24 h (``"2 d 4 h"``)."""
    minutes = max(0, int(seconds)) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def clock_text(epoch: int) -> str:
    """``"2026-11-30 17:45 UTC"`` for epoch seconds."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def iso(epoch: int) -> str:
    """ISO 8601 (UTC) of epoch seconds, for ``<time datetime=...>``."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def limit_text(status: JobStatus) -> str:
    """``"time limit 1 h"``, ``"no time limit"``, or ``""`` when FirecREST gave none."""
    if status.time_limit is None:
        return ""
    return "no time limit" if status.time_limit <= 0 else f"time limit {duration_text(status.time_limit)}"


def end_of(status: JobStatus) -> int:
    """When a started job reaches its time limit (epoch s); 0 when unknown or unlimited."""
    if status.phase is Phase.QUEUED or not status.start_time or not status.time_limit:
        return 0
    return status.start_time + status.time_limit


def queued_note(status: JobStatus, now: float | None = None) -> str:
    """What the progress page adds to a "queued" event: ``" · time limit 1 h · Slurm's
    estimated start 2026-11-30 17:45 UTC"`` (parts FirecREST did not give are left out)."""
    parts = [limit_text(status)]
    start = status.start_time
    if start and start > (time.time() if now is None else now) - 60:
        parts.append(f"Slurm's estimated start {clock_text(start)}")
    return "".join(f" · {p}" for p in parts if p)


def running_note(status: JobStatus) -> str:
    """What the progress page adds to the "running" event: ``" · time limit 1 h, ends
    2026-11-30 18:45 UTC"``."""
    text = limit_text(status)
    end = end_of(status)
    if end:
        text = f"{text}, ends {clock_text(end)}"
    return f" · {text}" if text else ""


def observe(spawner: Any, status: JobStatus) -> None:
    """Record the limit and end of a job record on the spawner (a :class:`WalltimeMixin`)."""
    if status.time_limit is not None:
        spawner.job_time_limit = max(0, status.time_limit)
    end = end_of(status)
    if end:
        spawner.job_end = end


class WalltimeMixin(HasTraits):
    """The job's time limit and end on the spawner (state, and the home page's text)."""

    #: The job's time limit in seconds (0: unknown or none).
    job_time_limit = Int(0)
    #: When the job reaches its time limit, epoch seconds (0: not known yet).
    job_end = Int(0)

    @property
    def walltime_text(self) -> str:
        """The home page's line, e.g. ``"ends 2026-11-30 18:45 UTC (time limit 1 h)"``;
        empty when nothing is known."""
        limit = f"time limit {duration_text(self.job_time_limit)}" if self.job_time_limit \
            else ""
        if self.job_end:
            return f"ends {clock_text(self.job_end)}" + (f" ({limit})" if limit else "")
        return f"{limit}; end not known yet" if limit else ""

    @property
    def job_end_iso(self) -> str:
        """``job_end`` as ISO 8601 (empty when unknown)."""
        return iso(self.job_end) if self.job_end else ""

    def get_state(self) -> dict[str, Any]:
        """Adds the job's time limit and end to the spawner's saved state."""
        state: dict[str, Any] = super().get_state()  # type: ignore[misc]
        if self.job_end or self.job_time_limit:
            state.update(job_end=self.job_end, job_time_limit=self.job_time_limit)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restores what :meth:`get_state` saved."""
        super().load_state(state)  # type: ignore[misc]
        self.job_end = int(state.get("job_end") or 0)
        self.job_time_limit = int(state.get("job_time_limit") or 0)

    def clear_state(self) -> None:
        """Forgets the job's time limit and end."""
        super().clear_state()  # type: ignore[misc]
        self.job_end = self.job_time_limit = 0
