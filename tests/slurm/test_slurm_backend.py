"""The real-Slurm backend of the FirecREST double, driven directly (no HTTP).

Each test submits real batch jobs with ``sbatch`` as the job user and checks what
Slurm did (job state, the job's own output) and how the backend reports it in
FirecREST's ``JobModel`` shape, validated against the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import pwd
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from firecrest_double.scheduler import JobNotFound, JobSubmission, SchedulerError
from firecrest_double.slurm import SlurmScheduler
from firecrest_double.spec import load_spec

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


async def wait_job(
    scheduler: SlurmScheduler,
    user: str,
    job_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll the backend until ``done(job)``; fail with the last job seen after ``timeout``."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        [job] = await scheduler.jobs(user, job_id)
        if done(job):
            return job
        await asyncio.sleep(0.3)
    pytest.fail(f"job {job_id} did not reach the expected state within {timeout}s: {job}")


def assert_job_model(job: dict[str, Any]) -> None:
    """The job validates against FirecREST's ``JobModel`` schema."""
    spec = load_spec()
    schema = {"$ref": "#/components/schemas/JobModel"}
    assert spec.schema_errors(schema, job, "JobModel") == []


async def test_submit_runs_as_user_with_firecrest_export_semantics(
    slurm_scheduler: SlurmScheduler, slurm_cluster: str, job_dir: Path
) -> None:
    user = slurm_cluster
    script = (
        "#!/bin/bash\n"
        'printf "user=%s\\n" "$(id -un)"\n'
        'printf "pwd=%s\\n" "$PWD"\n'
        'for v in PLAIN COMMA SPACES DOLLAR QUOTE AFTER; do printf "%s=[%s]\\n" "$v" "${!v-UNSET}"; done\n'
    )
    env = {
        "PLAIN": "value",
        "COMMA": "a,b,c",
        "SPACES": "x y;z",
        "DOLLAR": "$HOME",
        "QUOTE": "it's",
        "AFTER": "lost",
    }
    job_id = await slurm_scheduler.submit(
        user,
        JobSubmission(
            working_directory=str(job_dir),
            script=script,
            env=env,
            name="f7t-export",
            standard_output="out-%j.txt",
        ),
    )
    assert job_id.isdigit()

    [pending] = await slurm_scheduler.jobs(user, job_id)
    assert_job_model(pending)
    assert pending["jobId"] == job_id and pending["name"] == "f7t-export"
    assert pending["user"] == user and pending["workingDirectory"] == str(job_dir)

    job = await wait_job(
        slurm_scheduler, user, job_id, lambda j: j["status"]["state"].startswith(TERMINAL)
    )
    assert_job_model(job)
    assert job["status"]["state"] == "COMPLETED", job
    assert job["status"]["exitCode"] == 0
    assert job["time"]["start"] > 0 and job["time"]["end"] >= job["time"]["start"]
    assert [t["id"] for t in job["tasks"]] == [f"{job_id}.batch"]

    output = (job_dir / f"out-{job_id}.txt").read_text()
    assert f"user={user}\n" in output
    assert f"pwd={job_dir}\n" in output
    assert "PLAIN=[value]" in output
    assert "COMMA=[a]" in output  # cut at the first comma, as FirecREST's --export does
    assert "SPACES=[x y;z]" in output
    assert "DOLLAR=[$HOME]" in output  # not expanded
    assert "QUOTE=[it]" in output  # a lone quote ends FirecREST's shell word ...
    assert "AFTER=[UNSET]" in output  # ... and every later variable is lost

    [meta] = await slurm_scheduler.metadata(user, job_id)
    assert meta["script"] == script
    assert meta["standardOutput"] == str(job_dir / f"out-{job_id}.txt")


async def test_cancel_reports_cancelled_by_uid(
    slurm_scheduler: SlurmScheduler, slurm_cluster: str, job_dir: Path
) -> None:
    user = slurm_cluster
    uid = pwd.getpwnam(user).pw_uid
    job_id = await slurm_scheduler.submit(
        user,
        JobSubmission(
            working_directory=str(job_dir), script="#!/bin/bash\nsleep 300\n", name="f7t-cancel"
        ),
    )
    await wait_job(slurm_scheduler, user, job_id, lambda j: j["status"]["state"] == "RUNNING")

    await slurm_scheduler.cancel(user, job_id)
    job = await wait_job(
        slurm_scheduler, user, job_id, lambda j: j["status"]["state"].startswith("CANCELLED")
    )
    assert_job_model(job)
    assert job["status"]["state"] == f"CANCELLED by {uid}"
    assert job["killRequestUser"] is None  # FirecREST: always null; the state names the uid

    with pytest.raises(SchedulerError, match="already completing or completed"):
        await slurm_scheduler.cancel(user, job_id)


async def test_unknown_job(slurm_scheduler: SlurmScheduler, slurm_cluster: str) -> None:
    with pytest.raises(JobNotFound):
        await slurm_scheduler.jobs(slurm_cluster, "999999999")
    with pytest.raises(SchedulerError, match="Invalid job id"):
        await slurm_scheduler.cancel(slurm_cluster, "999999999")


@pytest.mark.parametrize(
    ("script", "partition", "stderr"),
    [
        ("echo no shebang\n", None, "does not look like a batch script"),
        ("#!/bin/bash\ntrue\n", "no-such-partition", "invalid partition"),
    ],
)
async def test_sbatch_rejection_carries_stderr(
    slurm_scheduler: SlurmScheduler,
    slurm_cluster: str,
    job_dir: Path,
    script: str,
    partition: str | None,
    stderr: str,
) -> None:
    with pytest.raises(SchedulerError) as excinfo:
        await slurm_scheduler.submit(
            slurm_cluster,
            JobSubmission(working_directory=str(job_dir), script=script, partition=partition),
        )
    assert stderr in excinfo.value.stderr.lower()
    assert excinfo.value.exit_status != 0


async def test_failures_are_reported(
    slurm_scheduler: SlurmScheduler, slurm_cluster: str, job_dir: Path
) -> None:
    user = slurm_cluster
    exits = await slurm_scheduler.submit(
        user, JobSubmission(working_directory=str(job_dir), script="#!/bin/bash\nexit 3\n")
    )
    no_dir = await slurm_scheduler.submit(
        user,
        JobSubmission(working_directory=str(job_dir / "missing"), script="#!/bin/bash\ntrue\n"),
    )
    job = await wait_job(
        slurm_scheduler, user, exits, lambda j: j["status"]["state"].startswith(TERMINAL)
    )
    assert (job["status"]["state"], job["status"]["exitCode"]) == ("FAILED", 3), job
    assert job["status"]["stateReason"] == "NonZeroExitCode"
    job = await wait_job(
        slurm_scheduler, user, no_dir, lambda j: j["status"]["state"].startswith(TERMINAL)
    )
    assert job["status"]["state"] == "FAILED", job  # a missing working directory ends FAILED
    assert_job_model(job)


async def test_user_job_listing(
    slurm_scheduler: SlurmScheduler, slurm_cluster: str, job_dir: Path
) -> None:
    user = slurm_cluster
    job_id = await slurm_scheduler.submit(
        user, JobSubmission(working_directory=str(job_dir), script="#!/bin/bash\nsleep 300\n")
    )
    listed = {j["jobId"] for j in await slurm_scheduler.jobs(user)}
    assert job_id in listed
    assert job_id not in {j["jobId"] for j in await slurm_scheduler.jobs("root")}
    info = slurm_scheduler.userinfo(user)
    assert (info.name, info.uid) == (user, pwd.getpwnam(user).pw_uid)
    await slurm_scheduler.cancel(user, job_id)


async def test_cancelled_while_pending_as_sacct_reports_it(
    slurm_scheduler: SlurmScheduler, slurm_cluster: str, job_dir: Path
) -> None:
    """firecrest-v2-notes "More behaviours": nodes "None assigned", allocationNodes 0,
    the last stateReason kept (here a held job's JobHeldUser) — from the real sacct."""
    user = slurm_cluster
    job_id = await slurm_scheduler.submit(
        user, JobSubmission(working_directory=str(job_dir),
                            script="#!/bin/bash\n#SBATCH --hold\ntrue\n", name="f7t-held"),
    )
    held = await wait_job(slurm_scheduler, user, job_id,
                          lambda j: j["status"]["stateReason"] == "JobHeldUser")
    assert held["status"]["state"] == "PENDING" and held["nodes"] == ""
    await slurm_scheduler.cancel(user, job_id)
    job = await wait_job(slurm_scheduler, user, job_id,
                         lambda j: j["status"]["state"].startswith("CANCELLED"))
    assert_job_model(job)
    assert job["nodes"] == "None assigned" and job["allocationNodes"] == 0, job
    assert job["status"]["stateReason"] == "JobHeldUser", job
