"""The live options form through JupyterHub: GET /hub/spawn shows what FirecREST reports
(partitions with their state and free nodes, reservations, the user's accounts), bounded
by the site's lists; FirecREST down gives the site's defaults and a note; choices the
cluster does not offer are refused by the form and by the REST API alike."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from firecrest_double import FirecrestDouble, SimulatedScheduler

from .conftest import USER, login, start_server
from .fakecompute import FakeCompute

SUBMIT = "POST /compute/{system_name}/jobs"
PARTITIONS = "GET /status/{system_name}/partitions"
NODES = "GET /status/{system_name}/nodes"
RESERVATIONS = "GET /status/{system_name}/reservations"
USERINFO = "GET /status/{system_name}/userinfo"


@pytest_asyncio.fixture
async def double() -> AsyncIterator[FirecrestDouble]:
    """A cluster of 4 nodes, 3 partitions (debug DOWN), 2 accounts, one reservation."""
    scheduler = SimulatedScheduler(
        "cluster", queue_delay=0.3, reason_after=0.1,
        nodes=["localhost", "nid002", "nid003", "nid004"],
        partitions=("normal", "debug", "gpu"), reservations=("course",),
        accounts=("proj1", "proj2"))
    scheduler.partition_states["debug"] = "DOWN"
    scheduler.partition_nodes["gpu"] = ["nid004"]
    scheduler.node_states["nid003"] = ["IDLE", "DRAIN"]
    scheduler.node_states["nid004"] = ["ALLOCATED"]
    async with FirecrestDouble(scheduler) as fc:
        yield fc
        fc.assert_no_violations()


async def spawn_page(app: Any, user: Any, form: dict[str, str] | None = None) -> tuple[int, str]:
    """GET (or POST ``form`` to) /hub/spawn as a browser does: logged in with a cookie
    (the mock authenticator takes the user name as password; its login drops the OAuth
    tokens of auth_state, which are put back), the form's _xsrf sent."""
    hub = app.hub.url.rstrip("/")
    auth_state = await user.get_auth_state()
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{hub}/login") as answer:
            assert answer.status == 200
        xsrf = next(c.value for c in jar if c.key == "_xsrf")
        async with session.post(f"{hub}/login?_xsrf={xsrf}",
                                data={"username": USER, "password": USER},
                                allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
        await user.save_auth_state(auth_state)
        async with session.get(f"{hub}/spawn") as answer:
            page = await answer.text()
            if form is None:
                return answer.status, page
        xsrf = next(c.value for c in jar if c.key == "_xsrf")  # renewed by the login
        async with session.post(f"{hub}/spawn", data={**form, "_xsrf": xsrf},
                                allow_redirects=False) as answer:
            return answer.status, await answer.text()


def options(page: str, field: str) -> dict[str, str]:
    """The <option>s of the form's ``field`` select: value -> shown text (+ ' [disabled]')."""
    select = re.search(rf'<select[^>]*name="{field}"[^>]*>(.*?)</select>', page, re.DOTALL)
    assert select, f"no {field} menu in the form"
    found = {}
    for attrs, text in re.findall(r"<option([^>]*)>(.*?)</option>", select.group(1)):
        value = html.unescape(re.search(r'value="([^"]*)"', attrs).group(1))  # type: ignore[union-attr]
        found[value] = html.unescape(text) + (" [disabled]" if "disabled" in attrs else "")
    return found


async def test_spawn_page_shows_live_partitions_with_state_and_free_nodes(
        make_hub: Any, double: FirecrestDouble) -> None:
    # the site allows normal and debug (not gpu); accounts and reservations: any listed
    app = await make_hub()
    user, _, _ = await login(app, double)

    status, page = await spawn_page(app, user)

    assert status == 200, page
    assert options(page, "partition") == {
        "normal": "normal (UP, 2 of 4 nodes free)",  # nid003 drained, nid004 allocated
        "debug": "debug (DOWN, 2 of 4 nodes free) [disabled]",
    }
    assert options(page, "account") == {"proj1": "proj1", "proj2": "proj2"}
    assert options(page, "reservation") == {"": "", "course": "course"}
    assert "fs-live-note" not in page
    # a second view within the TTL is answered from the cache (one request per route)
    await spawn_page(app, user)
    assert [double.count(r) for r in (PARTITIONS, NODES, RESERVATIONS, USERINFO)] == [1] * 4


async def test_firecrest_down_gives_site_defaults_and_a_note(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(allowed_accounts=["proj1"], default_account="proj1")
    user, client, _ = await login(app, double)
    for route in (PARTITIONS, NODES, RESERVATIONS, USERINFO):
        double.faults.add(route, count=5, status=503, message="maintenance")

    status, page = await spawn_page(app, user)

    assert status == 200, page
    note = re.search(r'<div[^>]*id="fs-live-note"[^>]*>(.*?)</div>', page, re.DOTALL)
    assert note, page
    assert "FirecREST could not tell what cluster offers right now" in note.group(1)
    assert "503" in note.group(1) and "site's defaults" in note.group(1)
    assert options(page, "partition") == {"normal": "normal", "debug": "debug"}
    assert options(page, "account") == {"proj1": "proj1"}
    # a start meanwhile is checked against the site's limits only (sbatch decides)
    events = await start_server(client, options={"partition": "normal"})
    assert events[-1].get("ready"), events


async def test_partition_not_offered_is_refused_with_a_sentence(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(hub={"tornado_settings": {"slow_spawn_timeout": 10}},
                         allowed_partitions=["normal", "debug", "gpu"])
    user, client, _ = await login(app, double)

    # REST API: a partition that is DOWN
    events = await start_server(client, options={"partition": "debug"})
    assert events[-1].get("failed"), events
    assert ("partition: 'debug' is DOWN on cluster right now (as FirecREST reports it), so "
            "no job can start there; choose one of 'normal' (UP, 2 of 4 nodes free), "
            "'gpu' (UP, 0 of 1 nodes free)") in events[-1]["message"]
    # the form: an account that is not the user's
    status, page = await spawn_page(app, user, {"partition": "normal", "account": "proj9"})
    assert status == 200 and "Error: account: 'proj9' is not one of your accounts on " \
        "cluster; choose one of 'proj1', 'proj2'" in html.unescape(page), page
    # a reservation FirecREST does not list
    events = await start_server(client, options={"partition": "normal", "reservation": "old"})
    assert "reservation: 'old' is not a current reservation on cluster" in events[-1]["message"]
    assert double.count(SUBMIT) == 0

    # what the cluster offers starts
    events = await start_server(client, options={"partition": "gpu", "account": "proj2"})
    assert events[-1].get("ready"), events
    job = next(iter(double.scheduler.jobs_by_id.values()))
    assert (job.partition, job.account) == ("gpu", "proj2")
