"""No job is ever lost, on the real Slurm cluster: FirecREST faults driven through JupyterHub.

The same mechanism as ``tests/spawner/test_lifecycle.py`` (a real JupyterHub, MockHub,
with FirecRESTSpawner; the REST API, ``poll_and_notify``, ``User.stop``, restarts with
``load_state``), but the FirecREST double runs its real-Slurm backend: ``sbatch`` submits
the spawner's batch script as the job user, and the job runs the real launcher
(``firecrestspawner-singleuser``, from this repository's stdlib-only compute package),
which calls back to the hub and execs a stand-in for ``jupyterhub-singleuser`` (a tiny
HTTP server: JupyterLab itself is the e2e test's business). Faults are injected in the
double; every test asserts the job's final state in Slurm itself (``squeue``/``sacct``)
and what the user sees through the REST API.

Every job carries this run's own name prefix, and a finalizer cancels whatever job of
that prefix is left, so that nothing here touches the jobs of other tests running on
the same cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from firecrest_double import FirecrestDouble
from firecrest_double.idp import IdentityProvider
from firecrest_double.slurm import SlurmScheduler
from firecrestspawner import reconciler
from firecrestspawner.reconciler import STATE_KEY
from tests.spawner.conftest import login, start_server
from tests.spawner.hubtools import (
    HubClient,
    hub_config,
    new_crypt_key,
    start_hub,
    stop_hub,
    wait_for,
)
from tests.support.require import unavailable
from tests.support.slurm import job_directory, require_cluster

os.environ.setdefault("JUPYTERHUB_CRYPT_KEY", new_crypt_key())

SYSTEM = "cluster"
JOB = "GET /compute/{system_name}/jobs/{job_id}"
CANCEL = "DELETE /compute/{system_name}/jobs/{job_id}"
SUBMIT = "POST /compute/{system_name}/jobs"
TOKEN = "POST /token"
#: Seconds FirecREST may take for one request before the spawner calls it an outage.
FIRECREST_TIMEOUT = 5.0
#: Bounds for the cluster (shared with other test runs: jobs may queue a while).
SLURM_WAIT = 90.0
#: Access tokens shorter than the refresh margin (60 s): every FirecREST call refreshes,
#: so that token-endpoint faults reach polls and stops.
SHORT_TOKEN = 40.0

LAUNCHER = """#!/bin/sh
# The real launcher from the repository's compute package (stdlib only).
PYTHONPATH={pkg} exec {python} -m firecrestspawner.compute.launcher "$@"
"""

# Found by the launcher next to its Python; records every start of the job.
SINGLEUSER = '''#!{python}
"""Stand-in for jupyterhub-singleuser: answers every GET with a small JSON page."""
import http.server, json, os, sys
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
with open("runs-" + os.environ.get("SLURM_JOB_ID", "none"), "a") as f:
    f.write("started\\n")
class Lab(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"stand-in": "jupyterlab", "path": self.path}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((opts["ip"], int(opts["port"])), Lab).serve_forever()
'''


@dataclass(frozen=True)
class Kit:
    """What the jobs of this module need, in the job user's home."""

    user: str
    workdir: Path
    bin: Path
    prefix: str
    address: str

    def runs(self, job_id: str) -> int:
        """How many times job ``job_id`` started the stand-in server."""
        path = self.workdir / f"runs-{job_id}"
        return len(path.read_text().split()) if path.exists() else 0

    def output(self, job_id: str) -> str:
        path = self.workdir / ".jupyterhub-logs" / f"jupyterhub-{job_id}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no output)"


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=check)


def _node_address() -> str:
    """The address the cluster's node name resolves to (the hub reaches the job there)."""
    nodes = _run("sinfo", "-h", "-N", "-o", "%N").stdout.split()
    if not nodes:
        unavailable("slurm", "sinfo lists no node: start the cluster with scripts/slurm-up.sh")
    try:
        infos = socket.getaddrinfo(nodes[0], None, socket.AF_INET)
    except OSError as exc:
        unavailable("slurm", f"the node name {nodes[0]!r} does not resolve ({exc}): the hub "
                             "could not reach a job there")
    return str(infos[0][4][0])


def _cancel_prefix(prefix: str) -> None:
    """scancel every job whose name starts with ``prefix`` (this module's jobs only)."""
    out = _run("squeue", "-h", "-o", "%i %j", check=False).stdout
    ids = [line.split()[0] for line in out.splitlines()
           if len(line.split()) == 2 and line.split()[1].startswith(prefix)]
    if ids:
        _run("scancel", *ids, check=False)


@pytest.fixture(scope="module")
def kit() -> Iterator[Kit]:
    """The launcher and the stand-in server in a directory of the job user; at the end,
    every job of this module's name prefix is cancelled."""
    user = require_cluster(root_only=True)
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if python is None:
        unavailable("tools", "no python3 in /usr/bin or /usr/local/bin for the job user")
    address = _node_address()
    prefix = f"f7tfaults{secrets.token_hex(3)}"
    source = Path(__file__).resolve().parents[2] / "firecrestspawner" / "compute"
    with job_directory(user, "f7t-faults-") as workdir:
        pkg = workdir / "pkg" / "firecrestspawner"
        shutil.copytree(source, pkg / "compute", ignore=shutil.ignore_patterns("__pycache__"))
        (pkg / "__init__.py").write_text("")
        bin_dir = workdir / "bin"
        bin_dir.mkdir()
        (bin_dir / "python3").symlink_to(python)  # the launcher looks next to its Python
        for name, text in (("firecrestspawner-singleuser", LAUNCHER),
                           ("jupyterhub-singleuser", SINGLEUSER)):
            path = bin_dir / name
            path.write_text(text.format(pkg=workdir / "pkg", python=bin_dir / "python3"))
            path.chmod(0o755)
        try:
            yield Kit(user, workdir, bin_dir, prefix, address)
        finally:
            _cancel_prefix(prefix)


# ------------------------------------------------------------------ Slurm's own view
def slurm_state(job_id: str) -> str:
    """The job's state as Slurm reports it (squeue while slurmctld knows it, else sacct)."""
    assert job_id.isdigit(), f"not a job id: {job_id!r}"
    state = _run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T", check=False).stdout
    if state.strip():
        return state.split()[0]
    out = _run("sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id, check=False).stdout
    return out.split("\n")[-2] if out.strip() else "UNKNOWN"


async def wait_slurm(job_id: str, prefixes: tuple[str, ...], what: str,
                     timeout: float = SLURM_WAIT, kit: Kit | None = None) -> str:
    """Wait (bounded) until Slurm shows the job in a state starting with ``prefixes``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state = ""
    while loop.time() < deadline:
        state = await asyncio.to_thread(slurm_state, job_id)
        if state.startswith(prefixes):
            return state
        await asyncio.sleep(0.5)
    output = f"; job output:\n{kit.output(job_id)}" if kit is not None else ""
    raise AssertionError(f"{what}: Slurm job {job_id} is {state}, not {prefixes} "
                         f"after {timeout:.0f} s{output}")


def sacct_runs(job_id: str) -> list[tuple[str, str]]:
    """Every record sacct keeps of the job (one per run, requeues included): (state, nodes)."""
    out = _run("sacct", "-D", "-X", "-n", "-P", "-o", "State,NodeList", "-j", job_id).stdout
    return [tuple(line.split("|", 1)) for line in out.splitlines() if line]  # type: ignore[misc]


# ------------------------------------------------------------------ hub and double
@pytest_asyncio.fixture
async def double(kit: Kit) -> AsyncIterator[FirecrestDouble]:
    """The double on the real cluster; cancels this module's leftover jobs afterwards."""
    fc = FirecrestDouble(SlurmScheduler(SYSTEM),
                         idp=IdentityProvider(access_token_lifetime=SHORT_TOKEN))
    try:
        async with fc:
            yield fc
            fc.assert_no_violations()
    finally:
        await asyncio.to_thread(_cancel_prefix, kit.prefix)


@pytest_asyncio.fixture
async def make_hub(double: FirecrestDouble, kit: Kit,
                   tmp_path: Path) -> AsyncIterator[Any]:
    """``await make_hub(clean_db=True, hub={...}, **spawner overrides)`` → a started hub
    whose spawner submits to the real cluster; stopped (servers too) at teardown.
    ``make_hub.dead(app)`` marks a hub killed by the test (nothing more is cleaned up)."""
    apps: list[Any] = []
    dead: list[Any] = []
    settings = {
        "firecrest_url": double.url,
        "system": SYSTEM,
        "workdir": str(kit.workdir),
        "token_url": double.idp.url + "/token",
        "token_client_id": "f7t4jhub",
        "job_name": kit.prefix + ".{hub_id}-{username}-{servername}",
        "script_setup": f"export PATH={kit.bin}:$PATH",
        "environment": {"FIRECRESTSPAWNER_IP": kit.address},
        "allowed_partitions": ["debug"],
        "default_partition": "debug",
        "default_time": "00:10:00",
        "start_timeout": 150,
        "http_timeout": 30,
        "start_poll_interval": 0.5,
        "poll_interval": 3600,  # the tests call JupyterHub's poll_and_notify themselves
        "poll_retries": 0,
        "poll_cache_seconds": 0,
        "firecrest_timeout": FIRECREST_TIMEOUT,
        "stop_timeout": 3.0,
        "not_found_recheck": 0.2,
        "reconcile_backoff": 0.5,
        "reconcile_backoff_max": 2.0,
    }

    async def make(clean_db: bool = True, hub: dict[str, Any] | None = None,
                   **overrides: Any) -> Any:
        config = hub_config({**settings, **overrides})
        for key, value in (hub or {}).items():
            setattr(config.JupyterHub, key, value)
        app = await start_hub(config, clean_db)
        apps.append(app)
        return app

    make.dead = dead.append  # type: ignore[attr-defined]
    yield make
    for app in apps:
        if app in dead:
            continue
        for user in list(app.users.values()):
            for name, spawner in list(user.spawners.items()):
                if spawner.active:
                    with contextlib.suppress(Exception):  # teardown: go on regardless
                        await asyncio.wait_for(user.stop(name), 60)
        if not getattr(app, "_stop_called", False):
            await stop_hub(app)
    await reconciler.stop_all()


async def servers(client: HubClient, user: str) -> dict[str, Any]:
    """The user's servers as the REST API shows them to the user."""
    status, body = await client.request("GET", f"/users/{user}")
    assert status == 200, (status, body)
    return dict(body["servers"])


async def until(predicate: Any, what: str, timeout: float = SLURM_WAIT) -> None:
    """Wait (bounded) until ``predicate()`` (sync or async) is true, checking every 0.25 s."""
    await wait_for(predicate, timeout, 0.25, what)


async def poll_until_ended(spawner: Any, what: str, arm: Any = None) -> int:
    """Call JupyterHub's ``poll_and_notify`` (what its periodic timer runs) until it
    reports the server ended (bounded); a poll that meets a slow cluster is an outage
    and keeps the server, so look again. ``arm()`` runs before each poll."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLURM_WAIT
    while loop.time() < deadline:
        if arm is not None:
            arm()
        status = await spawner.poll_and_notify()
        if status is not None:
            return int(status)
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: JupyterHub's poll kept the server for {SLURM_WAIT:.0f} s")


async def started(client: HubClient, kit: Kit, server: str = "") -> None:
    events = await start_server(client, kit.user, server)
    assert events[-1].get("ready"), events


# ------------------------------------------------------------------ the tests
@pytest.mark.timeout(300)
async def test_outages_keep_the_server_across_a_restart_and_a_failing_stop_is_retried(
        make_hub: Any, double: FirecrestDouble, kit: Kit, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A running job survives a hub restart (load_state) and every kind of outage while
    JupyterHub polls it; stopping it while the token endpoint and the cancel fail leaves
    it to the reconciler, which cancels it in Slurm."""
    monkeypatch.setenv("JUPYTERHUB_TEST_DB_URL", f"sqlite:///{tmp_path}/jupyterhub.sqlite")
    first = await make_hub()
    user, client, _ = await login(first, double, kit.user, access_lifetime=SHORT_TOKEN)
    await started(client, kit)
    job_id = user.spawner.job_id
    assert await wait_slurm(job_id, ("RUNNING",), "started server", kit=kit) == "RUNNING"

    # -- the hub restarts while the job runs: the server is kept (load_state)
    await stop_hub(first)
    assert slurm_state(job_id) == "RUNNING"
    hub = await make_hub(clean_db=False)
    client = HubClient(hub, client.headers["Authorization"].split()[1])
    spawner = hub.users[kit.user].spawners[""]
    assert spawner.job_id == job_id and spawner.ready
    assert (await servers(client, kit.user))[""]["ready"]

    # -- outages while JupyterHub polls: the server and the job are kept
    outages: list[tuple[str, Any, dict[str, Any]]] = [
        ("FirecREST 503", double.faults, {"route": JOB, "status": 503}),
        ("FirecREST 502", double.faults, {"route": JOB, "status": 502}),
        ("connection reset", double.faults, {"route": JOB, "reset": True}),
        ("timeout", double.faults, {"route": JOB, "delay": FIRECREST_TIMEOUT + 1}),
        ("system 404", double.faults,
         {"route": JOB, "status": 404, "message": "System 'cluster' does not exist."}),
        ("ingress 404", double.faults, {"route": JOB, "status": 404, "message": "Not Found"}),
        ("one 'Job not found'", double.faults,
         {"route": JOB, "status": 404, "message": "Job not found.", "count": 1}),
        ("token endpoint 503", double.idp.faults, {"route": TOKEN, "status": 503}),
        ("token endpoint slow", double.idp.faults, {"route": TOKEN, "delay": 1.0}),
        ("token endpoint refusing", double.idp.faults,
         {"route": TOKEN, "status": 400, "message": "refresh token revoked"}),
    ]
    for what, faults, fault in outages:
        # twice: a 404 taken for "Job not found" would be confirmed by the second look
        added = faults.add(**{"count": 2 if faults is double.faults else 1, **fault})
        assert await spawner.poll_and_notify() is None, what
        assert added.hits >= 1, f"{what}: the fault was not reached"
        faults.clear()
        assert spawner.active and spawner.job_id == job_id, what
    seen = double.count(JOB, job_id)
    await double.close_port()  # connection refused
    try:
        assert await spawner.poll_and_notify() is None, "connection refused"
    finally:
        await double.open_port()
    assert double.count(JOB, job_id) == seen, "no request reached the closed port"
    assert await spawner.poll_and_notify() is None
    assert (await servers(client, kit.user))[""]["ready"]
    assert slurm_state(job_id) == "RUNNING"
    assert double.count(CANCEL, job_id) == 0

    # -- stop while the token endpoint is slow, down, then refusing, and the cancel
    # fails longer than stop_timeout (3 s: at most 4 tries): the job goes to the
    # reconciler, which retries until Slurm shows it cancelled
    token_faults = [double.idp.faults.add(TOKEN, count=1, delay=1.0),
                    double.idp.faults.add(TOKEN, count=2, status=503),
                    double.idp.faults.add(TOKEN, count=1, status=400,
                                          message="refresh token revoked")]
    cancel_fails = double.faults.add(CANCEL, count=6, status=503)
    orm_spawner = spawner.orm_spawner
    status, _ = await client.request("DELETE", f"/users/{kit.user}/server")
    assert status in (202, 204), status
    await until(lambda: _gone(client, kit.user, ""), "server gone for the user")
    await wait_slurm(job_id, ("CANCELLED",), "stopped server's job", kit=kit)
    assert [f.hits for f in token_faults] == [1, 2, 1] and cancel_fails.hits == 6
    assert double.count(CANCEL, job_id) >= 7
    confirmed = spawner.reconciler().confirmed
    await until(lambda: job_id in [done for done, _ in confirmed], "the reconciler confirmed "
                "the end", timeout=30)
    await until(lambda: STATE_KEY not in (orm_spawner.state or {}), "unconfirmed job dropped "
                "from the saved state", timeout=10)
    assert kit.runs(job_id) == 1


@pytest.mark.timeout(300)
async def test_jobs_that_end_behind_the_hubs_back_end_their_servers(
        make_hub: Any, double: FirecrestDouble, kit: Kit) -> None:
    """JupyterHub's own periodic poll (every 2 s here) ends the server of a job that an
    administrator scancel'ed (the reason names the state; nothing is cancelled again),
    and the server whose job FirecREST reports not found twice; that job, which Slurm
    still runs, is cancelled by its name at the user's next start."""
    hub = await make_hub(hub={"allow_named_servers": True}, poll_interval=2)
    user, client, _ = await login(hub, double, kit.user)
    await asyncio.gather(started(client, kit), started(client, kit, "two"))
    lied_about, killed = user.spawners[""], user.spawners["two"]
    lied_id, killed_id = lied_about.job_id, killed.job_id
    for job_id in (lied_id, killed_id):
        await wait_slurm(job_id, ("RUNNING",), "started server", kit=kit)

    # -- an administrator cancels a job: the hub's periodic poll ends its server
    _run("scancel", killed_id)
    await until(lambda: _gone(client, kit.user, "two"), "server 'two' gone for the user")
    assert "CANCELLED" in killed.end_reason and killed_id in killed.end_reason
    assert double.count(CANCEL, killed_id) == 0, "an ended job is not cancelled again"
    assert slurm_state(killed_id) == "CANCELLED"
    assert (await servers(client, kit.user))[""]["ready"], "the other server is kept"

    # -- FirecREST says twice that it does not know the job: the periodic poll (first
    # look, then a second look) ends the server
    double.faults.add(JOB, count=2, status=404, message="Job not found.")
    await until(lambda: _gone(client, kit.user, ""), "default server gone for the user")
    assert "no longer knows" in lied_about.end_reason
    # FirecREST was wrong: Slurm still runs the job (unless a sweep cancelled it already)
    assert slurm_state(lied_id).startswith(("RUNNING", "CANCELLED"))

    # -- the next start (at the latest) finds the lost job by its name and cancels it
    await started(client, kit)
    new_id = user.spawners[""].job_id  # JupyterHub made a new spawner for the new start
    assert new_id and new_id != lied_id
    await wait_slurm(lied_id, ("CANCELLED",), "lost job cancelled at the next start")
    assert slurm_state(new_id) == "RUNNING"
    assert kit.runs(lied_id) == kit.runs(killed_id) == 1


async def _gone(client: HubClient, user: str, server: str) -> bool:
    return server not in await servers(client, user)


@pytest.mark.timeout(300)
async def test_requeued_job_ends_the_server_and_never_runs_again(
        make_hub: Any, double: FirecrestDouble, kit: Kit) -> None:
    """Batch scripts carry --no-requeue, so Slurm refuses an administrator's requeue; a
    requeue that happens anyway (the flag changed behind the hub's back) ends the server
    with a message naming it, and the job is cancelled before it can run again."""
    hub = await make_hub()
    user, client, _ = await login(hub, double, kit.user)
    await started(client, kit)
    spawner = user.spawner
    job_id = spawner.job_id
    for _ in range(120):  # FirecREST's accounting shows RUNNING a little after the callback
        assert await spawner.poll_and_notify() is None
        if spawner._seen_running:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"FirecREST never reported job {job_id} RUNNING")

    refused = _run("scontrol", "requeue", job_id, check=False)
    assert refused.returncode != 0 and "disabled" in refused.stderr, refused
    assert "Requeue=0" in _run("scontrol", "show", "job", job_id).stdout
    assert await spawner.poll_and_notify() is None
    assert slurm_state(job_id) == "RUNNING"

    _run("scontrol", "update", f"JobId={job_id}", "Requeue=1")
    _run("scontrol", "requeue", job_id)
    await wait_slurm(job_id, ("PENDING",), "requeued job back in the queue")
    await poll_until_ended(spawner, "requeued job")
    assert "interrupted" in spawner.end_reason and "requeued" in spawner.end_reason
    await until(lambda: _gone(client, kit.user, ""), "server gone for the user")
    await wait_slurm(job_id, ("CANCELLED",), "requeued job cancelled")
    runs: list[tuple[str, str]] = []

    async def accounted() -> bool:  # slurmdbd records the end a moment after slurmctld
        runs[:] = await asyncio.to_thread(sacct_runs, job_id)
        return bool(runs) and runs[-1][0].startswith("CANCELLED")

    await until(accounted, "sacct's record of the cancelled job", timeout=30)
    assert [state for state, _ in runs] == ["REQUEUED", runs[-1][0]], runs
    assert runs[-1][0].startswith("CANCELLED") and runs[-1][1] == "None assigned", runs
    assert kit.runs(job_id) == 1


def active_jobs(prefix: str) -> list[str]:
    """Ids of the jobs named ``prefix...`` that Slurm has not finished."""
    out = _run("squeue", "-h", "-o", "%i %j", check=False).stdout
    return [line.split()[0] for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].startswith(prefix)]


@pytest.mark.timeout(300)
async def test_start_failures_reach_the_user_and_leave_no_job(
        make_hub: Any, double: FirecrestDouble, kit: Kit) -> None:
    """The token endpoint down at start: a sentence naming it, nothing submitted. The
    answer to sbatch lost (FirecREST answers after the hub stopped waiting): a sentence
    saying so, and the job Slurm did create is found in the real job list (sacct merged
    with squeue) by its name and cancelled."""
    hub = await make_hub(extra_directives=["--begin=now+3600"])  # the job stays queued
    _, client, _ = await login(hub, double, kit.user, access_lifetime=SHORT_TOKEN)
    mine = active_jobs(kit.prefix)

    double.idp.faults.add(TOKEN, count=20, status=503)
    events = await start_server(client, kit.user)
    double.idp.faults.clear()
    message = events[-1]["message"]
    assert events[-1].get("failed") and "Internal Server Error" not in message, events
    assert "token endpoint" in message and "503" in message, message
    assert double.count(SUBMIT) == 0 and active_jobs(kit.prefix) == mine, "nothing submitted"

    double.faults.add(SUBMIT, count=1, delay=FIRECREST_TIMEOUT + 2, late=True)
    events = await start_server(client, kit.user)
    message = events[-1]["message"]
    assert events[-1].get("failed") and "did not answer" in message, events
    await until(lambda: double.scheduler.submitted, "sbatch done behind the lost answer")
    (job_id,) = double.scheduler.submitted  # type: ignore[attr-defined]
    await wait_slurm(job_id, ("CANCELLED",), "job whose submission answer was lost")
    assert active_jobs(kit.prefix) == mine
    assert await servers(client, kit.user) == {}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("saved", [False, True], ids=["before-saving", "after-saving"])
async def test_hub_killed_while_the_job_is_queued_leaves_no_job(
        make_hub: Any, double: FirecrestDouble, kit: Kit, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, saved: bool) -> None:
    """The hub dies while the job waits in the queue, right after sbatch: before the job
    id reached its database (the restarted hub finds the job by name), or after (the
    restarted hub loads it, sees that nothing waits for its callback any more); either
    way the job is cancelled in Slurm and the user sees no server, free to start again."""
    monkeypatch.setenv("JUPYTERHUB_TEST_DB_URL", f"sqlite:///{tmp_path}/jupyterhub.sqlite")
    queued = {"extra_directives": ["--begin=now+3600"]}  # stays PENDING (BeginTime)
    first = await make_hub(**queued)
    user, client, _ = await login(first, double, kit.user)
    spawner = user.spawner
    frozen = asyncio.Event()

    async def die(*_: Any) -> Any:  # the hub is gone: this start never goes on
        frozen.set()
        await asyncio.Event().wait()

    if not saved:
        monkeypatch.setattr(spawner, "_save_state", lambda: None)  # killed before it saved
    monkeypatch.setattr(spawner, "_wait_until_ready", die)
    status, _ = await client.request("POST", f"/users/{kit.user}/server")
    assert status in (201, 202), status
    await asyncio.wait_for(frozen.wait(), SLURM_WAIT)
    job_id = spawner.job_id
    assert await wait_slurm(job_id, ("PENDING",), "queued job") == "PENDING"
    assert ("job_id" in (user.orm_user.orm_spawners[""].state or {})) is saved
    pending = spawner._spawn_future
    first.log.handlers = []
    first.http_server.stop()
    first._stop_called = True  # a dead hub cleans nothing up
    make_hub.dead(first)

    second = await make_hub(clean_db=False, **queued)
    client = HubClient(second, client.headers["Authorization"].split()[1])
    await wait_slurm(job_id, ("CANCELLED",), "queued job of the dead hub")
    assert await servers(client, kit.user) == {}
    assert not second.users[kit.user].spawners[""].active
    assert kit.runs(job_id) == 0
    if pending is not None:
        pending.cancel()
