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


async def test_tiny_polling_benchmark_counts_both_modes() -> None:
    from benchmarks import polling

    args = polling.parse_args(["--sizes", "3", "--poll-interval", "1", "--intervals", "1"])
    figures = await polling.run(args)
    per_server, batched = figures["rows"]
    assert (per_server["mode"], batched["mode"]) == ("per-server", "batched")
    # every server asked once per poll for its own job; batched: listings only
    assert per_server["per_job_requests"] == 3 and per_server["listing_requests"] == 0
    assert batched["per_job_requests"] == 0 and 1 <= batched["listing_requests"] <= 2
    assert not per_server["gone"] and not batched["gone"]
    assert not per_server["violations"] and not batched["violations"]
    out = io.StringIO()
    polling.report(figures, out)
    assert "requests/interval" in out.getvalue() and "batched" in out.getvalue()
    assert out.getvalue().count("most hub-thread CPU in one 5 ms sample") == 2


async def test_loop_watch_names_the_callback_behind_a_stall() -> None:
    import asyncio
    import time

    from benchmarks.loopwatch import LoopWatch, render
    from benchmarks.spawn import LoopLag

    def hog() -> None:  # 60 ms of the hub thread's CPU in one callback
        start = time.thread_time()
        while time.thread_time() - start < 0.06:
            pass

    watch = LoopWatch()
    watch.install()
    try:
        lag = LoopLag(watch=watch)
        sampler = asyncio.get_running_loop().create_task(lag.run())
        await asyncio.sleep(0.05)
        mark = lag.mark()
        asyncio.get_running_loop().call_soon(hog)
        await asyncio.sleep(0.05)
        lag.running = False
        await sampler
    finally:
        watch.uninstall()
    worst = lag.worst(mark)
    assert worst["stall_ms"] >= 50
    assert "hog" in render(worst["what"]), worst
    busiest = lag.longest_cpu(mark)
    assert busiest["cpu_ms"] >= 60 and "hog" in render(busiest["what"]), busiest
