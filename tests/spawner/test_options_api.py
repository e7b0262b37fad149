"""Option refusals as a user of the REST API sees them: bounded, allowed values named,
look-alikes pointed out, out of range called so, no venv without allowed_venvs."""

from __future__ import annotations

from typing import Any

import pytest

from firecrest_double import FirecrestDouble

from .conftest import login, start_server
from .fakecompute import FakeCompute

SUBMIT = "POST /compute/{system_name}/jobs"


@pytest.mark.parametrize(("options", "expected"), [
    ({"partition": "x" * 10_000}, ["partition:", "(10000 characters)", "1 to 64 ASCII"]),
    ({"nodes": "1000000000"}, ["nodes:", "out of range", "1..2"]),
    ({"nodes": "-1"}, ["nodes:", "out of range", "1..2"]),
    ({"nodes": "\uff12"}, ["nodes:", "FULLWIDTH DIGIT TWO", "looks like '2'"]),
    ({"account": "pr\u043ej"}, ["account:", "CYRILLIC SMALL LETTER O", "looks like 'o'"]),
    ({"venv": "/opt/jupyter/venv"}, ["venv:", "allowed_venvs is empty"]),
])
async def test_refusals_through_the_rest_api(
        make_hub: Any, double: FirecrestDouble, compute: FakeCompute,
        options: dict[str, Any], expected: list[str]) -> None:
    app = await make_hub(hub={"tornado_settings": {"slow_spawn_timeout": 10}})
    _, client, _ = await login(app, double)

    events = await start_server(client, options=options)

    assert events[-1].get("failed"), events
    message = events[-1]["message"]
    for part in expected:
        assert part in message, message
    assert len(message) < 1000 and "x" * 100 not in message
    assert double.count(SUBMIT) == 0
