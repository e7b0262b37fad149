"""The callback is answered at once; its host is bound to the job's nodes.

A host among the nodes the start flow already saw is verified when the callback comes
(200); otherwise the callback is recorded (202) and the start flow verifies the host
while JupyterLab starts, asking FirecREST for the job's nodes only when its own status
check does not show them; the hub requests nothing from the host before that. Through
JupyterHub: REST API start, the simulated launcher's callback, the double's job
answers; ``callback_node_lookups`` counts the job queries the check made.
"""

from __future__ import annotations

import time
from typing import Any

from firecrest_double import FirecrestDouble

from .conftest import login, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for

JOB = "GET /compute/{system_name}/jobs/{job_id}"


async def test_callback_from_a_seen_node_needs_no_lookup(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.scheduler.running_lag = 0.0
    compute.callback_delay = 0.5  # JupyterLab starting: the start flow sees RUNNING first
    app = await make_hub()
    user, client, _ = await login(app, double)

    events = await start_server(client)

    assert events[-1].get("ready"), events
    spawner = user.spawner
    assert spawner.callback_node_lookups == 0, "the start flow's nodes were reused"
    assert compute.labs["1"].callback_status == 200, "verified when it came"
    assert (spawner.job_host, spawner.job_port) == ("127.0.0.1", compute.labs["1"].port)


async def test_callback_from_another_host_is_recorded_looked_up_again_and_refused(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.scheduler.running_lag = 0.0
    compute.callback_delay = 0.5
    compute.host = "169.254.169.254"
    app = await make_hub(callback_node_wait=0.5)
    user, client, _ = await login(app, double)

    events = await start_server(client)

    assert events[-1].get("failed"), events
    message = events[-1]["message"]
    assert "169.254.169.254" in message and "localhost" in message and "refused" in message
    assert "job 1 " in message and "cancelled" in message
    # answered at once (the launcher would exec JupyterLab), refused by the start flow
    assert compute.labs["1"].callback_status == 202
    assert user.spawner.callback_node_lookups == 1, "a host not seen: FirecREST asked again"
    assert not user.spawner.ready and user.spawner.job_host == ""
    await wait_for(lambda: double.scheduler.jobs_by_id["1"].state.startswith("CANCELLED"),
                   10, what="job cancelled after the refused callback")


async def test_callback_before_running_was_seen_looks_the_nodes_up(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    # FirecREST reports RUNNING 1.5 s late (sacct): the callback overtakes it
    double.scheduler.running_lag = 1.5
    app = await make_hub()
    user, client, _ = await login(app, double)

    events = await start_server(client)

    assert events[-1].get("ready"), events
    assert compute.labs["1"].callback_status == 202, "recorded, verified by the start flow"
    assert user.spawner.callback_node_lookups == 1
    assert user.spawner.job_host == "127.0.0.1"
    # the lookup's answer is the job's RUNNING status: shown like the start flow's own
    messages = [e.get("message", "") for e in user.spawner.progress_events]
    assert any("Job 1 running on localhost" in m for m in messages), messages


async def test_callback_is_answered_before_the_nodes_are_known_and_lab_is_checked_after(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    """FirecREST answers every job query 2 s late once the job runs: the callback is
    answered without waiting for one (202), and the hub requests nothing from the
    reported host (readiness check, route) before a job query showed it is the job's."""
    double.scheduler.running_lag = 0.5  # the callback overtakes FirecREST's RUNNING
    running_at: list[float] = []

    def slow_job_queries(job: Any, state: str) -> None:
        if state == "RUNNING" and not running_at:
            running_at.append(time.monotonic())
            double.faults.add(JOB, count=1000, delay=2.0)

    double.scheduler.on_state_change.append(slow_job_queries)
    app = await make_hub()
    user, client, _ = await login(app, double)

    events = await start_server(client)

    assert events[-1].get("ready"), events
    lab = compute.labs["1"]
    assert lab.callback_status == 202, lab.callback_body
    assert lab.callback_answered is not None and lab.first_hit is not None
    assert lab.callback_answered - running_at[0] < 2.0, "the callback waited for FirecREST"
    assert lab.first_hit - running_at[0] >= 2.0, "the lab was checked before verification"
    assert user.spawner.job_host == "127.0.0.1"
