"""Two hubs sharing one FirecREST account: each sweeps only its own orphans.

Job names carry the hub id (firecrestspawner.jobnames). Hub "alpha" runs alice's
server; hub "beta" (another hub, same FirecREST user) starts alice's server there: its
orphan sweep cancels the jobs that carry beta's name (and the pre-hub-id name of an
upgrade) that no server of beta owns, and leaves alpha's running job alone.
"""

from __future__ import annotations

from typing import Any

from firecrest_double import FirecrestDouble, JobSubmission

from .conftest import USER, login, start_server
from .fakecompute import FakeCompute
from .hubtools import stop_hub, wait_for


async def _submit(double: FirecrestDouble, name: str) -> str:
    return await double.scheduler.submit(USER, JobSubmission(
        working_directory="/tmp", script=f"#!/bin/bash\n#SBATCH --job-name={name}\n",
        name=name))


async def test_a_hub_sweeps_only_its_own_orphans(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    alpha = await make_hub(hub_id="alpha")
    user, client, _ = await login(alpha, double)
    events = await start_server(client)
    assert events[-1].get("ready"), events
    alpha_job = user.spawner.job_id
    jobs = double.scheduler.jobs_by_id
    assert jobs[alpha_job].name == "jupyterhub.alpha-alice"
    await stop_hub(alpha)  # alpha's server keeps running (cleanup_servers = False)

    beta_orphan = await _submit(double, "jupyterhub.beta-alice")  # a crashed start of beta
    legacy_orphan = await _submit(double, "jupyterhub-alice")  # from before hub ids
    other = await _submit(double, "jupyterhub.gamma-alice")  # a third hub's
    await wait_for(lambda: all(jobs[j].state == "RUNNING"
                               for j in (beta_orphan, legacy_orphan, other)),
                   10, what="planted jobs running")

    beta = await make_hub(hub_id="beta")
    user, client, _ = await login(beta, double)
    events = await start_server(client)
    assert events[-1].get("ready"), events
    assert jobs[user.spawner.job_id].name == "jupyterhub.beta-alice"

    await wait_for(lambda: jobs[beta_orphan].state.startswith("CANCELLED")
                   and jobs[legacy_orphan].state.startswith("CANCELLED"),
                   15, what="beta's orphans cancelled by its sweep")
    # the sweep has listed every job by now: the other hubs' jobs were not taken
    assert await user.spawner.sweep_orphans() == []
    assert jobs[alpha_job].state == "RUNNING", "beta cancelled alpha's job"
    assert jobs[other].state == "RUNNING", "beta cancelled a third hub's job"
    assert jobs[user.spawner.job_id].state == "RUNNING"

    # without legacy names, a pre-hub-id job is left alone too (another hub's, maybe)
    user.spawner.legacy_job_names = False
    legacy_other = await _submit(double, "jupyterhub-alice")
    await wait_for(lambda: jobs[legacy_other].state == "RUNNING", 10, what="running")
    assert await user.spawner.sweep_orphans() == []
    for job_id in (alpha_job, other, legacy_other):  # no job outlives the test
        await double.scheduler.cancel(USER, job_id)
