"""Fault injection on the double's HTTP layer.

``fc.faults.add("POST /compute/{system_name}/jobs", count=2, status=503)`` makes the
next two submissions answer 503 (with a spec-conformant error body);
``delay=`` holds a request for that many seconds before it is handled normally
(or before the injected status; with ``late=True`` the request is handled first and
only the answer is late: a job submitted whose answer the client never sees); ``reset=True`` closes the connection without an
answer. ``route`` is the OpenAPI route key (``"METHOD /template"``) or ``"*"``.
Faults are consumed in the order they were added; each applies to ``count`` requests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    """One injected fault and how many more requests it applies to."""

    route: str
    count: int
    status: int | None = None
    delay: float = 0.0
    reset: bool = False
    message: str = "Injected fault (firecrest double)"
    hits: int = 0
    late: bool = False


class Faults:
    """The pending faults of one double (thread-safe: tests may add from any thread)."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []
        self._lock = threading.Lock()
        #: Faults that were fully consumed, in order.
        self.spent: list[Fault] = []

    def add(self, route: str = "*", count: int = 1, *, status: int | None = None,
            delay: float = 0.0, reset: bool = False,
            message: str = "Injected fault (firecrest double)", late: bool = False) -> Fault:
        """Inject a fault for the next ``count`` requests to ``route``."""
        if status is None and not delay and not reset:
            raise ValueError("a fault needs status=, delay= or reset=True")
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"status must be a 4xx/5xx code, got {status}")
        fault = Fault(route, count, status, delay, reset, message, late=late)
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self, route: str) -> Fault | None:
        """The fault for this request (consuming one use), or None."""
        with self._lock:
            for fault in self._pending:
                if fault.route in ("*", route):
                    fault.hits += 1
                    fault.count -= 1
                    if fault.count <= 0:
                        self._pending.remove(fault)
                        self.spent.append(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()

    @property
    def pending(self) -> list[Fault]:
        """Faults not yet used up."""
        with self._lock:
            return list(self._pending)
