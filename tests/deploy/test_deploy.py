"""The deployment as a whole: hub and chp containers from our images, a real OpenID
Connect provider, FirecREST (the double) on real Slurm, JupyterLab from the singleuser
image in rootless Podman as the job user — and a real browser.

Each test states what the user sees and asserts the job's final state in Slurm.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import pytest

from tests.deploy import stack
from tests.deploy.stack import ARTEFACTS, Deployment
from tests.deploy.users import UserAPI, oidc_login

#: Bounds (seconds): nothing here waits without one.
START_BOUND = 240.0
STOP_BOUND = 60.0
#: Slurm's KillWait here is 5 s: by then the job's processes are gone.
LEFTOVER_BOUND = 20.0


# -- helpers -----------------------------------------------------------------------------
def login(dep: Deployment) -> UserAPI:
    """Log the user in through the provider; an API handle with the user's own token."""
    return UserAPI(dep.url, dep.user, oidc_login(dep.url, dep.user))


def ensure_stopped(api: UserAPI) -> None:
    """No server left from an earlier test (a failed one may leave one)."""
    if api.server() is not None:
        api.stop()
        stack.until(lambda: api.server() is None, STOP_BOUND, "earlier server stopped")


def start_and_wait(api: UserAPI, options: dict[str, Any]) -> dict[str, Any]:
    """Start the user's server with ``options``; return it once ready (bounded)."""
    ensure_stopped(api)
    r = api.start(options)
    assert r.status_code in (201, 202), f"start: {r.status_code} {r.text[:500]}"

    def ready() -> dict[str, Any] | None:
        server = api.server()
        if server is None:
            raise AssertionError(f"the server of {api.user} vanished while starting")
        return server if server.get("ready") else None

    return stack.until(ready, START_BOUND, f"server of {api.user} ready", interval=1.0)


def user_job(user: str) -> str:
    """The id of the user's active JupyterLab job (from Slurm, not from the hub)."""
    jobs = stack.active_jobs(user)
    assert len(jobs) == 1, f"expected one active job of {user}, Slurm has {jobs}"
    return jobs[0]


def final_state(job_id: str, bound: float = STOP_BOUND) -> str:
    """The job's state once it left the running states (bounded wait)."""
    def ended() -> str | None:
        job = stack.slurm_job(job_id)
        if job is None:
            return "GONE"
        state = str(job["job_state"])
        return None if state in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") else state

    return stack.until(ended, bound, f"Slurm job {job_id} ended")


def assert_lab(api: UserAPI) -> None:
    """JupyterLab's page and the server's API answer through the proxy."""
    r = api.lab("lab")
    assert r.status_code == 200 and "jupyter-config-data" in r.text, (
        f"GET /user/{api.user}/lab through the proxy: {r.status_code} {r.text[:300]}"
    )
    r = api.lab("api/status")
    assert r.status_code == 200 and "started" in r.json(), r.text[:300]


def route_target(dep: Deployment) -> str | None:
    route = dep.proxy.routes().get(f"/user/{dep.user}")
    return None if route is None else str(route["target"])


def batch_script(job_id: str) -> str:
    """The script Slurm ran for the job (``scontrol write batch_script``)."""
    return subprocess.run(
        ["scontrol", "write", "batch_script", job_id, "-"], capture_output=True, text=True,
        timeout=30, check=False,
    ).stdout


def container_options(dep: Deployment, variant: str = "pytorch-25.10") -> dict[str, str]:
    return {"environment": "container", "container_image": dep.images[variant],
            "partition": "debug", "time": "00:20:00"}


def assert_nothing_left(user: str) -> None:
    """Once the job ended, none of its JupyterLab runs or is stored on the node: no launcher
    process, no container in the user's Podman storage (bounded: the job's end trap stops
    and removes the container within a few seconds)."""
    t0 = time.monotonic()
    stack.until(lambda: not stack.lab_leftovers(user), LEFTOVER_BOUND,
                "the job's JupyterLab gone from the node",
                on_timeout=lambda: f"still on the node: {stack.lab_leftovers(user)}")
    print(f"nothing of the job left on the node after {time.monotonic() - t0:.1f} s")


def stop_and_check(dep: Deployment, api: UserAPI, job_id: str) -> None:
    """Stop from the hub: the job is CANCELLED in Slurm within the bound, the route gone,
    nothing of the job left on the node."""
    r = api.stop()
    assert r.status_code in (202, 204), f"stop: {r.status_code} {r.text[:300]}"
    t0 = time.monotonic()
    stack.until(lambda: api.server() is None, STOP_BOUND, "server stopped in the hub")
    assert final_state(job_id) == "CANCELLED"
    print(f"stop -> job {job_id} CANCELLED in {time.monotonic() - t0:.1f} s")
    assert route_target(dep) is None, dep.proxy.routes()
    assert api.lab("api/status").status_code != 200
    assert_nothing_left(dep.user)


# -- item 2: a user in a real browser ---------------------------------------------------------
@pytest.mark.timeout(600)
def test_browser_login_spawn_notebook_stop(deploy: Deployment) -> None:
    """Log in at the provider's page, fill the spawn form, watch the progress page (Slurm's
    state), use JupyterLab from the singleuser image, stop from the hub's home page."""
    shots = ARTEFACTS / "browser"
    shutil.rmtree(shots, ignore_errors=True)  # only this run's screenshots
    plan = {
        "hub_url": deploy.url, "user": deploy.user, "password": "any", "shots": str(shots),
        "timeout_ms": int(START_BOUND * 1000),
        "form": {"partition": "normal", "time": "00:15:00", "environment": "container",
                 "container_image": deploy.images["pytorch-25.10"]},
        "steps": ["login", "spawn", "lab", "notebook", "stop"],
    }
    plan_file = deploy.workdir / "browser-plan.json"
    plan_file.write_text(json.dumps(plan))
    seen: dict[str, str] = {}

    # The job id and its script while it runs (the browser runs in its own process).
    proc = subprocess.Popen(
        ["node", str(stack.NODE_DIR / "browser.mjs"), str(plan_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=stack.NODE_DIR,
    )
    try:
        deadline = time.monotonic() + 500
        while proc.poll() is None and time.monotonic() < deadline:
            jobs = stack.active_jobs(deploy.user)
            if jobs and "job" not in seen:
                seen["job"] = jobs[0]
            if "job" in seen and "script" not in seen:
                script = batch_script(seen["job"])
                if script:
                    seen["script"] = script
                    seen["partition"] = stack.scontrol_job(seen["job"]).get("Partition", "")
            time.sleep(0.5)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    steps = {s["step"]: s for s in map(json.loads, filter(None, out.splitlines()))}
    (ARTEFACTS / "browser-steps.json").write_text(json.dumps(steps, indent=2))
    failed = [s for s in steps.values() if not s["ok"]]
    assert proc.returncode == 0 and not failed, f"browser: {failed or steps}\n{err[-3000:]}"
    assert list(steps) == plan["steps"]

    # What the user saw: the provider's pages, Slurm's state on the progress page, Lab,
    # the cell's output computed in the singleuser container, the stopped server.
    assert steps["login"]["url"].startswith(deploy.url)
    progress = " | ".join(steps["spawn"]["progress"])
    assert "queued: PENDING" in progress or "running on" in progress, progress
    assert f"/user/{deploy.user}/lab" in steps["spawn"]["url"]
    assert steps["notebook"]["output"].startswith("answer 42 True"), steps["notebook"]
    # The job: the form's partition, the podman template, the singleuser image.
    job_id = seen.get("job")
    assert job_id, "no Slurm job was seen while the browser ran"
    assert seen.get("partition") == "normal", seen
    assert "podman run" in seen["script"] and deploy.images["pytorch-25.10"] in seen["script"]
    assert "JUPYTERHUB_API_TOKEN=" not in seen["script"]
    assert final_state(job_id) == "CANCELLED"
    assert route_target(deploy) is None
    assert_nothing_left(deploy.user)


# -- item 3 (and issue 7 item 8): stop from the hub; the hub container restarted -----------------
@pytest.mark.timeout(600)
def test_hub_container_restart_keeps_server(deploy: Deployment) -> None:
    """The hub runs the image's default configuration (no setting about restarts given):
    restarted while a server runs, it still lists the server, the proxy still reaches
    it, and it can be stopped — the job then leaves Slurm."""
    config = (deploy.workdir / "hub" / "config" / "hub.yaml").read_text()
    assert "cleanup" not in config, "the restart must be survived by the image's defaults"
    api = login(deploy)
    server = start_and_wait(api, container_options(deploy))
    job_id = user_job(deploy.user)
    assert_lab(api)
    target = route_target(deploy)
    assert target is not None

    deploy.hub.restart()
    job = stack.slurm_job(job_id)
    assert job is not None and job["job_state"] == "RUNNING", "the restart touched the job"
    after = api.server()
    assert after is not None and after.get("ready"), f"server lost over the restart: {after}"
    assert after["started"] == server["started"]
    assert route_target(deploy) == target
    assert_lab(api)
    stop_and_check(deploy, api, job_id)


# -- item 1, second case: the native venv install ----------------------------------------------
@pytest.mark.timeout(400)
def test_native_venv(deploy: Deployment) -> None:
    api = login(deploy)
    start_and_wait(api, {"environment": "native", "venv": deploy.venv, "partition": "debug",
                         "time": "00:10:00"})
    job_id = user_job(deploy.user)
    script = batch_script(job_id)
    assert f"source {deploy.venv}/bin/activate" in script and "podman" not in script
    assert_lab(api)
    stop_and_check(deploy, api, job_id)


# -- item 4: faults ------------------------------------------------------------------------------
@pytest.mark.timeout(400)
def test_firecrest_restart_keeps_server(deploy: Deployment) -> None:
    """FirecREST goes away for longer than a poll interval and comes back: the server is
    kept (an outage is not the end of a job), and it still stops cleanly."""
    api = login(deploy)
    start_and_wait(api, {"environment": "native", "venv": deploy.venv})
    job_id = user_job(deploy.user)
    deploy.firecrest.stop()
    down = 2 * 10 + 2  # two of the hub's poll intervals (hubconfig: poll_interval 10)
    time.sleep(down)
    deploy.firecrest.start_and_wait()
    server = api.server()
    assert server is not None and server.get("ready"), f"server dropped by an outage: {server}"
    job = stack.slurm_job(job_id)
    assert job is not None and job["job_state"] == "RUNNING"
    assert_lab(api)
    stop_and_check(deploy, api, job_id)


@pytest.mark.timeout(400)
def test_job_cancelled_behind_the_hub(deploy: Deployment) -> None:
    """``scancel`` by someone else: the hub notices at its next poll, ends the server and
    removes the route; Slurm has the job CANCELLED."""
    api = login(deploy)
    start_and_wait(api, {"environment": "native", "venv": deploy.venv})
    job_id = user_job(deploy.user)
    subprocess.run(["scancel", job_id], check=True, timeout=30)
    assert final_state(job_id) == "CANCELLED"
    t0 = time.monotonic()
    stack.until(lambda: api.server() is None, 3 * 10 + 30, "the hub ended the server")
    print(f"scancel -> server gone in the hub after {time.monotonic() - t0:.1f} s")
    stack.until(lambda: route_target(deploy) is None, 30, "route removed")
    assert_nothing_left(deploy.user)


# -- item 7: every singleuser variant meets the hub it will really meet -------------------------
def _variants() -> list[str]:
    from f7tbuild.catalogue import load

    return [t.variant for t in load().targets if t.family == "singleuser" and t.variant]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("variant", _variants())
def test_singleuser_variant_serves_this_hub(deploy: Deployment, variant: str) -> None:
    """Each catalogue variant, started by the hub image's JupyterHub through Podman, calls
    back, serves JupyterLab through the proxy and stops."""
    api = login(deploy)
    start_and_wait(api, container_options(deploy, variant))
    job_id = user_job(deploy.user)
    assert deploy.images[variant] in batch_script(job_id)
    assert_lab(api)
    stop_and_check(deploy, api, job_id)
