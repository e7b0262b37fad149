"""No job is ever lost: faults injected in the FirecREST double, driven through JupyterHub
(REST API start/stop, User.stop, poll, hub restart with load_state); every test asserts
the job's final state in the double's scheduler, not only the hub's view."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from firecrest_double import FirecrestDouble
from firecrestspawner.lifecycle import TRANSITIONS, State
from firecrestspawner.reconciler import STATE_KEY

from .conftest import USER, login, running_server, start_server
from .fakecompute import FakeCompute
from .hubtools import HubClient, stop_hub, wait_for

JOB = "GET /compute/{system_name}/jobs/{job_id}"
JOBS = "GET /compute/{system_name}/jobs"
CANCEL = "DELETE /compute/{system_name}/jobs/{job_id}"
SUBMIT = "POST /compute/{system_name}/jobs"
FAST = {"poll_cache_seconds": 0, "reconcile_backoff": 0.2, "reconcile_backoff_max": 0.5,
        "not_found_recheck": 0.1, "firecrest_timeout": 0.5, "stop_timeout": 1.0,
        "poll_retries": 0}


def _state(double: FirecrestDouble, job_id: str) -> str:
    return double.scheduler.jobs_by_id[job_id].state  # type: ignore[attr-defined]


async def _poll_until_running(spawner: Any) -> None:
    for _ in range(50):
        assert await spawner.poll() is None
        if spawner._seen_running:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("poll never saw the job RUNNING")


def test_every_state_has_its_transitions() -> None:
    assert set(TRANSITIONS) == set(State)
    assert all(targets <= set(State) for targets in TRANSITIONS.values())


async def test_stop_during_an_outage_leaves_the_job_to_the_reconciler(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """FirecREST answers 503 to everything while the user stops the server: the hub
    lets the user go on, the job id is kept in the database, and the job is cancelled
    once FirecREST is back."""
    app = await make_hub(**FAST)
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    job_id = user.spawner.job_id
    orm_spawner = user.orm_user.orm_spawners[""]
    double.faults.add("*", count=10_000, status=503)

    status, _ = await client.request("DELETE", f"/users/{USER}/server")
    assert status == 503 or status in (202, 204)
    await wait_for(lambda: not user.spawners.get("") or not user.spawners[""].active, 20,
                   what="server stopped")
    assert _state(double, job_id) == "RUNNING", "nothing could be cancelled yet"
    assert orm_spawner.state[STATE_KEY] == [
        {"system": "cluster", "job_id": job_id, "reason": orm_spawner.state[STATE_KEY][0]["reason"]}]

    double.faults.clear()
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 20,
                   what="job cancelled by the reconciler")
    await wait_for(lambda: STATE_KEY not in (orm_spawner.state or {}), 10,
                   what="unconfirmed job dropped from the saved state")


async def test_cancel_failing_is_retried_until_confirmed(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    job_id = user.spawner.job_id
    double.faults.add(CANCEL, count=3, status=503)

    status, _ = await client.request("DELETE", f"/users/{USER}/server")
    assert status in (202, 204)
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 20,
                   what="job cancelled despite failing cancels")
    assert double.count(CANCEL, job_id) >= 4


@pytest.mark.parametrize("fault", [
    {"status": 503}, {"status": 502}, {"reset": True}, {"delay": 1.5},
    {"status": 404, "message": "System 'cluster' does not exist."},
    {"status": 404, "message": "Not Found"},
])
async def test_poll_outages_keep_the_server_and_the_job(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        fault: dict[str, Any]) -> None:
    app = await make_hub(**FAST)
    spawner = await running_server(app, double)
    double.faults.add(JOB, count=6, **fault)

    for _ in range(3):
        assert await spawner.poll() is None
    assert spawner.ready and spawner.job_id
    double.faults.clear()
    assert await spawner.poll() is None
    assert _state(double, spawner.job_id) == "RUNNING"


async def test_one_job_not_found_is_looked_at_again(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    spawner = await running_server(app, double)
    double.faults.add(JOB, count=1, status=404, message="Job not found.")

    assert await spawner.poll() is None
    assert _state(double, spawner.job_id) == "RUNNING"


async def test_job_not_found_twice_ends_the_server(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST, not_found_grace=0)
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    job_id = user.spawner.job_id
    del double.scheduler.jobs_by_id[job_id]  # past Slurm's MinJobAge

    await user.stop("")  # JupyterHub: poll() first, stop() only when it says running
    assert double.count(CANCEL, job_id) == 0
    assert double.count(JOB, job_id) >= 2, "Job not found was looked at twice"


async def test_job_killed_behind_the_hubs_back_ends_the_server(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    job_id = user.spawner.job_id
    await double.scheduler.cancel("root", job_id)

    await user.stop("")
    assert double.count(CANCEL, job_id) == 0, "an ended job is not cancelled again"
    assert _state(double, job_id).startswith("CANCELLED")


@pytest.mark.parametrize("state", ["PENDING", "REQUEUED"])
async def test_requeued_job_ends_the_server_and_is_cancelled(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute, state: str,
        caplog: pytest.LogCaptureFixture) -> None:
    app = await make_hub(**FAST)
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    spawner = user.spawner
    job_id = spawner.job_id
    assert "#SBATCH --no-requeue" in double.scheduler.jobs_by_id[job_id].script
    # FirecREST's accounting reports RUNNING a little after the callback; PENDING before
    # that is the lag, PENDING after it a requeue
    await _poll_until_running(spawner)
    await double.scheduler.requeue(job_id, state=state, run_again_after=30)

    assert await spawner.poll() == 1
    assert "interrupted" in spawner.end_reason
    await user.stop("")
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 10,
                   what="requeued job cancelled")


async def test_requeue_allowed_keeps_the_server(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST, allow_requeue=True)
    spawner = await running_server(app, double)
    job_id = spawner.job_id
    assert "--no-requeue" not in double.scheduler.jobs_by_id[job_id].script
    await double.scheduler.requeue(job_id, run_again_after=30)
    assert await spawner.poll() is None
    assert _state(double, job_id) == "PENDING"


async def test_hub_killed_while_the_job_is_queued_leaves_no_job(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first hub dies (its start never finishes, nothing more is saved) while the
    job waits in the queue; the restarted hub finds the job and cancels it."""
    monkeypatch.setenv("JUPYTERHUB_TEST_DB_URL", f"sqlite:///{tmp_path}/jupyterhub.sqlite")
    double.scheduler.queue_delay = 3600
    first = await make_hub(**FAST)
    user, client, _ = await login(first, double)
    spawner = user.spawner
    frozen = asyncio.Event()

    async def hang(*_: Any) -> Any:  # the hub "dies": this start never goes on
        frozen.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(spawner, "_wait_until_ready", hang)
    status, _ = await client.request("POST", f"/users/{USER}/server")
    assert status in (201, 202)
    await asyncio.wait_for(frozen.wait(), 20)
    (job_id,) = list(double.scheduler.jobs_by_id)
    assert _state(double, job_id) == "PENDING"
    pending = spawner._spawn_future
    first.log.handlers = []
    first.http_server.stop()
    first._stop_called = True  # a dead hub cleans nothing up

    second = await make_hub(clean_db=False, **FAST)
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 20,
                   what="queued job of the dead hub cancelled")
    assert not second.users[USER].spawner.active
    if pending is not None:
        pending.cancel()


async def test_start_timeout_cancels_and_confirms(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.scheduler.queue_delay = 3600
    app = await make_hub(**{**FAST, "start_timeout": 3})
    _, client, _ = await login(app, double)

    events = await start_server(client)
    assert events[-1].get("failed")
    assert "did not start within 3 s" in events[-1]["message"]
    (job_id,) = list(double.scheduler.jobs_by_id)
    assert _state(double, job_id).startswith("CANCELLED")


async def test_token_endpoint_down_fails_the_start_with_a_sentence(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    _, client, _ = await login(app, double, access_lifetime=1)  # must refresh
    double.idp.faults.add("POST /token", count=5, status=503)

    events = await start_server(client)
    message = events[-1]["message"]
    assert events[-1].get("failed") and "Internal Server Error" not in message
    assert "token endpoint" in message and "503" in message
    assert double.count(SUBMIT) == 0, "nothing was submitted"
    assert not double.scheduler.jobs_by_id


async def test_refused_refresh_says_log_in_again(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    _, client, _ = await login(app, double, access_lifetime=1)
    double.idp.faults.add("POST /token", count=1, status=400, message="refresh token revoked")

    events = await start_server(client)
    assert events[-1].get("failed")
    assert "log in again" in events[-1]["message"]
    assert not double.scheduler.jobs_by_id


async def test_waiters_share_a_failed_refresh(make_hub: Any, double: FirecrestDouble,
                                              compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    user, _, _ = await login(app, double, access_lifetime=1)
    spawner = user.spawner
    double.idp.faults.add("POST /token", count=10, status=503, delay=0.3)
    auth = spawner.gateway().auth

    results = await asyncio.gather(*(auth.get_token() for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, Exception) and "503" in str(r) for r in results)
    assert double.idp.faults.pending[0].hits == 1, "one grant for the three callers"


async def test_slow_refresh_keeps_the_rotated_token(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """The provider rotates the refresh token but answers after FirecREST's timeout: the
    refresh has its own timeout, so the new refresh token is saved."""
    app = await make_hub(**{**FAST, "firecrest_timeout": 0.3, "token_timeout": 5})
    user, client, old_refresh = await login(app, double, access_lifetime=1)
    double.idp.faults.add("POST /token", count=1, delay=1.0)

    events = await start_server(client)
    assert events[-1].get("ready"), events
    state = await user.get_auth_state()
    assert state["refresh_token"] != old_refresh


async def test_401_on_submit_refreshes_once_and_retries(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    _, client, _ = await login(app, double)
    double.faults.add(SUBMIT, count=1, status=401, message="token rejected")
    refreshes = double.idp.refresh_count

    events = await start_server(client)
    assert events[-1].get("ready"), events
    assert double.idp.refresh_count == refreshes + 1
    assert [r.status for r in double.requests if r.route == SUBMIT] == [401, 201]


async def test_403_is_not_a_token_problem(make_hub: Any, double: FirecrestDouble,
                                          compute: FakeCompute) -> None:
    app = await make_hub(**FAST)
    _, client, _ = await login(app, double)
    double.faults.add(SUBMIT, count=1, status=403, message="user not allowed on cluster")
    refreshes = double.idp.refresh_count

    events = await start_server(client)
    assert events[-1].get("failed")
    assert "403" in events[-1]["message"] and "not allowed" in events[-1]["message"]
    assert double.idp.refresh_count == refreshes
    assert not double.scheduler.jobs_by_id


async def test_lost_submit_answer_is_found_by_name_and_cancelled(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.scheduler.queue_delay = 3600
    app = await make_hub(**{**FAST, "firecrest_timeout": 0.5})
    _, client, _ = await login(app, double)
    # the job is created, but the answer comes after the hub stopped waiting
    double.faults.add(SUBMIT, count=1, delay=2.0, late=True)

    events = await start_server(client)
    assert events[-1].get("failed")
    assert "did not answer" in events[-1]["message"]
    await wait_for(lambda: double.scheduler.jobs_by_id, 10, what="job created late")
    (job_id,) = list(double.scheduler.jobs_by_id)
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 20,
                   what="orphan found by name and cancelled")


async def test_restarted_hub_resumes_unconfirmed_jobs(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_TEST_DB_URL", f"sqlite:///{tmp_path}/jupyterhub.sqlite")
    first = await make_hub(**FAST)
    user, client, _ = await login(first, double)
    assert (await start_server(client))[-1].get("ready")
    job_id = user.spawner.job_id
    token = client.headers["Authorization"].split()[1]
    double.faults.add("*", count=100_000, status=503)
    await client.request("DELETE", f"/users/{USER}/server")
    await wait_for(lambda: STATE_KEY in (user.orm_user.orm_spawners[""].state or {}), 20,
                   what="job handed to the reconciler")
    from firecrestspawner import reconciler

    await reconciler.stop_all()  # the first hub dies with its reconciler
    await stop_hub(first)
    assert _state(double, job_id) == "RUNNING"

    double.faults.clear()
    second = await make_hub(clean_db=False, **FAST)
    HubClient(second, token)
    second.users[USER].spawners[""]  # any spawner of the new hub resumes the work
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 20,
                   what="job cancelled by the restarted hub")


@pytest.mark.parametrize("host", ["169.254.169.254", "nid000042", "10.0.0.1"])
async def test_callback_from_a_host_that_is_not_the_jobs_is_refused(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute, host: str) -> None:
    """A user who reads the job's token cannot point the proxy elsewhere: the host must
    be the job's node (here 'localhost', i.e. 127.0.0.1). The callback is answered at
    once (recorded, 202); the start flow's check refuses the host and ends the job."""
    compute.host = host
    app = await make_hub(**FAST)
    _, client, _ = await login(app, double)

    events = await start_server(client)
    assert events[-1].get("failed")
    message = events[-1]["message"]
    assert host in message and "localhost" in message and "refused" in message
    (lab,) = compute.labs.values()
    assert f"job {lab.job_id} " in message
    assert lab.callback_status == 202 and host in lab.callback_body
    await wait_for(lambda: _state(double, lab.job_id).startswith("CANCELLED"), 10,
                   what="job cancelled after the refused callback")


async def test_callback_with_a_site_node_address_template(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    compute.host = "localhost.hsn.invalid"
    app = await make_hub(**FAST, http_timeout=2,
                         node_addresses={"templates": ["{node}.hsn.invalid"]})
    _, client, _ = await login(app, double)

    events = await start_server(client)
    # recorded, then accepted by the start flow's check; the hub then cannot reach the
    # made-up name
    (lab,) = compute.labs.values()
    assert lab.callback_status == 202, lab.callback_body
    assert events[-1].get("failed"), events
    message = events[-1]["message"]
    assert "localhost.hsn.invalid" in message and "did not answer" in message, message
    assert "refused" not in message, message


async def test_token_endpoint_down_keeps_a_running_server(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """A token outage while polling with the user's expiring token is an outage."""
    double.idp.access_token_lifetime = 40  # < token_refresh_margin: every call refreshes
    app = await make_hub(**FAST)
    spawner = await running_server(app, double, access_lifetime=40)
    double.idp.faults.add("POST /token", count=20, status=503)

    for _ in range(3):
        assert await spawner.poll() is None
    assert double.idp.faults.pending[0].hits >= 1, "the refresh was tried"
    assert _state(double, spawner.job_id) == "RUNNING"


async def test_hub_periodic_poll_notices_a_killed_job(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """JupyterHub's own poll_and_notify (poll_interval 1 s) ends the server of a job an
    admin killed, and keeps the one whose polls only fail."""
    app = await make_hub(hub={"allow_named_servers": True}, **{**FAST, "poll_interval": 1})
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    assert (await start_server(client, server="two"))[-1].get("ready")
    first, second = user.spawners[""], user.spawners["two"]
    killed, kept = first.job_id, second.job_id
    double.faults.add(JOB, count=10_000, status=502)  # every poll fails ...
    await double.scheduler.cancel("root", killed)  # ... and one job is killed meanwhile

    await asyncio.sleep(3)
    assert first.active and second.active, "an outage ends no server"
    double.faults.clear()
    await wait_for(lambda: not first.active, 15, what="killed job's server ended by the hub")
    assert second.active and _state(double, kept) == "RUNNING"
    assert double.count(CANCEL, killed) == 0


async def test_hub_shutdown_with_cleanup_servers_confirms_every_end(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(**FAST, hub={"cleanup_servers": True})
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    job_id = user.spawner.job_id
    double.faults.add(CANCEL, count=2, status=503)

    await stop_hub(app)
    await wait_for(lambda: _state(double, job_id).startswith("CANCELLED"), 20,
                   what="job cancelled at hub shutdown")


def _addresses(name: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return set()


async def test_callback_with_another_name_of_the_node(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """A launcher reporting another name of its node than Slurm's (like an FQDN; here
    another name of this machine's loopback, for node 'localhost') is accepted through
    the address both resolve to, and the hub keeps that address, not the name."""
    loopback = _addresses("localhost")
    names = [n for n in (socket.gethostname(), "ip6-localhost", "localhost.localdomain")
             if n != "localhost" and _addresses(n) & loopback]
    if not names:
        pytest.skip("no other name of this machine resolves to localhost's addresses")
    compute.host = names[0]
    app = await make_hub(**FAST, http_timeout=2)
    user, client, _ = await login(app, double)

    await start_server(client)
    (lab,) = compute.labs.values()
    assert lab.callback_status in (200, 202), lab.callback_body  # verified / recorded
    up = [e["message"] for e in user.spawner.progress_events
          if e["message"].startswith("JupyterLab is up on ")]
    assert up and up[0].rsplit(":", 1)[0].removeprefix("JupyterLab is up on ") in loopback
