"""Benchmark: FirecREST requests per poll interval, per-server vs batched polling, 1-2000 servers.

Run ``python -m benchmarks.polling`` (``nox -s bench-spawner`` runs it after the spawn
benchmark); ``--help`` lists the knobs.

Set-up
    * The FirecREST double (spec-validated, with its identity provider and a registered
      service account) runs in a **child process**: its work (JSON encoding of a 2000-job
      listing holds the interpreter lock for tens of ms) stays out of the measured hub
      process, as a real FirecREST would. The harness asks it over a pipe to submit
      jobs, mint the users' tokens, and report its request counters.
    * For each size N (1, 200, 2000 by default) the double runs N jobs, RUNNING. The hub
      side builds N real ``FirecRESTSpawner`` objects (one per user, minimal
      JupyterHub ``Hub``/user as in benchmarks/spawn.py) and gives each its job through
      ``load_state`` — the running servers a restarted hub finds in its database.
    * Both modes, in the same run, on the same jobs: **per-server** (no service account:
      each server asks ``GET /compute/{system}/jobs/{job_id}`` with its user's token)
      and **batched** (a service account: the hub's shared listing,
      ``GET /compute/{system}/jobs?allusers=true``).
    * Each server is polled the way JupyterHub's ``poll_and_notify`` does it: a first
      poll at a random moment of the first interval, then every ``poll_interval`` with
      10 % jitter, for ``--intervals`` intervals. The double's counters over that
      window, divided by the number of intervals, give the requests per poll interval.
    * A sampler task sleeps 5 ms in a loop on the hub loop and records how late it
      wakes up: the longest overshoot is the loop's longest stall.

It prints measured figures; it is not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import random
import secrets
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.loopwatch import LoopWatch, render
from benchmarks.spawn import BenchUser, GCPauses, LoopLag, pct

SYSTEM = "cluster"
STALL_TARGET_MS = 50.0
BATCHED_TARGET = 2.0
LIST = "GET /compute/{system_name}/jobs"
JOB = "GET /compute/{system_name}/jobs/{job_id}"


# ------------------------------------------------------------------ the double's process
def serve_double(conn: Connection, token_lifetime: float) -> None:
    """The child process: a FirecREST double answering the harness's commands."""
    from firecrest_double import FirecrestDouble, SimulatedScheduler
    from firecrest_double.scheduler import JobSubmission

    scheduler = SimulatedScheduler(SYSTEM, queue_delay=0.0, running_lag=0.0,
                                   completing_s=0.0)
    fc = FirecrestDouble(scheduler, keep_request_log=False)
    fc.idp.access_token_lifetime = token_lifetime
    fc.start_in_thread()
    client = fc.idp.register_client("jhub-poller")
    conn.send({"url": fc.url, "token_url": fc.idp.url + "/token",
               "client_id": client.client_id, "secret": client.secret})

    async def submit(names: list[str]) -> list[str]:
        ids = []
        for name in names:
            job = JobSubmission(working_directory=f"/home/{name}", name=f"jupyterhub-{name}",
                                script="#!/bin/bash\n#SBATCH --time=60\nsleep infinity\n")
            ids.append(await scheduler.submit(name, job))
        return ids

    async def cpu() -> float:
        return time.thread_time()

    while True:
        command, arg = conn.recv()
        if command == "jobs":
            ids = fc.call(submit, arg, timeout=600)
            deadline = time.monotonic() + 60
            while (any(scheduler.jobs_by_id[i].state != "RUNNING" for i in ids)
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            conn.send([(i, scheduler.jobs_by_id[i].node, scheduler.jobs_by_id[i].state,
                        fc.idp.mint(name, token_lifetime), fc.idp.issue_refresh_token(name))
                       for i, name in zip(ids, arg)])
        elif command == "counts":
            conn.send({"routes": dict(fc.route_counts), "violations":
                       [str(v) for v in fc.violations], "cpu": fc.call(cpu)})
        elif command == "reset":
            fc.reset_counters()
            conn.send(None)
        elif command == "stop":
            fc.stop_thread()
            conn.send(None)
            return


class DoubleProcess:
    """The harness's handle on the child process."""

    def __init__(self, token_lifetime: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve_double, args=(child, token_lifetime),
                                   daemon=True)
        self.process.start()
        if not self.conn.poll(120):
            self.process.kill()
            raise SystemExit("the FirecREST double's process did not start within 120 s")
        self.info: dict[str, str] = self.conn.recv()

    async def ask(self, command: str, arg: Any = None, timeout: float = 600) -> Any:
        """Send a command; wait for the answer without blocking the hub loop."""
        self.conn.send((command, arg))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.conn.poll():
            if loop.time() > deadline:
                raise SystemExit(f"the FirecREST double did not answer {command!r}")
            await asyncio.sleep(0.02)
        return self.conn.recv()

    async def stop(self) -> None:
        """Stop the double and its process."""
        await self.ask("stop")
        self.process.join(30)


# ------------------------------------------------------------------ one measurement
#: The harness's poll loops start this long after they are created (see ``measure``).
START_S = 0.5


async def periodic_poll(sp: Any, rng: random.Random, args: argparse.Namespace,
                        polls: list[int], gone: list[str]) -> None:
    """One server's polls, as JupyterHub's per-server PeriodicCallback makes them: the
    server came up at a random moment, so its first poll falls anywhere in the first
    interval; then every ``poll_interval`` with 10 % jitter; exactly ``intervals`` polls."""
    await asyncio.sleep(START_S + rng.uniform(0, args.poll_interval))
    for k in range(args.intervals):
        if k:
            jitter = args.poll_interval * 0.1
            await asyncio.sleep(args.poll_interval + rng.uniform(-jitter, jitter))
        polls[0] += 1
        status = await sp.poll()
        if status is not None:
            gone.append(f"{sp.user.name}: poll() returned {status}: {sp.end_reason}")
            return


async def measure(double: DoubleProcess, jobs: list[tuple[str, ...]], batched: bool,
                  args: argparse.Namespace) -> dict[str, Any]:
    """Poll len(jobs) restored servers for ``args.intervals`` intervals; the figures."""
    from jupyterhub.objects import Hub

    from firecrestspawner import batchpoll, gcfreeze
    from firecrestspawner.spawner import FirecRESTSpawner

    info = double.info
    hub = Hub(ip="127.0.0.1", port=8081, base_url="/hub/")
    settings: dict[str, Any] = {
        "firecrest_url": info["url"], "system": SYSTEM, "workdir": "/home/{username}",
        "token_url": info["token_url"], "oauth_client_id": "f7t4jhub",
        "poll_interval": args.poll_interval, "firecrest_timeout": 30.0,
    }
    if batched:
        settings.update(service_client_id=info["client_id"],
                        service_client_secret=info["secret"])
    spawners = []
    for i, (job_id, node, _state, access, refresh) in enumerate(jobs):
        user = BenchUser(f"user{i:04d}", {"access_token": access, "refresh_token": refresh})
        sp = FirecRESTSpawner(user=user, hub=hub, api_token=secrets.token_hex(16), **settings)
        sp.load_state({"job_id": job_id, "job_system": SYSTEM, "job_host": node,
                       "job_port": 20000 + i})
        spawners.append(sp)
    # Warm-up (not measured): one poll through the same stack, so that one-time costs
    # (lazy imports, the TLS context, first connections) do not count.
    warm_user = BenchUser("warmup", {"access_token": jobs[0][3], "refresh_token": jobs[0][4]})
    warm = FirecRESTSpawner(user=warm_user, hub=hub, api_token="warm", **settings)
    warm.load_state({"job_id": jobs[0][0], "job_system": SYSTEM, "job_host": jobs[0][1],
                     "job_port": 19999})
    await warm.poll()
    await batchpoll.close_all()  # the measured polls start without a cached listing
    gc.collect()  # the harness's set-up garbage (a hub has its own start-up leftovers)
    await double.ask("reset")
    gc_pauses = GCPauses()
    watch = LoopWatch()
    watch.install()
    lag = LoopLag(watch=watch)
    sampler = asyncio.get_running_loop().create_task(lag.run())
    polls = [0]
    gone: list[str] = []
    # The stand-ins for JupyterHub's per-server PeriodicCallbacks are created (for 2000
    # servers ~20-35 ms of harness work in one loop step, then ~15-25 ms for their 2000
    # first steps in the next iteration) and frozen with the rest of the start-up
    # objects before the measured window opens; the first polls come START_S later.
    loop = asyncio.get_running_loop()
    pollers = [loop.create_task(periodic_poll(sp, random.Random(i), args, polls, gone))
               for i, sp in enumerate(spawners)]
    await asyncio.sleep(0)
    # What the hub image does once JupyterHub has started (firecrestspawner.gcfreeze):
    # the start-up heap (here: imports, spawners, restored servers, poll loops) frozen.
    gcfreeze.freeze()
    await asyncio.sleep(0.2)
    mark = lag.mark()
    gc.callbacks.append(gc_pauses)
    t0 = time.monotonic()
    cpu0 = time.process_time()
    await asyncio.gather(*pollers)
    wall = time.monotonic() - t0
    hub_cpu = time.process_time() - cpu0
    samples = lag.window(mark)
    worst = lag.worst(mark)
    cpu_stall = lag.longest_cpu(mark)
    lag.running = False
    await sampler
    watch.uninstall()
    gc.callbacks.remove(gc_pauses)
    counts = await double.ask("counts")
    gc.unfreeze()
    await batchpoll.close_all()
    for sp in spawners:
        client = sp._client
        if client is not None:
            await client._session.aclose()
    routes = counts["routes"]
    total = sum(routes.values())
    return {
        "servers": len(jobs), "mode": "batched" if batched else "per-server",
        "window_s": wall, "intervals": args.intervals, "periodic_polls": polls[0],
        "requests": total, "requests_per_interval": total / args.intervals,
        "listing_requests": routes.get(LIST, 0), "per_job_requests": routes.get(JOB, 0),
        "routes": routes, "gone": gone, "violations": counts["violations"],
        "loop_stall_max_ms": max(samples, default=0.0) * 1000,
        "loop_stall_p99_ms": pct(samples, 0.99) * 1000, "worst_stall": worst,
        "loop_cpu_stall": cpu_stall,
        "hub_cpu_s": hub_cpu, "gc_pauses": gc_pauses.summary(),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every size, both modes; returns the figures."""
    try:
        import firecrestspawner.spawner  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"cannot import the spawner ({exc}): install the project with its hub extra, "
            "e.g. pip install -e '.[hub]' (nox -s bench-spawner does)") from None
    rows = []
    load_start = os.getloadavg()[0]
    for n in args.sizes:
        double = DoubleProcess(args.token_lifetime)
        try:
            t = time.monotonic()
            jobs = await double.ask("jobs", [f"user{i:04d}" for i in range(n)])
            not_running = [j for j in jobs if j[2] != "RUNNING"]
            if not_running:
                raise SystemExit(f"{len(not_running)} of {n} jobs did not reach RUNNING")
            print(f"  {n} jobs running in the double ({time.monotonic() - t:.1f} s); "
                  f"polling {', then '.join(args.modes)} ...", file=sys.stderr, flush=True)
            for mode in args.modes:
                rows.append(await measure(double, jobs, mode == "batched", args))
        finally:
            await double.stop()
    return {"poll_interval_s": args.poll_interval, "intervals": args.intervals, "rows": rows,
            "load": {"start": load_start, "end": os.getloadavg()[0], "cpus": os.cpu_count()}}


def report(fig: dict[str, Any], out: Any = sys.stdout) -> None:
    """Print the figures, per-server and batched side by side."""
    print(f"FirecREST requests per poll interval: per-server vs batched polling "
          f"(poll_interval {fig['poll_interval_s']} s, {fig['intervals']} polls per server, "
          "the first at a random moment of the first interval; double in its own process)",
          file=out)
    print(f"  {'servers':>7}  {'mode':<10} {'requests/interval':>17} {'listings':>8} "
          f"{'per-job':>8} {'polls':>6} {'stall max':>10} {'stall p99':>10} "
          f"{'hub CPU':>8}  verdict", file=out)
    for row in fig["rows"]:
        ok_stall = row["loop_stall_max_ms"] <= STALL_TARGET_MS
        if row["mode"] == "batched":
            ok = row["requests_per_interval"] <= BATCHED_TARGET and ok_stall
            target = f"(<= {BATCHED_TARGET:g}/interval, <= {STALL_TARGET_MS:g} ms)"
        else:
            ok = ok_stall
            target = f"(<= {STALL_TARGET_MS:g} ms)"
        w = row["worst_stall"]
        if not ok_stall and w["hub_cpu_ms"] <= STALL_TARGET_MS < w["off_cpu_ms"]:
            target += " - the longest stall was mostly waiting for a CPU of a busy machine"
        print(f"  {row['servers']:>7}  {row['mode']:<10} {row['requests_per_interval']:>17.2f} "
              f"{row['listing_requests']:>8} {row['per_job_requests']:>8} "
              f"{row['periodic_polls']:>6} {row['loop_stall_max_ms']:>7.1f} ms "
              f"{row['loop_stall_p99_ms']:>7.1f} ms {row['hub_cpu_s']:>6.1f} s  "
              f"{'OK' if ok else 'MISSED'} {target}", file=out)
        print(f"{'':>11}longest stall: {w['stall_ms']:.0f} ms late; during its sleep the hub "
              f"thread ran {w['hub_cpu_ms']:.0f} ms, other threads {w['other_cpu_ms']:.0f} ms, "
              f"neither {w['off_cpu_ms']:.0f} ms; garbage collections {row['gc_pauses']}",
              file=out)
        if "what" in w:
            print(f"{'':>11}what ran in it: {render(w['what'])}", file=out)
        c = row["loop_cpu_stall"]
        print(f"{'':>11}most hub-thread CPU in one 5 ms sample: {c['cpu_ms']:.0f} ms (the "
              f"loop's own work: about the longest stall on an idle machine; that sample "
              f"stalled {c.get('stall_ms', 0.0):.0f} ms)", file=out)
        if "what" in c:
            print(f"{'':>11}what ran in it: {render(c['what'])}", file=out)
        for item in row["gone"][:3]:
            print(f"{'':>11}server gone: {item}", file=out)
        for item in row["violations"][:3]:
            print(f"{'':>11}spec violation: {item}", file=out)
    load = fig["load"]
    print(f"  machine load average at start / end: {load['start']:.1f} / {load['end']:.1f} "
          f"({load['cpus']} CPUs)", file=out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options (``--help`` lists them)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.polling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 200, 2000],
                   help="numbers of running servers (default 1 200 2000)")
    p.add_argument("--poll-interval", type=int, default=10,
                   help="Spawner.poll_interval, whole seconds (default 10)")
    p.add_argument("--intervals", type=int, default=3, help="poll intervals observed")
    p.add_argument("--token-lifetime", type=float, default=7200.0,
                   help="access token lifetime at the IdP, s")
    p.add_argument("--modes", nargs="+", choices=["per-server", "batched"],
                   default=["per-server", "batched"],
                   help="polling modes, measured in this order on the same jobs (default "
                        "both; --sizes 2000 --modes batched: the 2000-server batched case "
                        "alone, about 40 s)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if min(args.sizes) < 1 or args.intervals < 1 or args.poll_interval < 1:
        p.error("--sizes, --intervals and --poll-interval must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    import logging

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in ("traitlets", "firecrestspawner", "firecrest", "httpx", "JupyterHub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    figures = asyncio.run(run(args))
    report(figures)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)
    ok = all(not r["violations"] and not r["gone"] for r in figures["rows"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
