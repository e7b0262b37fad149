"""The callback check reuses the nodes the start flow saw; it asks FirecREST again only
when the reported host is not among them or none were seen (host bound to the job).

Through JupyterHub: REST API start, the simulated launcher's callback, the double's
job answers; ``callback_node_lookups`` counts the job queries the check made.
"""

from __future__ import annotations

from typing import Any

from firecrest_double import FirecrestDouble

from .conftest import login, start_server
from .fakecompute import FakeCompute
from .hubtools import wait_for


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
    assert (spawner.job_host, spawner.job_port) == ("127.0.0.1", compute.labs["1"].port)


async def test_callback_from_another_host_is_looked_up_again_and_refused(
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
    assert compute.labs["1"].callback_status == 403
    assert user.spawner.callback_node_lookups == 1, "a host not seen: FirecREST asked again"
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
    assert user.spawner.callback_node_lookups == 1
    assert user.spawner.job_host == "127.0.0.1"
