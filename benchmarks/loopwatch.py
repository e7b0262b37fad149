"""What held the hub's event loop: every callback the loop runs and every garbage
collection, timed, so that a benchmark can name the work behind its longest stall.

:class:`LoopWatch` wraps ``asyncio.Handle._run`` (every ``call_soon``/``call_later``
callback and every step of every task goes through it) while it is installed: each run
is logged with its start, wall time, the hub thread's CPU time and a name (a task step
is named after the task's coroutine, with the coroutine it stopped in when the step took
over 1 ms). ``gc.callbacks`` logs the collections the same way. :meth:`explain` then
says what ran between the moment a sampler's sleep was due and the moment it woke up:
the callbacks grouped by name, the collections, and the time outside any callback (the
loop's own bookkeeping and ``select``, or the process waiting for a CPU).

The cost is four clock reads and one name per callback (about 1-2 µs), paid by every
mode a benchmark compares alike; logging allocates nothing the garbage collector tracks.
"""

from __future__ import annotations

import asyncio
import gc
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: A step that took longer than this is also named by where its task stopped.
DETAIL_S = 0.001


def describe(callback: Callable[..., Any]) -> str:
    """A short name of a loop callback: ``task <coroutine>`` for a task's step, else the
    callback's qualified name."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', type(coro).__name__)}"
    name = getattr(callback, "__qualname__", None)
    return name if isinstance(name, str) else type(callback).__name__


def innermost(callback: Callable[..., Any]) -> str:
    """Where a task's coroutine chain is suspended now (``''`` for other callbacks)."""
    owner = getattr(callback, "__self__", None)
    if not isinstance(owner, asyncio.Task):
        return ""
    coro: Any = owner.get_coro()
    name = ""
    for _ in range(30):
        if coro is None or not hasattr(coro, "cr_frame"):
            break
        name = getattr(coro, "__qualname__", name)
        coro = getattr(coro, "cr_await", None)
    return name


@dataclass
class LoopWatch:
    """Logs of the loop's callbacks and of the collections (see the module text)."""

    keep: int = 50_000
    #: Ring buffers of the callbacks' runs: start (perf_counter s), wall s, hub-thread
    #: CPU s (arrays of doubles) and names (strings): logging a run allocates no object
    #: the garbage collector tracks. (A deque of tuples would, and its evictions would
    #: free old tracked objects, which lowers CPython's young-generation count and so
    #: delays and enlarges the very collections being measured.)
    _t: array[float] = field(default_factory=lambda: array("d"))
    _wall: array[float] = field(default_factory=lambda: array("d"))
    _cpu: array[float] = field(default_factory=lambda: array("d"))
    _names: list[str] = field(default_factory=list)
    #: runs logged so far (the next one goes to index _count % keep)
    _count: int = 0
    #: (start perf_counter s, wall s, CPU s of the collecting thread, generation)
    collections: list[tuple[float, float, float, int]] = field(default_factory=list)
    _original: Callable[[Any], None] | None = None
    _gc_start: tuple[float, float] = (0.0, 0.0)

    def install(self) -> None:
        """Start logging (idempotent)."""
        if self._original is not None:
            return
        keep = self.keep
        self._t, self._wall, self._cpu = (array("d", bytes(8 * keep)) for _ in range(3))
        self._names = [""] * keep
        self._count = 0
        self.collections = []
        original = asyncio.events.Handle._run
        starts, walls, cpus, names = self._t, self._wall, self._cpu, self._names
        clock, cpu = time.perf_counter, time.thread_time
        watch = self

        def timed_run(handle: asyncio.Handle) -> None:
            t, c = clock(), cpu()
            original(handle)
            wall = clock() - t
            used = cpu() - c
            callback = handle._callback  # type: ignore[attr-defined]
            name = describe(callback)
            if wall > DETAIL_S:
                where = innermost(callback)
                if where and not name.endswith(where):
                    name = f"{name} (stopped in {where})"
            i = watch._count % keep
            starts[i], walls[i], cpus[i], names[i] = t, wall, used, name
            watch._count += 1

        self._original = original
        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._gc)

    def uninstall(self) -> None:
        """Stop logging; the logs stay."""
        if self._original is None:
            return
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign,assignment]
        self._original = None
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = (time.perf_counter(), time.thread_time())
        else:
            t, c = self._gc_start
            self.collections.append((t, time.perf_counter() - t, time.thread_time() - c,
                                     info["generation"]))

    def explain(self, start: float, end: float, top: int = 3) -> dict[str, Any]:
        """What ran on the loop between ``start`` and ``end`` (perf_counter seconds):
        ``callbacks`` (name, count, wall ms, CPU ms; the ``top`` longest names, the rest
        summed as "other callbacks"), ``gc`` (generation, wall ms, CPU ms), and
        ``outside_ms``, the part of the interval in no callback."""
        groups: dict[str, list[float]] = {}
        inside = 0.0
        for k in range(self._count - 1, max(-1, self._count - 1 - self.keep), -1):
            i = k % self.keep
            t, wall, cpu, name = self._t[i], self._wall[i], self._cpu[i], self._names[i]
            if t + wall < start:
                break
            if t >= end:
                continue
            overlap = min(end, t + wall) - max(start, t)
            inside += max(0.0, overlap)
            g = groups.setdefault(name, [0, 0.0, 0.0])
            g[0] += 1
            g[1] += wall * 1000
            g[2] += cpu * 1000
        ranked = sorted(groups.items(), key=lambda kv: -kv[1][1])
        callbacks = [(name, int(g[0]), g[1], g[2]) for name, g in ranked[:top]]
        rest = ranked[top:]
        if rest:
            callbacks.append((f"{len(rest)} other callbacks", sum(int(g[0]) for _, g in rest),
                              sum(g[1] for _, g in rest), sum(g[2] for _, g in rest)))
        # A collection may run (and be logged) while this runs: read a copy.
        collections = [(gen, wall * 1000, cpu * 1000)
                       for t, wall, cpu, gen in self.collections[:]
                       if t < end and t + wall > start and wall > 0.0005]
        return {"callbacks": callbacks, "gc": collections,
                "outside_ms": max(0.0, (end - start - inside) * 1000)}


def render(detail: dict[str, Any]) -> str:
    """One line of :meth:`LoopWatch.explain`'s answer."""
    parts = [f"{n} x {name} {wall:.1f} ms (CPU {cpu:.1f})"
             for name, n, wall, cpu in detail["callbacks"]]
    gcs = detail["gc"]
    if gcs:
        parts.append("of which garbage collection " + ", ".join(
            f"gen{gen} {wall:.1f} ms (CPU {cpu:.1f})" for gen, wall, cpu in gcs))
    parts.append(f"outside callbacks {detail['outside_ms']:.1f} ms")
    return "; ".join(parts)
