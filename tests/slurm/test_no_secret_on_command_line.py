"""No secret on any command line or in any listing, against the real Slurm cluster.

The spawner renders a batch script whose body exports ``FIRECRESTSPAWNER_ENV`` (with the
server's API token) and submits it through its FirecREST gateway to the double, whose
Slurm backend runs the real ``sbatch`` with the script on stdin. While the job is
submitted and running, every process's argv (sampled from /proc), every command the
double ran, and ``scontrol show job`` / ``squeue`` output are free of the token and of
its encoded form; the job itself did receive the variable.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firecrest.v2 import AsyncFirecrest

from firecrest_double.pytest_plugin import MintingAuth
from firecrest_double.server import FirecrestDouble
from firecrest_double.slurm import SlurmScheduler
from firecrestspawner.compute.envcodec import ENV_VAR, encode_env
from firecrestspawner.gateway import JobGateway
from firecrestspawner.options import JobOptions
from firecrestspawner.script import ScriptContext, render
from firecrestspawner.slurm import Phase

SYSTEM = "cluster"
TEMPLATE = """#!/bin/bash
{{directives}}
# a stand-in for firecrestspawner-singleuser {{args}}: report whether the variable arrived
if [ -n "$FIRECRESTSPAWNER_ENV" ]; then echo env-present; fi
sleep 120
"""


class ArgvWatch:
    """Sample every process's argv from /proc in a thread until stopped."""

    def __init__(self, needles: list[str]) -> None:
        self.needles = [n.encode() for n in needles]
        self.hits: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read()
                except OSError:
                    continue
                if any(n in argv for n in self.needles):
                    self.hits.append(argv.replace(b"\0", b" ")[:200].decode(errors="replace"))
            self.samples += 1
            self._stop.wait(0.005)

    def __enter__(self) -> ArgvWatch:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def recorded_commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Every command line the double's Slurm backend runs."""
    commands: list[list[str]] = []
    original = SlurmScheduler._argv

    def recording(self: SlurmScheduler, cmd: Any, user: Any) -> Any:
        argv = original(self, cmd, user)
        commands.append([str(a) for a in argv])
        return argv

    monkeypatch.setattr(SlurmScheduler, "_argv", recording)
    yield commands


async def test_token_is_on_no_command_line_and_in_no_listing(
        slurm_cluster: str, job_dir: Path, recorded_commands: list[list[str]]) -> None:
    token = "f7tsecret" + secrets.token_hex(16)
    encoded = encode_env({"JUPYTERHUB_API_TOKEN": token, "JUPYTERHUB_USER": slurm_cluster})
    context = ScriptContext(job_name="jupyterhub-secret-check", output="secret-%j.log",
                            env={ENV_VAR: encoded})
    script = render(TEMPLATE, JobOptions(time_seconds=300), context)
    assert token not in script and encoded in script, "the secret travels in the body"

    async with FirecrestDouble(SlurmScheduler(SYSTEM)) as double:
        client = AsyncFirecrest(double.url, MintingAuth(double.idp, slurm_cluster))
        gateway = JobGateway(client, None, 60.0)
        with ArgvWatch([token, encoded]) as watch:
            job_id = await gateway.submit(SYSTEM, str(job_dir), script)
            listings = []
            try:
                for _ in range(300):
                    status = await gateway.status(SYSTEM, job_id)
                    if status.phase is Phase.RUNNING:
                        break
                    assert status.phase is not Phase.TERMINAL, status.describe()
                    await asyncio.sleep(0.2)
                else:
                    pytest.fail(f"job {job_id} did not run within 60 s")
                log = job_dir / f"secret-{job_id}.log"
                for _ in range(100):
                    if log.exists() and "env-present" in log.read_text():
                        break
                    await asyncio.sleep(0.1)
                for cmd in (["scontrol", "show", "job", job_id],
                            ["squeue", "-j", job_id, "-o", "%all"],
                            ["squeue", "--json"]):
                    proc = await asyncio.create_subprocess_exec(
                        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
                    out, _ = await asyncio.wait_for(proc.communicate(), 30)
                    listings.append(out.decode(errors="replace"))
            finally:
                ended, how = await gateway.cancel_and_confirm(SYSTEM, job_id, 60)
        double.assert_no_violations()

    assert ended, how
    assert "env-present" in log.read_text(), "the job got FIRECRESTSPAWNER_ENV"
    assert watch.samples > 10
    assert watch.hits == [], watch.hits
    assert any("sbatch" in " ".join(c) for c in recorded_commands)
    for cmd in recorded_commands:
        line = " ".join(cmd)
        assert token not in line and encoded not in line, line
    assert job_id in listings[0]
    for text in listings:
        assert token not in text and encoded not in text
