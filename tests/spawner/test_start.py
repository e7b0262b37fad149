"""Starting servers through a real JupyterHub, FirecRESTSpawner and the FirecREST double."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from firecrest_double import FirecrestDouble, JobSubmission, Outcome

from .conftest import USER, login, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for

SUBMIT = "POST /compute/{system_name}/jobs"
CANCEL = "DELETE /compute/{system_name}/jobs/{job_id}"


async def _start_and_follow(client: Any, body: Any = None) -> tuple[int, list[dict[str, Any]]]:
    status, _ = await client.request("POST", f"/users/{USER}/server", body)
    events = [event async for event in client.progress(USER)] if status in (201, 202) else []
    return status, events


async def test_start_reports_progress_and_uses_the_callback(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.scheduler.queue_delay = 1.0  # long enough to see PENDING with a reason
    # FirecREST reports RUNNING ~0.3 s late (sacct); without that lag the callback
    # cannot overtake it and every state shows up in the progress events.
    double.scheduler.running_lag = 0.0
    app = await make_hub()
    user, client, _ = await login(app, double)

    status, events = await _start_and_follow(client)

    assert status in (201, 202)
    assert events[-1].get("ready"), events
    # The stream may join late on a busy machine; the spawner keeps every event.
    spawner_events = user.spawner.progress_events
    assert all(e in spawner_events for e in events if "raw_event" not in e
               and e.get("message", "").startswith("Job"))
    events = spawner_events
    messages = [e.get("message", "") for e in events]
    assert any("submitted" in m for m in messages), messages
    assert any("queued: PENDING (Priority)" in m for m in messages), messages
    assert any("running on localhost" in m for m in messages), messages
    assert any("JupyterLab is up on 127.0.0.1" in m for m in messages), messages
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress), "progress must never go backwards"

    spawner = user.spawner
    (lab,) = compute.labs.values()
    # 200: verified at once (RUNNING already seen); 202: recorded, verified by the start
    assert lab.callback_status in (200, 202), lab.callback_body
    assert spawner.job_id == lab.job_id
    assert (spawner.server.ip, spawner.server.port) == ("127.0.0.1", lab.port)
    assert lab.hits >= 1, "JupyterHub checks the lab at the reported address"
    assert await spawner.poll() is None
    job = double.scheduler.jobs_by_id[spawner.job_id]
    assert job.state == "RUNNING"
    assert job.name == f"jupyterhub.hub-{USER}"  # hub id "hub": no public_url, base_url /
    assert "#SBATCH --partition=normal" in job.script
    assert "exec firecrestspawner-singleuser" in job.script
    state = spawner.get_state()
    assert state["job_id"] == spawner.job_id and state["job_port"] == lab.port


async def test_receive_callback_checks_and_tolerates_repeats(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """What the callback handler relies on: bad values are ValueErrors; a repeated
    callback with the same address (a launcher retrying) is accepted; another address,
    or a callback when no start waits, is refused."""
    compute.callback = False
    app = await make_hub()
    user, _, _ = await login(app, double)
    spawner = user.spawner
    with pytest.raises(RuntimeError, match="not waiting"):
        await spawner.receive_callback("127.0.0.1", 8888)

    start = asyncio.ensure_future(spawner.start())
    await wait_for(lambda: compute.labs and compute.labs["1"].port, 10, what="job running")
    port = compute.labs["1"].port
    with pytest.raises(ValueError, match="host"):
        await spawner.receive_callback("127.0.0.1;id", port)
    with pytest.raises(ValueError, match="port"):
        await spawner.receive_callback("127.0.0.1", 70000)
    await spawner.receive_callback("127.0.0.1", port)
    await spawner.receive_callback("127.0.0.1", port)
    with pytest.raises(RuntimeError, match="already got its callback"):
        await spawner.receive_callback("10.0.0.1", port)

    assert await asyncio.wait_for(start, 10) == ("127.0.0.1", port)
    await spawner.stop()
    assert double.scheduler.jobs_by_id["1"].state.startswith("CANCELLED")


async def test_env_with_commas_and_quotes_reaches_the_job_intact(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    tricky = {
        "WITH_COMMAS": "a,b,c",
        "SCOPES": '["x:y!s=a/","u:v"]',
        "LONE_QUOTE": "it's",
        "AFTER_QUOTE": "still here",
    }
    app = await make_hub(environment=tricky)
    _, client, _ = await login(app, double)

    _, events = await _start_and_follow(client)

    assert events[-1].get("ready"), events
    (lab,) = compute.labs.values()
    for name, value in tricky.items():
        assert lab.env[name] == value
    assert lab.env["JUPYTERHUB_USER"] == USER
    assert "PATH" not in lab.env, "the hub's PATH must not override the node's"
    # The proof that encoding matters: sent as plain variables, the double (like the real
    # FirecREST) would have cut them.
    from firecrest_double import apply_export
    mangled = apply_export(tricky, {})
    assert mangled.get("WITH_COMMAS") == "a" and "AFTER_QUOTE" not in mangled


async def test_failed_job_is_reported_with_slurm_state(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    compute.callback = False
    double.scheduler.script(Outcome.fail(exit_code=3, after=0.2))
    app = await make_hub()
    user, client, _ = await login(app, double)

    _, events = await _start_and_follow(client)

    assert events[-1].get("failed"), events
    text = events[-1]["message"]
    assert "FAILED (NonZeroExitCode), exit code 3" in text
    assert "jupyterhub-1.log" in text
    assert user.spawner.job_id == "" and not user.spawner.active
    assert double.scheduler.jobs_by_id["1"].state == "FAILED"


async def test_cancelled_job_is_reported(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    compute.callback = False
    double.scheduler.script(Outcome.cancelled(after=0.2, uid=0))
    app = await make_hub()
    _, client, _ = await login(app, double)

    _, events = await _start_and_follow(client)

    assert events[-1].get("failed"), events
    assert "CANCELLED by 0" in events[-1]["message"]


async def test_start_timeout_cancels_the_job_and_says_why(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.scheduler.script(Outcome.never_start(reason="Resources"))
    app = await make_hub(start_timeout=3)
    user, client, _ = await login(app, double)

    _, events = await _start_and_follow(client)

    assert events[-1].get("failed"), events
    text = events[-1]["message"]
    assert "did not start within 3 s" in text and "PENDING (Resources)" in text
    job = double.scheduler.jobs_by_id["1"]
    await wait_for(lambda: job.state.startswith("CANCELLED"), 5, what="job cancelled")
    assert double.count(CANCEL, "1") >= 1
    assert not user.spawner.active


async def test_callback_without_running_job_needs_the_job(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """A lab that calls back, then dies before the hub sees it RUNNING, fails the start."""
    double.scheduler.script(Outcome.fail(exit_code=1, after=0.0))
    double.scheduler.completing_s = 0.0
    app = await make_hub()
    _, client, _ = await login(app, double)

    _, events = await _start_and_follow(client)

    assert events[-1].get("failed") or events[-1].get("ready"), events
    if events[-1].get("failed"):
        assert "FAILED" in events[-1]["message"]


async def test_submit_refused_by_firecrest_is_reported(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.faults.add(SUBMIT, status=500, message="sbatch: error: Batch job submission failed")
    app = await make_hub()
    _, client, _ = await login(app, double)

    _, events = await _start_and_follow(client)

    assert events[-1].get("failed"), events
    assert "sbatch: error: Batch job submission failed" in events[-1]["message"]
    assert not double.scheduler.jobs_by_id


async def test_submit_answer_lost_cancels_the_orphan(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """A gateway error on submit may come after sbatch ran: the spawner looks for an
    active job with its job name and cancels it, so that no allocation is orphaned."""
    compute.callback = False
    app = await make_hub(cancel_stale_jobs=False)  # only the lost-answer path acts here
    _, client, _ = await login(app, double)
    # sbatch ran (the job exists) but the answer was lost: FirecREST's gateway says 504.
    orphan = await double.scheduler.submit(USER, JobSubmission(
        working_directory="/tmp", script="#!/bin/bash\n#SBATCH --job-name=jupyterhub-alice\n",
        name="jupyterhub-alice"))
    other = await double.scheduler.submit(USER, JobSubmission(
        working_directory="/tmp", script="#!/bin/bash\n", name="my-simulation"))
    double.faults.add(SUBMIT, status=504, message="Gateway Timeout")

    _, events = await _start_and_follow(client)

    assert events[-1].get("failed"), events
    assert "504" in events[-1]["message"]
    jobs = double.scheduler.jobs_by_id
    await wait_for(lambda: jobs[orphan].state.startswith("CANCELLED"), 10,
                   what="orphan cancelled")
    assert not jobs[other].state.startswith("CANCELLED"), "only our own job name is cancelled"


async def test_job_left_by_a_lost_start_is_cancelled_when_the_server_starts(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """A hub that crashed while starting left a job it never recorded: the next start of
    that server cancels it (beside the start, never the new job), so that the user does
    not pay for two allocations."""
    app = await make_hub()
    _, client, _ = await login(app, double)
    stale = await double.scheduler.submit(USER, JobSubmission(
        working_directory="/tmp", script="#!/bin/bash\n", name="jupyterhub-alice"))

    events = await start_server(client)

    assert events[-1].get("ready"), events
    jobs = double.scheduler.jobs_by_id
    await wait_for(lambda: jobs[stale].state.startswith("CANCELLED"), 10,
                   what="stale job cancelled")
    assert [j.job_id for j in jobs.values() if j.state == "RUNNING"] == ["2"]


async def test_two_servers_of_one_user_share_one_token_refresh(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(hub={"allow_named_servers": True})
    user, client, refresh = await login(app, double, access_lifetime=40)  # < margin

    results = await asyncio.gather(
        client.request("POST", f"/users/{USER}/servers/one"),
        client.request("POST", f"/users/{USER}/servers/two"),
    )
    assert all(status in (201, 202) for status, _ in results), results
    await wait_for(lambda: len(user.spawners) == 2 and
                   all(s.ready for s in user.spawners.values()), 20, what="both servers ready")
    assert double.idp.refresh_count == 1, "one refresh at a time per user"
    assert len(compute.labs) == 2
    names = sorted(j.name for j in double.scheduler.jobs_by_id.values())
    assert names == ["jupyterhub.hub-alice-one", "jupyterhub.hub-alice-two"]
    # the rotated refresh token was written back to auth_state
    state = await user.get_auth_state()
    assert state["refresh_token"] != refresh


async def test_expired_session_tells_the_user_to_log_in_again(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """Access token about to expire and the refresh token refused (session over at the
    identity provider): the start fails before submitting, saying what to do."""
    app = await make_hub()
    user, client, _ = await login(app, double, access_lifetime=20)
    state = await user.get_auth_state()
    await user.save_auth_state(dict(state, refresh_token="rt-revoked-by-keycloak"))

    events = await start_server(client)

    assert events[-1].get("failed"), events
    message = events[-1]["message"]
    assert message.startswith("Spawn failed: Cannot get a FirecREST access token")
    assert "invalid_grant" in message and "log in again" in message
    assert "rt-revoked-by-keycloak" not in message
    assert double.count("POST /compute/{system_name}/jobs") == 0
