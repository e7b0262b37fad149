"""``execute=True``: the batch script really runs as a local process."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import pytest

from firecrest_double import FirecrestDouble, SimulatedScheduler

from .conftest import bearer

JOBS = "/compute/cluster/jobs"

ENV_DUMP = """#!/bin/bash
python3 - <<'PY'
import json, os
json.dump({"env": dict(os.environ), "cwd": os.getcwd()}, open("env.json", "w"))
PY
echo done
"""


async def wait_until(pred, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await pred()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def state(fc: FirecrestDouble, http: aiohttp.ClientSession, jid: str) -> dict:
    async with http.get(f"{fc.url}{JOBS}/{jid}", headers=bearer(fc)) as r:
        return (await r.json())["jobs"][0]


@pytest.fixture
async def xfc(tmp_path: Path):  # type: ignore[no-untyped-def]
    sched = SimulatedScheduler("cluster", queue_delay=0.05, execute=True,
                               login_env={"PATH": os.environ["PATH"], "LOGIN_ONLY": "yes"},
                               kill_grace=1.0)
    async with FirecrestDouble(sched) as double:
        yield double
        double.assert_no_violations()


async def submit(fc: FirecrestDouble, http: aiohttp.ClientSession, wd: Path, script: str,
                 env: dict | None = None) -> str:
    job = {"workingDirectory": str(wd), "script": script, "name": "lab"}
    if env is not None:
        job["env"] = env
    async with http.post(fc.url + JOBS, json={"job": job}, headers=bearer(fc)) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["jobId"]


async def test_script_runs_with_mangled_env_slurm_vars_and_cwd(
        xfc: FirecrestDouble, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    env = {"PLAIN": "a b;c $HOME", "COMMA": "x,y", "SCOPES": '["a:b","c"]', "Q": "it's",
           "LOST": "never"}
    jid = await submit(xfc, http, tmp_path, ENV_DUMP, env)

    async def done() -> dict | None:
        job = await state(xfc, http, jid)
        return job if job["status"]["state"] == "COMPLETED" else None

    job = await wait_until(done)
    assert job["status"]["exitCode"] == 0
    dumped = json.loads((tmp_path / "env.json").read_text())
    seen = dumped["env"]
    assert dumped["cwd"] == str(tmp_path)
    assert seen["PLAIN"] == "a b;c $HOME" and seen["COMMA"] == "x" and seen["SCOPES"] == '["a:b"'
    assert "LOST" not in seen and seen.get("Q") != "it's"
    assert seen["LOGIN_ONLY"] == "yes"
    assert seen["SLURM_JOB_ID"] == jid and seen["SLURM_JOB_NAME"] == "lab"
    assert seen["SLURM_SUBMIT_DIR"] == str(tmp_path)
    assert (tmp_path / f"slurm-{jid}.out").read_text().strip() == "done"


async def test_default_env_when_none_sent(
        xfc: FirecrestDouble, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    jid = await submit(xfc, http, tmp_path, ENV_DUMP)
    await wait_until(lambda: _finished(xfc, http, jid))
    seen = json.loads((tmp_path / "env.json").read_text())["env"]
    assert seen["F7T_version"] == "v2.0.0"


async def _finished(fc: FirecrestDouble, http: aiohttp.ClientSession, jid: str) -> bool:
    return not (await state(fc, http, jid))["status"]["state"] in ("PENDING", "RUNNING",
                                                                    "COMPLETING")


async def test_nonzero_exit_is_failed(
        xfc: FirecrestDouble, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    jid = await submit(xfc, http, tmp_path, "#!/bin/bash\nexit 7\n")
    await wait_until(lambda: _finished(xfc, http, jid))
    job = await state(xfc, http, jid)
    assert job["status"]["state"] == "FAILED" and job["status"]["exitCode"] == 7


async def test_missing_working_directory_fails(
        xfc: FirecrestDouble, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    jid = await submit(xfc, http, tmp_path / "nope", "#!/bin/bash\ntrue\n")
    await wait_until(lambda: _finished(xfc, http, jid))
    assert (await state(xfc, http, jid))["status"]["state"] == "FAILED"


async def test_cancel_kills_the_process_group(
        xfc: FirecrestDouble, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    script = "#!/bin/bash\nsleep 300 &\necho $! > child.pid\necho $$ > main.pid\nwait\n"
    jid = await submit(xfc, http, tmp_path, script)

    async def pids() -> list[int] | None:
        files = [tmp_path / "child.pid", tmp_path / "main.pid"]
        if all(f.exists() and f.read_text().strip() for f in files):
            return [int(f.read_text()) for f in files]
        return None

    child, main = await wait_until(pids)
    assert _alive(child) and _alive(main)
    async with http.delete(f"{xfc.url}{JOBS}/{jid}", headers=bearer(xfc)) as r:
        assert r.status == 204
    assert (await state(xfc, http, jid))["status"]["state"].startswith("CANCELLED by ")

    async def gone() -> bool:
        return not _alive(child) and not _alive(main)

    await wait_until(gone, 10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists": look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_unlaunchable_script_fails(
        xfc: FirecrestDouble, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    jid = await submit(xfc, http, tmp_path, "#!/nonexistent/interpreter\ntrue\n")
    await wait_until(lambda: _finished(xfc, http, jid))
    job = await state(xfc, http, jid)
    assert job["status"]["state"] == "FAILED" and job["status"]["exitCode"] == 1


def test_execute_from_the_thread_runner(tmp_path: Path) -> None:
    import requests

    sched = SimulatedScheduler("cluster", queue_delay=0.05, execute=True)
    fc = FirecrestDouble(sched).start_in_thread()
    try:
        h = {"Authorization": f"Bearer {fc.idp.mint('alice')}"}
        body = {"job": {"workingDirectory": str(tmp_path),
                        "script": "#!/bin/bash\necho \"$SLURM_JOB_ID\" > id.txt\n"}}
        jid = requests.post(fc.url + JOBS, json=body, headers=h, timeout=10).json()["jobId"]
        deadline = time.monotonic() + 15
        state = ""
        while time.monotonic() < deadline:
            job = requests.get(f"{fc.url}{JOBS}/{jid}", headers=h, timeout=10).json()["jobs"][0]
            state = job["status"]["state"]
            if state == "COMPLETED":
                break
            time.sleep(0.05)
        assert state == "COMPLETED"
        assert (tmp_path / "id.txt").read_text().strip() == jid
        fc.assert_no_violations()
    finally:
        fc.stop_thread()
