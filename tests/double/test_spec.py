"""The OpenAPI validation itself: malformed requests and responses are caught."""

from __future__ import annotations

import json

import aiohttp
import pytest

from firecrest_double import FirecrestDouble, load_spec

from .conftest import bearer

JOBS = "/compute/cluster/jobs"


def test_validator_rejects_malformed_submit_body() -> None:
    spec = load_spec()
    op, params = spec.match("POST", JOBS)
    errors, _, _ = spec.validate_request(
        op, params, {}, "application/json", b'{"job": {"script": 42}}')
    assert any("workingDirectory" in e and "required" in e for e in errors)
    assert any("42 is not of type 'string'" in e for e in errors)


def test_validator_accepts_pyfirecrest_snake_case_working_directory() -> None:
    spec = load_spec()
    op, params = spec.match("POST", JOBS)
    errors, _, body = spec.validate_request(
        op, params, {}, "application/json",
        b'{"job": {"working_directory": "/w", "script": "#!/bin/sh\\n"}}')
    assert errors == []
    assert body["job"]["workingDirectory"] == "/w"


def test_validator_rejects_bad_path_and_query_parameters() -> None:
    spec = load_spec()
    op, params = spec.match("GET", "/compute/cluster/jobs/12-3")
    errors, _, _ = spec.validate_request(op, params, {}, "", b"")
    assert errors and "does not match" in errors[0]
    op, params = spec.match("GET", JOBS)
    errors, coerced, _ = spec.validate_request(op, params, {"allusers": "perhaps"}, "", b"")
    assert errors and "allusers" in errors[0]
    errors, coerced, _ = spec.validate_request(op, params, {"allusers": "true"}, "", b"")
    assert errors == [] and coerced["allusers"] is True


def test_validator_rejects_malformed_responses() -> None:
    spec = load_spec()
    op, _ = spec.match("GET", "/compute/cluster/jobs/4")
    # job id as an integer (the real server sends strings) and missing required fields
    assert spec.validate_response(op, 200, "application/json", b'{"jobs": [{"jobId": 4}]}')
    # error bodies need a message
    assert spec.validate_response(op, 404, "application/json", b'{"errorType": "error"}')
    # an undocumented status
    assert spec.validate_response(op, 302, None, b"")
    # a 204 route must not carry a body
    op, _ = spec.match("DELETE", "/compute/cluster/jobs/4")
    assert spec.validate_response(op, 204, "application/json", b"{}")
    assert spec.validate_response(op, 204, None, b"") == []


@pytest.mark.allow_violations
async def test_malformed_request_gets_422_and_is_recorded(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    async with http.post(fc.url + JOBS, json={"job": {"script": "#!/bin/bash\n"}},
                         headers=bearer(fc)) as r:
        assert r.status == 422
        assert r.headers["f7t-appversion"] == "2.5.6"
        body = await r.json()
    assert body["errorType"] == "validation" and "workingDirectory" in body["message"]
    assert len(fc.violations) == 1
    v = fc.violations[0]
    assert v.kind == "request" and v.route == "POST /compute/{system_name}/jobs"
    with pytest.raises(AssertionError, match="workingDirectory"):
        fc.assert_no_violations()
    assert fc.scheduler.jobs_by_id == {}  # type: ignore[attr-defined]


@pytest.mark.allow_violations
async def test_malformed_response_is_recorded_and_replaced_by_500(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    async def broken(ctx: object) -> tuple[int, object]:
        return 200, {"systems": [{"name": "cluster"}]}  # no ssh/scheduler/probing

    fc._handlers["GET /status/systems"] = broken
    async with http.get(fc.url + "/status/systems", headers=bearer(fc)) as r:
        assert r.status == 500
        body = await r.json()
    assert "violates the OpenAPI document" in body["message"]
    assert [v.kind for v in fc.violations] == ["response"]
    assert "'ssh' is a required property" in str(fc.violations[0])


async def test_unknown_path_404_and_wrong_method_405(
        fc: FirecrestDouble, http: aiohttp.ClientSession) -> None:
    async with http.get(fc.url + "/compute/cluster/nothing-here") as r:
        assert r.status == 404 and r.headers["f7t-appversion"] == "2.5.6"
    async with http.put(fc.url + JOBS, headers=bearer(fc)) as r:
        assert r.status == 405


def test_long_listing_validated_by_shape_still_catches_one_bad_record() -> None:
    spec = load_spec()
    op, _ = spec.match("GET", JOBS)
    good = {"jobId": "1", "name": "n", "status": {"state": "RUNNING"}, "time": {},
            "allocationNodes": 1, "cluster": "c", "nodes": "nid1", "partition": "p",
            "user": "u", "workingDirectory": "/w"}
    jobs = [dict(good, jobId=str(i)) for i in range(3000)]
    assert spec.validate_response(op, 200, "application/json",
                                  json.dumps({"jobs": jobs}).encode()) == []
    jobs[2500] = dict(good, allocationNodes="1")  # one record with a wrong type
    errors = spec.validate_response(op, 200, "application/json",
                                    json.dumps({"jobs": jobs}).encode())
    assert errors and "allocationNodes" in errors[0] and "'1' is not of type" in errors[0]
    # a schema with value constraints is never cut short
    systems, _ = spec.match("GET", "/status/systems")
    schema = systems.spec["responses"]["200"]["content"]["application/json"]["schema"]
    assert not spec.shape_only(schema)
