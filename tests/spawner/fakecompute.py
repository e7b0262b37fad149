"""The compute side of a job, simulated in the test: what the launcher does, minus JupyterLab.

When the double's :class:`~firecrest_double.SimulatedScheduler` moves a job to RUNNING,
:class:`FakeCompute` takes the environment the job *really* got (after FirecREST's
environment the script body exports), decodes ``FIRECRESTSPAWNER_ENV`` like the launcher,
serves a tiny HTTP "JupyterLab" on a free loopback port and posts the callback to the
hub with the job's API token, as docs/contracts.md section 2 says. When the job ends,
its server stops. Tests that need the real launcher and JupyterLab use the scheduler's
``execute=True`` instead (see test_launch.py).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from firecrest_double import SimJob, SimulatedScheduler
from firecrestspawner.compute.envcodec import ENV_VAR, decode_env


def script_env(script: str) -> dict[str, str]:
    """The ``export NAME=value`` lines of a batch script (what the shell would set)."""
    env = {}
    for line in script.splitlines():
        match = re.match(r"export ([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", line)
        if match:
            env[match[1]] = shlex.split(match[2])[0] if match[2] else ""
    return env


@dataclass
class Lab:
    """One fake JupyterLab of a job."""

    job_id: str
    env: dict[str, str]
    port: int = 0
    runner: web.AppRunner | None = None
    callback_status: int | None = None
    callback_body: str = ""
    hits: int = 0
    #: When (time.monotonic()) the hub answered the callback, and first requested the lab.
    callback_answered: float | None = None
    first_hit: float | None = None


@dataclass
class FakeCompute:
    """Answer RUNNING jobs of ``scheduler`` with a callback and a fake lab."""

    scheduler: SimulatedScheduler
    callback: bool = True
    #: The status the labs answer with (503: listening but never ready).
    lab_status: int = 200
    #: The host the launchers report (the labs listen on 127.0.0.1 regardless).
    host: str = "127.0.0.1"
    #: Seconds between RUNNING and the callback (JupyterLab starting up).
    callback_delay: float = 0.0
    labs: dict[str, Lab] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.scheduler.on_state_change.append(self._on_state)

    def _on_state(self, job: SimJob, state: str) -> None:
        if state == "RUNNING":
            task = asyncio.get_running_loop().create_task(self._run(job))
        elif not state.startswith(("PENDING", "RUNNING", "COMPLETING")):
            task = asyncio.get_running_loop().create_task(self._end(job.job_id))
        else:
            return
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, job: SimJob) -> None:
        env = decode_env(script_env(job.script)[ENV_VAR])
        lab = self.labs[job.job_id] = Lab(job.job_id, env)

        async def answer(request: web.Request) -> web.Response:
            lab.hits += 1
            if lab.first_hit is None:
                lab.first_hit = time.monotonic()
            return web.json_response({"fake": "jupyterlab", "path": request.path},
                                     status=self.lab_status)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        lab.runner = web.AppRunner(app, access_log=None)
        await lab.runner.setup()
        site = web.TCPSite(lab.runner, "127.0.0.1", 0)
        await site.start()
        lab.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if not self.callback:
            return
        if self.callback_delay:
            await asyncio.sleep(self.callback_delay)
        url = env["JUPYTERHUB_API_URL"].rstrip("/") + "/firecrestspawner/callback"
        headers = {"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, \
                s.post(url, json={"host": self.host, "port": lab.port}, headers=headers) as r:
            lab.callback_answered = time.monotonic()
            lab.callback_status = r.status
            lab.callback_body = await r.text()

    async def _end(self, job_id: str) -> None:
        lab = self.labs.get(job_id)
        if lab is not None and lab.runner is not None:
            await lab.runner.cleanup()
            lab.runner = None

    async def close(self) -> None:
        """Stop every fake lab and pending task."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for job_id in list(self.labs):
            await self._end(job_id)
        if self._on_state in self.scheduler.on_state_change:
            self.scheduler.on_state_change.remove(self._on_state)
