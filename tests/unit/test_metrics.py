"""firecrestspawner.metrics: FirecREST request paths become few route labels."""

from __future__ import annotations

import pytest

from firecrestspawner.metrics import route_template


@pytest.mark.parametrize(
    ("method", "path", "base", "route"),
    [
        ("POST", "/compute/daint/jobs", "", "POST /compute/{system}/jobs"),
        ("GET", "/compute/daint/jobs/12345", "", "GET /compute/{system}/jobs/{job_id}"),
        ("DELETE", "/compute/eiger/jobs/7", "", "DELETE /compute/{system}/jobs/{job_id}"),
        ("GET", "/compute/daint/jobs/7/metadata", "",
         "GET /compute/{system}/jobs/{job_id}/metadata"),
        ("GET", "/status/systems", "", "GET /status/systems"),
        ("GET", "/status/daint/partitions", "", "GET /status/{system}/partitions"),
        ("GET", "/filesystem/daint/ops/view", "", "GET /filesystem/{system}/ops/view"),
        ("GET", "/api/firecrest/v2/compute/daint/jobs", "/api/firecrest/v2",
         "GET /compute/{system}/jobs"),
        ("GET", "/firecrest/compute/daint/jobs/1", "", "GET /compute/{system}/jobs/{job_id}"),
        ("GET", "/something/else/42", "", "GET /something/..."),
        ("GET", "/", "", "GET /"),
    ],
)
def test_route_template(method: str, path: str, base: str, route: str) -> None:
    assert route_template(method, path, base) == route
