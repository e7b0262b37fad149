"""Walltime through JupyterHub: the progress events and the home page show the job's limit and end."""

from __future__ import annotations

from typing import Any

import aiohttp

from firecrest_double import FirecrestDouble
from firecrestspawner.walltime import TEMPLATES, clock_text, iso

from .conftest import login, start_server
from .fakecompute import FakeCompute


async def home_page(app: Any, name: str) -> str:
    """GET /hub/home as a browser does: log in through the form (cookies), then load it."""
    hub = app.hub.url.rstrip("/")  # the hub itself: the proxy is in memory
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(hub + "/login") as answer:
            assert answer.status == 200
        xsrf = next(c.value for c in jar if c.key == "_xsrf")
        async with session.post(hub + f"/login?_xsrf={xsrf}", allow_redirects=False,
                                data={"username": name, "password": name}) as answer:
            assert answer.status == 302, await answer.text()
        async with session.get(hub + "/home", allow_redirects=False) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.text()


async def test_progress_shows_time_limit_and_estimated_start(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    double.scheduler.estimate_start = True  # type: ignore[attr-defined]
    double.scheduler.queue_delay = 1.0  # type: ignore[attr-defined]
    app = await make_hub()
    user, client, _ = await login(app, double)

    events = await start_server(client, options={"time": "01:30:00"})

    assert events[-1].get("ready"), events
    job = double.scheduler.jobs_by_id[user.spawner.job_id]  # type: ignore[attr-defined]
    queued = [e["message"] for e in events if "queued" in e.get("message", "")]
    estimate = f"Slurm's estimated start {clock_text(int(job.estimated_start))}"
    assert any("time limit 1 h 30 min" in m and estimate in m for m in queued), queued
    running = [e["message"] for e in events if "running" in e.get("message", "")]
    end = clock_text(int(job.start_time) + 90 * 60)
    assert any(f"time limit 1 h 30 min, ends {end}" in m for m in running), running


async def test_home_page_shows_when_the_job_ends(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(hub={"template_paths": [TEMPLATES]}, poll_cache_seconds=0)
    user, client, _ = await login(app, double)
    assert (await start_server(client))[-1].get("ready")
    job = double.scheduler.jobs_by_id[user.spawner.job_id]  # type: ignore[attr-defined]
    end = int(job.start_time) + 3600  # the default time limit, 01:00:00

    page = await home_page(app, user.name)

    assert 'id="f7t-walltime"' in page
    assert f'<time datetime="{iso(end)}">ends {clock_text(end)} (time limit 1 h)</time>' in page
    assert user.spawner.get_state()["job_end"] == end, "kept across hub restarts"
