"""How the real-Slurm backend merges sacct with squeue, without a cluster: the Slurm
commands' answers are recorded Slurm 22.05 output fed to the backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from firecrest_double.scheduler import AccountingError, JobNotFound
from firecrest_double.slurm import SlurmScheduler
from firecrest_double.spec import load_spec

NOW = 1796045637
SQUEUE_RUNNING = {  # squeue --json: the job runs; sacct does not know it yet
    "job_id": 7, "name": "jupyterhub-f7tuser", "job_state": "RUNNING", "state_reason": "None",
    "exit_code": 0, "start_time": NOW, "end_time": NOW + 3600, "time_limit": 60,
    "account": "f7t4jhub", "node_count": 1, "cluster": "f7t", "group_name": "f7tuser",
    "nodes": "vm", "partition": "debug", "user_name": "f7tuser",
    "current_working_directory": "/home/f7tuser", "priority": 4294901750,
}
SACCT_DONE = {  # sacct --json: a job slurmctld has forgotten
    "job_id": 5, "name": "sbatch", "state": {"current": "COMPLETED", "reason": "None"},
    "exit_code": {"status": "SUCCESS", "return_code": 0},
    "time": {"elapsed": 1, "start": NOW, "end": NOW + 1, "suspended": 0, "limit": None,
             "submission": NOW - 1},
    "nodes": "vm", "account": "f7t4jhub", "partition": "debug", "user": "f7tuser",
    "group": "f7tuser", "cluster": "f7t", "working_directory": "/tmp", "allocation_nodes": 1,
    "priority": 4294901750,
}


class Recorded(SlurmScheduler):
    """The backend with recorded command output instead of the cluster."""

    def __init__(self, squeue: list[dict[str, Any]], sacct: tuple[int, str, str]) -> None:
        super().__init__()
        self.squeue_out = json.dumps({"jobs": squeue})
        self.sacct = sacct
        self.commands: list[list[str]] = []

    async def _run(self, cmd: Sequence[str], user: str | None = None, stdin: str | None = None,
                   check: bool = True) -> tuple[int, str, str]:
        self.commands.append(list(cmd))
        if cmd[0] == "squeue":
            return 0, self.squeue_out, ""
        return self.sacct


def _schema_ok(job: dict[str, Any]) -> None:
    assert load_spec().schema_errors({"$ref": "#/components/schemas/JobModel"}, job,
                                     "JobModel") == []


async def test_a_job_sacct_does_not_know_yet_is_pending() -> None:
    backend = Recorded([SQUEUE_RUNNING], (0, json.dumps({"jobs": []}), ""))
    [job] = await backend.jobs("f7tuser", "7")
    assert job["status"] == {"state": "PENDING", "stateReason": "None", "exitCode": None,
                             "interruptSignal": None}
    assert job["nodes"] == "" and job["tasks"] == [] and job["allocationNodes"] == 0
    _schema_ok(job)
    assert ["sacct", "--json", "-j", "7"] in backend.commands


async def test_a_job_only_sacct_knows_is_answered_from_sacct() -> None:
    backend = Recorded([], (0, json.dumps({"jobs": [SACCT_DONE]}), ""))
    [job] = await backend.jobs("f7tuser", "5")
    assert job["status"]["state"] == "COMPLETED" and job["status"]["exitCode"] == 0
    assert job["time"]["limit"] is None and job["killRequestUser"] is None
    _schema_ok(job)
    listed = await backend.jobs("f7tuser")
    assert [j["jobId"] for j in listed] == ["5"]
    assert ["sacct", "--json", "--user", "f7tuser"] in backend.commands
    # 22.05's sacct --json ignores --user: another user's records are filtered out
    assert await backend.jobs("root") == []
    assert [j["jobId"] for j in await backend.jobs("root", allusers=True)] == ["5"]


async def test_unknown_to_both_is_not_found() -> None:
    with pytest.raises(JobNotFound):
        await Recorded([], (0, json.dumps({"jobs": []}), "")).jobs("f7tuser", "9")


@pytest.mark.parametrize(("stderr", "message"), [
    ("sacct: error: Problem talking to the database: Connection refused",
     "Problem talking to the database"),
    ("sacct: error: Slurm accounting storage is disabled",
     "Only 'accounting_storage/slurmdbd' is supported"),
])
async def test_sacct_failing_is_an_accounting_error_never_not_found(
        stderr: str, message: str) -> None:
    backend = Recorded([SQUEUE_RUNNING], (1, "", stderr))
    for call in (backend.jobs("f7tuser", "7"), backend.jobs("f7tuser")):
        with pytest.raises(AccountingError, match=message):
            await call


async def test_a_command_finishes_when_its_request_goes_away(tmp_path: Path) -> None:
    """A client that times out cancels the HTTP handler; the Slurm command (an sbatch,
    say) still finishes, as on FirecREST, and is reaped, by stop() at the latest."""
    scheduler = SlurmScheduler("cluster", cancel_on_stop=False)
    done = tmp_path / "done"
    request = asyncio.ensure_future(
        scheduler._run(["sh", "-c", f"sleep 0.3; echo finished > {done}"]))
    await asyncio.sleep(0.1)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert scheduler._commands and not done.exists()

    await scheduler.stop()
    assert done.read_text() == "finished\n" and not scheduler._commands
