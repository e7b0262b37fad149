"""The spawn benchmark's harness works end to end at a tiny scale (no timing asserted)."""

from __future__ import annotations

import gc
import io

import pytest

pytest.importorskip("firecrestspawner.spawner", reason="needs the hub extra: pip install -e .[hub]")

from benchmarks.spawn import parse_args, report, run


async def test_tiny_benchmark_run_counts_requests() -> None:
    args = parse_args(["--n", "4", "--ramp", "0.1", "--queue-min", "0.1", "--queue-max", "0.4",
                       "--launch-delay", "0.1", "--start-poll-interval", "0.2",
                       "--poll-interval", "1", "--intervals", "2", "--no-gc-freeze"])
    try:
        figures = await run(args)
    finally:
        gc.unfreeze()
    assert figures["started"] == 4, figures["failed"]
    assert figures["spec_violations"] == []
    spawn = figures["spawn"]
    # each spawn submits once and checks the job at least once
    assert spawn["routes"]["POST /compute/{system_name}/jobs"] == 4
    assert spawn["requests_per_spawn"] >= 2
    running = figures["running"]
    assert running["servers"] == 4 and running["firecrest_requests"] > 0
    assert figures["stop"]["requests_per_stop"] >= 1
    assert figures["loop_samples"] > 10
    out = io.StringIO()
    report(figures, out)
    text = out.getvalue()
    assert "requests per running server per poll interval" in text
    assert "receive_callback" in text
