"""Walltime texts and the listing parser (no hub, no double)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from firecrestspawner.batchpoll import parse_listing
from firecrestspawner.slurm import JobStatus
from firecrestspawner.walltime import (
    clock_text,
    duration_text,
    end_of,
    queued_note,
    running_note,
)


def record(job_id: str, state: str = "RUNNING", limit: object = 60,
           start: object = 1_800_000_000) -> dict[str, object]:
    return {"jobId": job_id, "name": "n", "status": {"state": state, "stateReason": "None"},
            "nodes": "nid1", "time": {"limit": limit, "start": start, "end": 0}}


def test_time_fields_of_a_firecrest_record() -> None:
    status = JobStatus.from_firecrest(record("1"))
    assert status.time_limit == 3600 and status.start_time == 1_800_000_000
    pending = JobStatus.from_firecrest(record("2", "PENDING", None, 0))
    assert pending.time_limit is None and pending.start_time is None
    odd = JobStatus.from_firecrest({"jobId": "3", "status": {"state": "RUNNING"},
                                    "time": {"limit": True, "start": "soon"}})
    assert odd.time_limit is None and odd.start_time is None


def test_walltime_texts() -> None:
    assert [duration_text(s) for s in (59, 60, 5400, 7200, 86400, 93600)] == [
        "0 min", "1 min", "1 h 30 min", "2 h", "1 d", "1 d 2 h"]
    running = JobStatus.from_firecrest(record("1", limit=90))
    assert end_of(running) == 1_800_000_000 + 5400
    assert running_note(running) == (f" · time limit 1 h 30 min, ends "
                                      f"{clock_text(1_800_000_000 + 5400)}")
    soon = int(time.time()) + 600
    queued = JobStatus.from_firecrest(record("2", "PENDING", 30, soon))
    assert end_of(queued) == 0, "a pending job's start is only an estimate"
    assert queued_note(queued) == (f" · time limit 30 min · Slurm's estimated start "
                                   f"{clock_text(soon)}")
    no_estimate = JobStatus.from_firecrest(record("3", "PENDING", 30, 0))
    assert queued_note(no_estimate) == " · time limit 30 min"
    assert queued_note(JobStatus.from_firecrest(record("4", "PENDING", None, 0))) == ""


async def test_listing_parsed_record_by_record_while_the_loop_runs() -> None:
    body = json.dumps({"jobs": [record(str(i)) for i in range(3000)] + [{"bad": 1}]}).encode()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    jobs = await parse_listing(body, slice_s=0.0005)
    task.cancel()
    assert len(jobs) == 3000 and jobs["2999"].state == "RUNNING"
    assert ticks > 5, "the parser yielded to the loop"
    assert await parse_listing(b'{"jobs": null}') == {}
    assert list(await parse_listing(b'{"other": 1, "jobs": [' +
                                    json.dumps(record("7")).encode() + b"]}")) == ["7"]
    for broken in (b'{"jobs": [', b'{"jobs": 5}', b"[]"):
        with pytest.raises(ValueError):
            await parse_listing(broken)
