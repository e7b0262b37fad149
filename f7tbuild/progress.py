"""Per-step status lines from docker build output (classic builder and BuildKit plain)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLASSIC_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
CLASSIC_CACHED = re.compile(r"^ ---> Using cache$")
BUILDKIT_STEP = re.compile(r"^#(\d+) \[([^\]]+)\] (.*)$")
BUILDKIT_DONE = re.compile(r"^#(\d+) (DONE [0-9.]+s|CACHED|ERROR.*)$")


@dataclass
class StepTracker:
    """Turns build output lines into ``step i/n started/done`` status lines."""

    emit: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    _current: tuple[str, float, bool] | None = None
    _buildkit: dict[str, tuple[str, float]] = field(default_factory=dict)
    steps: list[tuple[str, float, bool]] = field(default_factory=list)

    def feed(self, line: str) -> None:
        """Consume one output line."""
        line = line.rstrip("\n")
        m = CLASSIC_STEP.match(line)
        if m:
            self._finish()
            label = f"{m.group(1)}/{m.group(2)}"
            self.emit(f"step {label} started: {m.group(3)[:100]}")
            self._current = (label, self.clock(), False)
            return
        if CLASSIC_CACHED.match(line) and self._current:
            self._current = (self._current[0], self._current[1], True)
            return
        m = BUILDKIT_STEP.match(line)
        if m and m.group(1) not in self._buildkit:
            self._buildkit[m.group(1)] = (m.group(2), self.clock())
            self.emit(f"step [{m.group(2)}] started: {m.group(3)[:100]}")
            return
        m = BUILDKIT_DONE.match(line)
        if m and m.group(1) in self._buildkit:
            label, start = self._buildkit.pop(m.group(1))
            cached = m.group(2) == "CACHED"
            self._record(f"[{label}]", start, cached, m.group(2).startswith("ERROR"))

    def close(self) -> None:
        """Finish the last classic step (call at the end of the stream)."""
        self._finish()

    def _finish(self) -> None:
        if self._current:
            label, start, cached = self._current
            self._record(label, start, cached, False)
            self._current = None

    def _record(self, label: str, start: float, cached: bool, failed: bool) -> None:
        took = self.clock() - start
        self.steps.append((label, took, cached))
        state = "FAILED" if failed else ("cached" if cached else "done")
        self.emit(f"step {label} {state} in {took:.1f}s")
