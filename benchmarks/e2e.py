"""Benchmark: where the time of a spawn goes in the whole deployment (prints figures).

``python -m benchmarks.e2e`` (``nox -s bench-e2e``, as root, after ``nox -s build``)
brings up the deployment of ``tests/deploy`` (hub and chp containers, the OIDC provider,
FirecREST on real Slurm) and measures, from the spawn request (REST API) to JupyterLab
answering through the proxy:

* **JupyterHub before start()**: request → JupyterHub calls ``Spawner.start`` (its
  debug line ``Calling Spawner.start for <user>``; the deployment logs at DEBUG): JupyterHub's
  own handling of the spawn request (API token check, the authenticator's pre-spawn
  refresh at the OIDC provider, the server's OAuth client and API token, database
  commits), shared by every spawner; "-" when that line is missing;
* **submit** (ours): ``Spawner.start`` called (or, without that line, the request) → the
  spawner logged the job id FirecREST returned (hub log): our options, health check,
  token, batch script and the FirecREST call that submits it to Slurm;
* **Slurm queue + job start**: job submitted → the batch script's first line ran (a
  ``script_setup`` line printing the time; Slurm's own SubmitTime/StartTime, whole
  seconds, are printed beside it);
* **container start** (Podman; for the venv case: the interpreter's start): script
  start → the launcher's first log line inside the job;
* **launcher + callback accepted** (ours): the launcher's first line → its ``exec`` line
  (port picked, callback POSTed and answered: the hub answers at once, 200 when it
  verified the host then, 202 when it recorded it and verifies it while JupyterLab
  starts);
* **JupyterLab start**: exec → JupyterLab logged that it runs;
* **host verified after exec** (for information, beside JupyterLab's start): exec → the
  hub logged that the callback's host is one of the job's nodes (``callback host …
  verified``); "-" when verified as the callback came (then inside the callback's time);
* **binding verified after Lab ready** (ours): the time ``start()`` still waited for that
  verification once JupyterLab ran (0 when it was verified before: the usual case);
* **hub readiness check**: JupyterLab running (or, if later, the host verified) → the hub
  logged that it adds the route (``Adding user … to proxy``): the spawner's check that
  Lab answers (every 0.1 s) and JupyterHub's own, after ``start()`` returned;
* **proxy route** (ours: the chp image): that line → the proxy logged it answered the
  hub's ``POST /api/routes/user/<name>`` (the chp container's log), i.e. one call to the
  proxy's REST API;
* **to the browser**: → Lab answering through the proxy to the benchmark's poll (every
  50 ms), which includes the login cookie's redirect-free request.

Then ``--users`` users (Linux accounts made for the run, removed afterwards) log in and
spawn at once (venv install, so that no user needs a Podman image store of their own):
per-user time to Lab through the proxy, and the same split. It prints figures; it is not
a timed test.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.deploy import stack
from tests.deploy.users import UserAPI, create_user, delete_user, oidc_login

MARK = "f7t-bench-job-start"
SCRIPT_SETUP = f'echo "{MARK} $(date +%s.%N)" >&2'
_LAUNCHER_LINE = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) firecrestspawner-singleuser \w+\] (.*)"
)
_LAB_LINE = re.compile(r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \w+\] .*(is running at|Serving notebooks)")


@dataclass
class Timeline:
    """Absolute times (epoch seconds) of one spawn."""

    user: str
    request: float
    reachable: float
    job_id: str = ""
    start_called: float | None = None
    submitted: float | None = None
    script_start: float | None = None
    launcher_start: float | None = None
    launcher_exec: float | None = None
    lab_running: float | None = None
    verified: float | None = None
    route_start: float | None = None
    route_done: float | None = None
    slurm_submit: str = ""
    slurm_start: str = ""

    def phases(self) -> dict[str, float | None]:
        def span(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else b - a

        # no "verified" line: the host was verified as the callback came (in its time)
        lab_ready = self.lab_running
        verify_wait: float | None = 0.0
        if self.verified is not None and self.lab_running is not None:
            verify_wait = max(0.0, self.verified - self.lab_running)
            lab_ready = max(self.lab_running, self.verified)
        elif self.verified is not None:
            verify_wait = None
        return {
            "JupyterHub before start()": span(self.request, self.start_called),
            "submit (ours)": span(self.start_called or self.request, self.submitted),
            "Slurm queue + job start": span(self.submitted, self.script_start),
            "container/interpreter start": span(self.script_start, self.launcher_start),
            "launcher + callback accepted (ours)": span(self.launcher_start, self.launcher_exec),
            "JupyterLab start": span(self.launcher_exec, self.lab_running),
            "host verified after exec": span(self.launcher_exec, self.verified),
            "binding verified after Lab ready (ours)": verify_wait,
            "hub readiness check": span(lab_ready, self.route_start),
            "proxy route (ours)": span(self.route_start, self.route_done),
            "to the browser": span(self.route_done, self.reachable),
            "ours (submit + callback + verification wait + route)": _sum(
                span(self.start_called or self.request, self.submitted),
                span(self.launcher_start, self.launcher_exec),
                verify_wait,
                span(self.route_start, self.route_done)),
            "total": self.reachable - self.request,
        }


def _sum(*parts: float | None) -> float | None:
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


def _local(stamp: str, fmt: str) -> float:
    return dt.datetime.strptime(stamp, fmt).astimezone().timestamp()


def _events(container: Any, since: float) -> list[tuple[float, str]]:
    """A container's log lines from ``since`` on, with Docker's timestamps."""
    assert container is not None
    raw = container.logs(timestamps=True, since=int(since) - 1).decode(errors="replace")
    events = []
    for line in raw.splitlines():
        stamp, _, text = line.partition(" ")
        try:
            when = dt.datetime.fromisoformat(stamp[:26] + "+00:00").timestamp()
        except ValueError:
            continue
        if when >= since:  # `since` above has whole seconds
            events.append((when, text))
    return events


def _job_log(user: str, job_dir: str, job_id: str) -> str:
    import pwd

    base = Path(pwd.getpwnam(user).pw_dir) / job_dir
    # the spawner's default log folder, or workdir itself (job_log_dir = "")
    for path in (base / ".jupyterhub-logs" / f"jupyterhub-{job_id}.log",
                 base / f"jupyterhub-{job_id}.log"):
        if path.exists():
            return path.read_text(errors="replace")
    return ""


def fill(dep: stack.Deployment, t: Timeline) -> None:
    """Complete ``t`` from the hub's log, the job's output and Slurm."""
    start_called = re.compile(rf"Calling Spawner\.start for {re.escape(t.user)}\b")
    for when, text in _events(dep.hub.container, t.request):
        if t.start_called is None and start_called.search(text):
            t.start_called = when
        m = re.search(rf"{re.escape(t.user)}.*: Job (\d+) submitted", text)
        if m and t.submitted is None:
            t.submitted, t.job_id = when, m.group(1)
        if (t.verified is None and re.search(rf"{re.escape(t.user)}.*: callback host \S+ verified", text)):
            t.verified = when
        if f"Adding user {t.user} to proxy" in text and t.route_start is None:
            t.route_start = when
    # the proxy logs each request of its REST API once answered
    route = re.compile(rf"\b20\d POST /api/routes/user/{re.escape(t.user)}\b")
    for when, text in _events(dep.proxy.container, t.route_start or t.request):
        if route.search(text) and t.route_done is None:
            t.route_done = when
    if not t.job_id:
        return
    log = _job_log(t.user, dep.job_dir, t.job_id)
    for line in log.splitlines():
        if line.startswith(MARK) and t.script_start is None:
            t.script_start = float(line.split()[1])
        m = _LAUNCHER_LINE.search(line)
        if m:
            when = _local(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            if t.launcher_start is None:
                t.launcher_start = when
            if m.group(2).startswith("exec "):
                t.launcher_exec = when
        m = _LAB_LINE.search(line)
        if m and t.lab_running is None:
            t.lab_running = _local(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
    job = stack.scontrol_job(t.job_id)
    t.slurm_submit, t.slurm_start = job.get("SubmitTime", ""), job.get("StartTime", "")


def spawn(api: UserAPI, options: dict[str, Any], timeout: float = 600) -> Timeline:
    """Request a server; poll until Lab answers through the proxy (50 ms steps)."""
    t0 = time.time()
    r = api.start(options)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"start of {api.user}: {r.status_code} {r.text[:300]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):  # not up yet
            if api.lab("api/status").status_code == 200:
                return Timeline(api.user, t0, time.time())
        time.sleep(0.05)
    raise TimeoutError(f"Lab of {api.user} not reachable within {timeout:.0f} s")


def stop(api: UserAPI) -> None:
    api.stop()
    deadline = time.monotonic() + 120
    while api.server() is not None and time.monotonic() < deadline:
        time.sleep(0.5)


def table(rows: list[Timeline]) -> str:
    names = list(rows[0].phases())
    lines = ["| user | job | " + " | ".join(names) + " | Slurm SubmitTime / StartTime |",
             "|---|---|" + "---:|" * len(names) + "---|"]
    for t in rows:
        cells = [("-" if v is None else f"{v:.2f}") for v in t.phases().values()]
        lines.append(f"| {t.user} | {t.job_id} | " + " | ".join(cells)
                     + f" | {t.slurm_submit} / {t.slurm_start} |")
    if len(rows) > 1:
        cells = []
        for name in names:
            values = [v for t in rows if (v := t.phases()[name]) is not None]
            cells.append(f"{statistics.median(values):.2f}" if values else "-")
        lines.append("| median | | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


@contextlib.contextmanager
def bench_users(n: int) -> Iterator[list[str]]:
    names = [f"f7tbench{i:02d}" for i in range(1, n + 1)]
    try:
        for name in names:
            create_user(name)
        yield names
    finally:
        for name in names:
            subprocess.run(["scancel", "-u", name], check=False, timeout=30)
        for name in names:
            delete_user(name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10, help="users spawning at once (default 10; 0 skips that part)")
    p.add_argument("--single", type=int, default=2, help="single spawns per case (default 2; 0 skips them)")
    p.add_argument("--hub-log", type=Path, default=None,
                   help="after the users at once: write the hub container's log (docker timestamps) to this file")
    args = p.parse_args(argv)
    try:
        stack.check_host()
    except stack.Unavailable as exc:
        print(f"bench-e2e: cannot run: {exc.reason}", file=sys.stderr)
        return 2
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"# bench-e2e {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, load {' '.join(load)}")
    with bench_users(args.users) as names, stack.bring_up(
        script_setup=SCRIPT_SETUP, variants=["pytorch-25.10"], extra_users=names,
    ) as dep:
        api = UserAPI(dep.url, dep.user, oidc_login(dep.url, dep.user))
        cases = {
            "container (Podman, singleuser pytorch-25.10)": {
                "environment": "container", "container_image": dep.images["pytorch-25.10"]},
            "native venv": {"environment": "native", "venv": dep.venv},
        }
        for label, options in cases.items():
            rows = []
            for _ in range(args.single):
                t = spawn(api, options)
                fill(dep, t)
                rows.append(t)
                stop(api)
            if rows:  # --single 0: only the concurrent part
                print(f"\n## one user, {label} (seconds)\n\n{table(rows)}")
        if not names:
            return 0
        apis = [UserAPI(dep.url, n, oidc_login(dep.url, n)) for n in names]
        options = {"environment": "native", "venv": dep.venv, "time": "00:10:00"}

        def spawn_then_stop(api: UserAPI) -> Timeline:
            # Each user leaves once Lab answered: the test cluster runs at most 8 such
            # jobs at once (2 cores, OverSubscribe=FORCE:4), so the last ones queue.
            try:
                return spawn(api, options)
            finally:
                stop(api)

        with concurrent.futures.ThreadPoolExecutor(len(apis)) as pool:
            rows = list(pool.map(spawn_then_stop, apis))
        for t in rows:
            fill(dep, t)
        print(f"\n## {len(apis)} users at once, native venv (seconds)\n\n{table(rows)}")
        if args.hub_log is not None:
            assert dep.hub.container is not None
            args.hub_log.write_bytes(dep.hub.container.logs(timestamps=True))
            print(f"\nhub log: {args.hub_log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
