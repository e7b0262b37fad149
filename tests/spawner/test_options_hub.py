"""User options through the hub: the form, validation, and injection attempts."""

from __future__ import annotations

from typing import Any

import pytest

from firecrest_double import FirecrestDouble

from .conftest import login, start_server
from .fakecompute import FakeCompute

SUBMIT = "POST /compute/{system_name}/jobs"


@pytest.mark.parametrize("options, field", [
    ({"partition": "normal\n#SBATCH --account=someone-else"}, "partition"),
    ({"partition": "gpu"}, "partition"),
    ({"account": "x;reboot"}, "account"),
    ({"nodes": 3}, "nodes"),
    ({"time": "1-00:00:01"}, "time"),
    ({"gpus": "1$(id)"}, "gpus"),
    ({"reservation": "r' || true"}, "reservation"),
    ({"environment": "container", "container_image": "x"}, "environment"),
    ({"bogus": "1"}, "bogus"),
])
async def test_refused_options_name_the_field_and_submit_nothing(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        options: dict[str, Any], field: str) -> None:
    # the refusal is immediate: let the POST wait for it and carry the message
    app = await make_hub(hub={"tornado_settings": {"slow_spawn_timeout": 10}})
    _, client, _ = await login(app, double)

    events = await start_server(client, options=options)

    assert events[-1].get("failed"), events
    assert f"{field}:" in events[-1]["message"]
    assert double.count(SUBMIT) == 0


async def test_accepted_options_shape_the_script(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute) -> None:
    app = await make_hub(environments=["native", "uenv"],
                         allowed_uenvs={"prgenv-gnu/24.11:v1": ["default", "spack"]})
    user, client, _ = await login(app, double)

    events = await start_server(client, options={
        "partition": "debug", "nodes": 2, "time": "02:30:00", "gpus": 4,
        "environment": "uenv", "uenv_view": "spack"})

    assert events[-1].get("ready"), events
    script = double.scheduler.jobs_by_id[user.spawner.job_id].script
    for line in ("#SBATCH --partition=debug", "#SBATCH --nodes=2",
                 "#SBATCH --time=0-02:30:00", "#SBATCH --gpus-per-node=4",
                 "exec uenv run prgenv-gnu/24.11:v1 --view=spack -- firecrestspawner-singleuser"):
        assert line in script


async def test_options_form_posts_validated_options(
        make_hub: Any, double: FirecrestDouble) -> None:
    app = await make_hub()
    user, _, _ = await login(app, double)
    spawner = user.spawner

    form = await spawner.get_options_form()
    assert 'name="partition"' in form and '<option value="debug">' in form
    options = await spawner.run_options_from_form({"partition": ["debug"], "time": ["90"],
                                                   "_xsrf": ["x"]})
    assert options["partition"] == "debug" and options["time"] == "0-01:30:00"
    with pytest.raises(ValueError, match="partition"):
        await spawner.run_options_from_form({"partition": ["debug\n#SBATCH --x"]})
