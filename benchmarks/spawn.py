"""Benchmark: N concurrent spawns of the real FirecRESTSpawner against the FirecREST double.

Run ``python -m benchmarks.spawn`` (``nox -s bench-spawner``); ``--help`` lists the knobs.

Set-up
    * The FirecREST double (spec-validated, with its identity provider) serves from its
      own thread and event loop, so its CPU stays out of the measured loop (it still
      shares the GIL, which the figures therefore include).
    * The "hub" loop is this process's main loop. It runs N real
      ``firecrestspawner.spawner.FirecRESTSpawner`` objects (pyfirecrest 3.10 clients,
      per-user token objects backed by an in-memory ``auth_state`` holding IdP tokens)
      built around a minimal JupyterHub ``Hub``/user, not a whole JupyterHub.
    * Jobs queue for a deterministic, per-job delay spread over the measured range of a
      real idle system (0.4–6.6 s), then run. The compute side is simulated: when a job
      becomes RUNNING, after ``--launch-delay`` seconds the benchmark calls the
      spawner's ``receive_callback(host, port)`` (what the callback API handler does)
      instead of running N JupyterLabs. Jobs run on node ``localhost``; every callback
      reports 127.0.0.1 and the port of one stand-in "JupyterLab" served from the
      double's thread (an HTTP 200 for any path), which the spawner's readiness check
      (start() returns once the server answers) then reaches.
    * The N spawn requests arrive evenly spread over ``--ramp`` seconds (2 s by default:
      a class starting at once), not all in one loop iteration.
    * After every spawn returned, each server is polled the way JupyterHub does it (a
      periodic ``poll()`` every ``poll_interval`` with 10 % jitter) plus one extra
      ``poll()`` right after each periodic one (as a page load of the hub would), for
      ``--intervals`` poll intervals. Then all servers are stopped.
    * Objects that exist before the measurement (imports, the double and its OpenAPI
      document, the spawners) are ``gc.freeze()``-d unless ``--no-gc-freeze``, so that a
      full collection's pause reflects what the spawns create, not the harness.
    * Stops are spread over ``--ramp`` seconds too.
    * A sampler task sleeps 5 ms in a loop on the hub loop and records how late it
      wakes up: the longest overshoot is the loop's longest stall.

It prints figures; it is not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from benchmarks.loopwatch import LoopWatch
from firecrest_double import FirecrestDouble, SimJob, SimulatedScheduler

SYSTEM = "cluster"
STALL_TARGET_MS = 50.0
CALLS_PER_POLL_TARGET = 1.0
SAMPLE_S = 0.005
#: Stalls at least this long (and at least half the longest so far) are explained.
EXPLAIN_S = 0.010


# ------------------------------------------------------------------ hub-side stand-ins
class BenchUser:
    """The part of ``jupyterhub.user.User`` the spawner uses, with ``auth_state`` in memory."""

    def __init__(self, name: str, auth_state: dict[str, Any]) -> None:
        self.name = name
        self.escaped_name = name
        self.url = f"/user/{name}/"
        self.auth_state = auth_state
        self.saves = 0

    async def get_auth_state(self) -> dict[str, Any]:
        """The stored auth_state (copy)."""
        return dict(self.auth_state)

    async def save_auth_state(self, auth_state: dict[str, Any]) -> None:
        """Store a new auth_state (e.g. after a token refresh)."""
        self.auth_state = dict(auth_state)
        self.saves += 1


@dataclass
class GCPauses:
    """Garbage-collector pauses (any thread) via ``gc.callbacks``."""

    pauses: list[tuple[int, float]] = field(default_factory=list)
    _t0: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._t0))

    def summary(self) -> str:
        """``count, longest`` of the pauses."""
        longest = max((d for _, d in self.pauses), default=0.0)
        full = sum(1 for g, _ in self.pauses if g == 2)
        return f"{len(self.pauses)} ({full} full), longest {longest * 1000:.0f} ms"


@dataclass
class LoopLag:
    """Samples how late the loop wakes up from a short sleep."""

    samples: list[float] = field(default_factory=list)
    #: per sample: (wall s, hub thread CPU s, whole process CPU s) of the sleep
    cpu: list[tuple[float, float, float]] = field(default_factory=list)
    running: bool = True
    #: When set, the longer stalls are explained (what ran on the loop meanwhile).
    watch: LoopWatch | None = None
    #: sample index -> :meth:`LoopWatch.explain` of that stall (the long ones only)
    details: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: sample index -> what ran during the sleeps in which the hub thread worked longest
    cpu_details: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: the longest stall and hub-thread CPU time of one sample since the last mark(), s
    _longest: tuple[float, float] = (0.0, 0.0)

    async def run(self) -> None:
        """Sample until ``running`` is cleared."""
        loop = asyncio.get_running_loop()
        while self.running:
            t, thread0, process0 = loop.time(), time.thread_time(), time.process_time()
            slept = time.perf_counter()
            await asyncio.sleep(SAMPLE_S)
            woke = time.perf_counter()
            hub = time.thread_time() - thread0
            wall = loop.time() - t
            stall = max(0.0, wall - SAMPLE_S)
            if self.watch is not None:
                i = len(self.samples)
                if stall >= EXPLAIN_S and stall >= 0.5 * self._longest[0]:
                    self.details[i] = self.watch.explain(slept + SAMPLE_S, woke)
                if hub >= EXPLAIN_S and hub >= 0.5 * self._longest[1]:
                    self.cpu_details[i] = self.watch.explain(slept, woke)
            self._longest = (max(self._longest[0], stall), max(self._longest[1], hub))
            self.samples.append(stall)
            self.cpu.append((wall, hub, time.process_time() - process0))

    def mark(self) -> int:
        """``len(samples)``, to open a window; the stalls explained from now on are
        those long compared with this window's (not an earlier one's)."""
        self._longest = (0.0, 0.0)
        return len(self.samples)

    def window(self, start: int, end: int | None = None) -> list[float]:
        """Samples taken between two ``len(samples)`` marks."""
        return self.samples[start:end]

    def worst(self, start: int, end: int | None = None) -> dict[str, Any]:
        """Where the time of the window's longest stall went, in ms: the hub thread on a
        CPU (the loop's own work), the other threads on a CPU (the double, holding the
        GIL), and neither (the process waited for a CPU of a busy machine)."""
        window = self.samples[start:end]
        if not window:
            return {"stall_ms": 0.0, "hub_cpu_ms": 0.0, "other_cpu_ms": 0.0,
                    "off_cpu_ms": 0.0}
        i = start + max(range(len(window)), key=window.__getitem__)
        wall, hub, process = self.cpu[i]
        other = max(0.0, process - hub)
        worst: dict[str, Any] = {"stall_ms": self.samples[i] * 1000, "hub_cpu_ms": hub * 1000,
                                 "other_cpu_ms": other * 1000,
                                 "off_cpu_ms": max(0.0, wall - hub - other) * 1000}
        if i in self.details:
            worst["what"] = self.details[i]
        return worst

    def longest_cpu(self, start: int, end: int | None = None) -> dict[str, Any]:
        """The sample (between two marks) whose sleep saw the most hub-thread CPU time:
        ``cpu_ms``, the loop's own work during one 5 ms sleep and the stall that
        followed (what the stall would be on an idle machine), and ``what`` ran then
        (with a ``watch``)."""
        window = self.cpu[start:end]
        if not window:
            return {"cpu_ms": 0.0}
        i = start + max(range(len(window)), key=lambda k: window[k][1])
        out: dict[str, Any] = {"cpu_ms": self.cpu[i][1] * 1000,
                               "stall_ms": self.samples[i] * 1000}
        if i in self.cpu_details:
            out["what"] = self.cpu_details[i]
        return out


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (nearest rank); 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def queue_delay_for(lo: float, hi: float, n: int):  # type: ignore[no-untyped-def]
    """Deterministic queue delays spread evenly over [lo, hi] in a shuffled order."""
    order = list(range(n))
    random.Random(1234).shuffle(order)

    def delay(_submission: Any, index: int) -> float:
        slot = order[index % n]
        return lo + (hi - lo) * (slot / max(1, n - 1))

    return delay


async def _thread_cpu() -> float:
    return time.thread_time()


async def _serve_lab() -> int:
    """A stand-in JupyterLab for every job (200 for any path), in the double's loop;
    returns its port on 127.0.0.1."""
    async def answer(_request: web.Request) -> web.Response:
        return web.json_response({"stand-in": "jupyterlab"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]


def track_job_ids(sp: Any, spawners: dict[str, Any]) -> Any:
    """Make ``sp`` register itself under its job id as soon as the submit answers, so a
    simulated callback can find it even before ``start()`` stored ``job_id``."""
    gateway = sp.gateway()
    original = gateway.submit

    async def tracking_submit(*args: Any, **kwargs: Any) -> str:
        job_id = await original(*args, **kwargs)
        spawners[str(job_id)] = sp
        return str(job_id)

    gateway.submit = tracking_submit
    return sp


# ------------------------------------------------------------------ benchmark
async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns the figures."""
    try:
        from jupyterhub.objects import Hub

        from firecrestspawner.spawner import FirecRESTSpawner
    except ImportError as exc:
        raise SystemExit(
            f"cannot import the spawner ({exc}): install the project with its hub extra, "
            "e.g. pip install -e '.[hub]' (nox -s bench-spawner does)") from None

    hub_loop = asyncio.get_running_loop()
    scheduler = SimulatedScheduler(
        SYSTEM, queue_delay=queue_delay_for(args.queue_min, args.queue_max, args.n),
        completing_s=0.0, nodes=["localhost"])
    fc = FirecrestDouble(scheduler, keep_request_log=False)
    fc.idp.access_token_lifetime = args.token_lifetime
    fc.start_in_thread()
    lab_port = fc.call(_serve_lab)
    spawners: dict[str, Any] = {}  # job id -> spawner
    callbacks_late = 0

    def deliver(job_id: str, attempt: int = 0) -> None:
        nonlocal callbacks_late
        sp = spawners.get(job_id)
        if sp is None:  # submit answer not processed yet
            if attempt < 200:
                callbacks_late += 1
                hub_loop.call_later(0.05, deliver, job_id, attempt + 1)
            return
        async def call_back() -> None:
            try:  # the job reports where it listens, as a launcher does (the hub checks it)
                await sp.receive_callback("127.0.0.1", lab_port)
            except RuntimeError:
                pass  # the start already gave up; it will report why

        hub_loop.create_task(call_back())

    def on_state(job: SimJob, state: str) -> None:  # runs in the double's thread
        if state == "RUNNING":
            hub_loop.call_soon_threadsafe(hub_loop.call_later, args.launch_delay,
                                          deliver, job.job_id)

    scheduler.on_state_change.append(on_state)
    hub = Hub(ip="127.0.0.1", port=8081, base_url="/hub/")
    settings: dict[str, Any] = {
        "firecrest_url": fc.url, "system": SYSTEM, "workdir": "/home/{username}",
        "token_url": fc.idp.url + "/token", "oauth_client_id": "f7t4jhub",
        "start_poll_interval": args.start_poll_interval, "poll_interval": args.poll_interval,
        "start_timeout": int(args.queue_max + 120),
    }
    users = []
    for i in range(args.n):
        name = f"user{i:04d}"
        state = {"access_token": fc.idp.mint(name, args.token_lifetime),
                 "refresh_token": fc.idp.issue_refresh_token(name)}
        users.append(BenchUser(name, state))
    built = [FirecRESTSpawner(user=u, hub=hub, api_token=secrets.token_hex(16), **settings)
             for u in users]

    # Warm-up (not measured): one spawn and stop of an extra user, so that one-time
    # costs (lazy imports in httpx/pyfirecrest, first connections) do not count; a
    # real hub paid them long before.
    warm_user = BenchUser("warmup", {"access_token": fc.idp.mint("warmup", args.token_lifetime),
                                     "refresh_token": fc.idp.issue_refresh_token("warmup")})
    warm = FirecRESTSpawner(user=warm_user, hub=hub, api_token=secrets.token_hex(16),
                            **settings)
    try:
        await track_job_ids(warm, spawners).start()
        await warm.poll()
        await warm.stop()
    except Exception as exc:  # noqa: BLE001  (reported, then the benchmark stops)
        fc.stop_thread()
        raise SystemExit(f"the warm-up spawn failed, so the benchmark cannot run: "
                         f"{type(exc).__name__}: {exc}") from None
    fc.reset_counters()

    lag = LoopLag()
    gc.collect()
    if args.gc_freeze:
        gc.freeze()
    gc_pauses = GCPauses()
    gc.callbacks.append(gc_pauses)
    double_cpu0 = fc.call(_thread_cpu)
    sampler = hub_loop.create_task(lag.run())
    t_all, cpu_all = time.monotonic(), time.process_time()
    load_start = os.getloadavg()[0]

    # ---------------------------------------------------------------- spawn phase
    durations: list[float] = []
    failures: list[str] = []
    mark_spawn = len(lag.samples)
    t_spawn = time.monotonic()

    async def spawn(sp: Any, index: int) -> None:
        await asyncio.sleep(args.ramp * index / args.n)  # arrival of the spawn request
        t = time.monotonic()
        try:
            await track_job_ids(sp, spawners).start()
            durations.append(time.monotonic() - t)
        except Exception as exc:  # noqa: BLE001  (reported in the figures)
            failures.append(f"{sp.user.name}: {type(exc).__name__}: {exc}")

    await asyncio.gather(*(spawn(sp, i) for i, sp in enumerate(built)))
    spawn_wall = time.monotonic() - t_spawn
    spawn_lag = lag.window(mark_spawn)
    spawn_requests = fc.count()
    spawn_routes = dict(fc.route_counts)
    spawner_calls_spawn = sum(sp.firecrest_calls for sp in built)

    # ---------------------------------------------------------------- running phase
    running = [sp for sp in built if sp.job_host]
    fc.reset_counters()
    mark_run = len(lag.samples)
    window = args.poll_interval * args.intervals
    gone: list[str] = []
    periodic_polls = 0

    async def poll_loop(sp: Any, rng: random.Random, end: float) -> None:
        # Like JupyterHub's per-server PeriodicCallback: servers started at random times,
        # so each one's first poll falls anywhere in the first interval; 10 % jitter.
        await asyncio.sleep(rng.uniform(0, args.poll_interval))
        nonlocal periodic_polls
        while time.monotonic() < end:
            periodic_polls += 1
            status = await sp.poll()
            if status is not None:
                gone.append(f"{sp.user.name}: poll() returned {status}")
                return
            await sp.poll()  # e.g. a hub page load right after: must be served from cache
            jitter = args.poll_interval * 0.1
            pause = args.poll_interval + rng.uniform(-jitter, jitter)
            if time.monotonic() + pause >= end:
                return
            await asyncio.sleep(pause)

    t_run = time.monotonic()
    await asyncio.gather(*(poll_loop(sp, random.Random(i), t_run + window)
                           for i, sp in enumerate(running)))
    run_wall = time.monotonic() - t_run
    run_lag = lag.window(mark_run)
    run_requests = fc.count()
    run_routes = dict(fc.route_counts)

    # ---------------------------------------------------------------- stop phase
    fc.reset_counters()
    mark_stop = len(lag.samples)
    t_stop = time.monotonic()
    async def stop(sp: Any, index: int) -> None:
        await asyncio.sleep(args.ramp * index / args.n)
        await sp.stop()

    await asyncio.gather(*(stop(sp, i) for i, sp in enumerate(built) if sp.job_id))
    stop_wall = time.monotonic() - t_stop
    stop_lag = lag.window(mark_stop)
    stop_requests = fc.count()

    lag.running = False
    await sampler
    load_end = os.getloadavg()[0]
    gc.callbacks.remove(gc_pauses)
    double_cpu = fc.call(_thread_cpu) - double_cpu0
    process_cpu = time.process_time() - cpu_all
    wall_all = time.monotonic() - t_all
    violations = [str(v) for v in fc.violations]
    refreshes = fc.idp.refresh_count
    fc.stop_thread()

    # Requests in the observed window of exactly `intervals` poll intervals. With the
    # jitter a server may get intervals+1 periodic polls (or intervals-1) in the window,
    # so the target is judged per periodic poll: each one stands for one poll interval
    # of one server, whatever the jitter did.
    per_server_interval = (run_requests / (len(running) * args.intervals)
                           if running else float("nan"))
    per_periodic_poll = run_requests / periodic_polls if periodic_polls else float("nan")
    return {
        "n": args.n,
        "ramp_s": args.ramp,
        "gc_freeze": args.gc_freeze,
        "queue_s": [args.queue_min, args.queue_max],
        "started": len(durations),
        "failed": failures,
        "gone_while_running": gone,
        "callbacks": "simulated: receive_callback() called "
                     f"{args.launch_delay}s after the job turned RUNNING",
        "spawn": {
            "wall_s": spawn_wall,
            "p50_s": pct(durations, 0.5), "p99_s": pct(durations, 0.99),
            "max_s": max(durations, default=0.0),
            "firecrest_requests": spawn_requests,
            "requests_per_spawn": spawn_requests / args.n,
            "spawner_calls_per_spawn": spawner_calls_spawn / args.n,
            "routes": spawn_routes,
            "loop_stall_max_ms": max(spawn_lag, default=0.0) * 1000,
            "loop_stall_p99_ms": pct(spawn_lag, 0.99) * 1000,
            "stalls_over_target": sum(1 for x in spawn_lag if x * 1000 > STALL_TARGET_MS),
            "stalled_s": sum(x for x in spawn_lag if x * 1000 > STALL_TARGET_MS),
            "worst_stall": lag.worst(mark_spawn, mark_run),
        },
        "running": {
            "servers": len(running), "wall_s": run_wall, "poll_interval_s": args.poll_interval,
            "firecrest_requests": run_requests,
            "requests_per_server_per_poll_interval": per_server_interval,
            "periodic_polls": periodic_polls,
            "requests_per_periodic_poll": per_periodic_poll,
            "routes": run_routes,
            "loop_stall_max_ms": max(run_lag, default=0.0) * 1000,
            "loop_stall_p99_ms": pct(run_lag, 0.99) * 1000,
            "worst_stall": lag.worst(mark_run, mark_stop),
        },
        "stop": {
            "wall_s": stop_wall, "firecrest_requests": stop_requests,
            "requests_per_stop": stop_requests / max(1, sum(1 for sp in built if sp.job_id)),
            "loop_stall_max_ms": max(stop_lag, default=0.0) * 1000,
            "worst_stall": lag.worst(mark_stop),
        },
        "loop_stall_max_ms": max(lag.samples, default=0.0) * 1000,
        "loop_samples": len(lag.samples),
        "token_refreshes": refreshes,
        "gc_pauses": gc_pauses.summary(),
        "load": {"start": load_start, "end": load_end, "cpus": os.cpu_count()},
        "cpu": {"wall_s": wall_all, "process_s": process_cpu, "double_thread_s": double_cpu},
        "spec_violations": violations,
    }


def report(fig: dict[str, Any], out: Any = sys.stdout) -> None:
    """Print the figures, targets beside measured values."""
    s, r, st = fig["spawn"], fig["running"], fig["stop"]

    def line(label: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("  OK" if ok else "  MISSED")
        print(f"  {label:<46} {measured:>14}   {target:<12}{verdict}", file=out)

    print(f"FirecRESTSpawner benchmark: {fig['n']} concurrent spawns against the FirecREST "
          "double (double in its own thread)", file=out)
    print(f"  callbacks: {fig['callbacks']} (no JupyterLab processes)", file=out)
    print(f"  spawn requests arrive over {fig['ramp_s']:g} s; queue delays "
          f"{fig['queue_s'][0]:g}-{fig['queue_s'][1]:g} s; loop sampled every "
          f"{SAMPLE_S * 1000:g} ms; pre-existing objects "
          f"{'frozen out of' if fig['gc_freeze'] else 'left in'} the GC", file=out)
    print(f"  {'':<46} {'measured':>14}   {'target':<12}", file=out)
    line("servers started", f"{fig['started']}/{fig['n']}", f"{fig['n']}/{fig['n']}",
         fig["started"] == fig["n"])
    line("spawn time p50", f"{s['p50_s']:.2f} s")
    line("spawn time p99", f"{s['p99_s']:.2f} s")
    line("spawn phase wall time", f"{s['wall_s']:.2f} s")
    line("FirecREST requests per spawn", f"{s['requests_per_spawn']:.2f}")
    line("requests per running server per poll interval",
         f"{r['requests_per_periodic_poll']:.3f}",
         f"<= {CALLS_PER_POLL_TARGET:g}",
         r["requests_per_periodic_poll"] <= CALLS_PER_POLL_TARGET)
    print(f"    ({r['firecrest_requests']} requests / {r['periodic_polls']} periodic polls, "
          "each followed by a page-load poll; per server per "
          f"{r['poll_interval_s']:g} s of the {r['wall_s']:.0f} s window: "
          f"{r['requests_per_server_per_poll_interval']:.3f}, which jitter moves around 1)",
          file=out)
    line("FirecREST requests per stop", f"{st['requests_per_stop']:.2f}")
    line("hub loop longest stall (spawn phase)", f"{s['loop_stall_max_ms']:.1f} ms",
         f"<= {STALL_TARGET_MS:g} ms", s["loop_stall_max_ms"] <= STALL_TARGET_MS)
    line("hub loop longest stall (running phase)", f"{r['loop_stall_max_ms']:.1f} ms",
         f"<= {STALL_TARGET_MS:g} ms", r["loop_stall_max_ms"] <= STALL_TARGET_MS)
    line("hub loop longest stall (stop phase)", f"{st['loop_stall_max_ms']:.1f} ms",
         f"<= {STALL_TARGET_MS:g} ms", st["loop_stall_max_ms"] <= STALL_TARGET_MS)
    for phase, figures in (("spawn", s), ("running", r), ("stop", st)):
        w = figures["worst_stall"]
        print(f"    longest {phase} stall: {w['stall_ms']:.0f} ms late; during its sleep the "
              f"hub thread ran {w['hub_cpu_ms']:.0f} ms, other threads "
              f"{w['other_cpu_ms']:.0f} ms, neither {w['off_cpu_ms']:.0f} ms", file=out)
    line("hub loop stall p99 (spawn phase)", f"{s['loop_stall_p99_ms']:.1f} ms")
    line(f"stalls over {STALL_TARGET_MS:g} ms (spawn phase): count / total",
         f"{s['stalls_over_target']} / {s['stalled_s']:.1f} s")
    line("token refreshes at the IdP", f"{fig['token_refreshes']}")
    cpu = fig["cpu"]
    line("CPU: whole process / double's thread", f"{cpu['process_s']:.1f} / "
         f"{cpu['double_thread_s']:.1f} s", f"(wall {cpu['wall_s']:.0f} s)")
    line("garbage collections (longest pause)", fig["gc_pauses"])
    load = fig["load"]
    line("machine load average at start / end", f"{load['start']:.1f} / {load['end']:.1f}",
         f"({load['cpus']} CPUs)")
    if max(load["start"], load["end"]) > (load["cpus"] or 1):
        print("  NOTE: the machine was busier than its CPU count: the stall figures include "
              "time this process waited for a CPU and are pessimistic", file=out)
    line("OpenAPI violations seen by the double", f"{len(fig['spec_violations'])}", "0",
         not fig["spec_violations"])
    print("  requests by route (spawn phase):", file=out)
    for route, count in sorted(s["routes"].items(), key=lambda kv: -kv[1]):
        print(f"    {count:>7}  {route}", file=out)
    print("  requests by route (running phase):", file=out)
    for route, count in sorted(r["routes"].items(), key=lambda kv: -kv[1]):
        print(f"    {count:>7}  {route}", file=out)
    for title, items in (("failed spawns", fig["failed"]),
                         ("servers gone while running", fig["gone_while_running"]),
                         ("spec violations", fig["spec_violations"])):
        if items:
            print(f"  {title} ({len(items)}):", file=out)
            for item in items[:10]:
                print(f"    - {item}", file=out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options (``--help`` lists them)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.spawn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="concurrent spawns (default 200)")
    p.add_argument("--ramp", type=float, default=2.0,
                   help="spawn requests arrive evenly over this many seconds (0: all in the "
                        "same loop iteration, a thundering herd no real hub sees)")
    p.add_argument("--queue-min", type=float, default=0.4, help="shortest queue delay, s")
    p.add_argument("--queue-max", type=float, default=6.6, help="longest queue delay, s")
    p.add_argument("--launch-delay", type=float, default=0.5,
                   help="seconds from RUNNING to the callback (JupyterLab start-up)")
    p.add_argument("--start-poll-interval", type=float, default=2.0,
                   help="FirecRESTSpawner.start_poll_interval, s")
    p.add_argument("--poll-interval", type=int, default=10,
                   help="Spawner.poll_interval while running, whole seconds")
    p.add_argument("--intervals", type=int, default=3,
                   help="poll intervals to observe the running servers")
    p.add_argument("--token-lifetime", type=float, default=300.0,
                   help="access token lifetime at the IdP, s")
    p.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                   help="do not gc.freeze() the objects that exist before the measurement "
                        "(imports, the double, the spawners); by default they are frozen so "
                        "that full collections scan only what the spawns create")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.n < 1 or args.intervals < 1 or args.poll_interval <= 0:
        p.error("--n and --intervals must be >= 1 and --poll-interval > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in ("traitlets", "firecrestspawner", "firecrest", "httpx", "JupyterHub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    figures = asyncio.run(run(args))
    report(figures)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)
    ok = figures["started"] == args.n and not figures["spec_violations"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
