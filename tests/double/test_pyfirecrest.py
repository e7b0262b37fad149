"""The real pyfirecrest 3.10 client (firecrest.v2.AsyncFirecrest) against the double."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from firecrest.FirecrestException import UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest

from firecrest_double import FirecrestDouble
from firecrest_double.pytest_plugin import MintingAuth

SCRIPT = "#!/bin/bash\n#SBATCH --job-name=lab\nsleep 60\n"


@pytest_asyncio.fixture
async def client(fc: FirecrestDouble) -> AsyncIterator[AsyncFirecrest]:
    c = AsyncFirecrest(fc.url, authorization=MintingAuth(fc.idp, "alice"))
    yield c
    await c.close_session()


async def test_version_systems_userinfo(fc: FirecrestDouble, client: AsyncFirecrest) -> None:
    assert await client.server_version() == "2.5.6"
    assert [s["name"] for s in await client.systems()] == ["cluster"]
    info = await client.userinfo("cluster")
    assert info["user"]["name"] == "alice"
    assert str(client._api_version) == "2.5.6"


async def test_submit_info_metadata_cancel(fc: FirecrestDouble, client: AsyncFirecrest) -> None:
    job = await client.submit("cluster", working_dir="/home/alice", script_str=SCRIPT,
                              env_vars={"FIRECRESTSPAWNER_ENV": "eyJBIjoiYiJ9"},
                              account="f7t4jhub", partition="normal")
    jid = job["jobId"]
    assert isinstance(jid, str)
    info = await client.job_info("cluster", jid)
    assert info[0]["status"]["state"] == "PENDING" and info[0]["name"] == "lab"
    for _ in range(100):
        info = await client.job_info("cluster", jid)
        if info[0]["status"]["state"] == "RUNNING":
            break
        await asyncio.sleep(0.05)
    assert info[0]["status"]["state"] == "RUNNING"
    meta = await client.job_metadata("cluster", jid)
    assert meta[0]["script"] == SCRIPT
    assert await client.cancel_job("cluster", jid) == {}
    info = await client.job_info("cluster", jid)
    assert info[0]["status"]["state"].startswith("CANCELLED by ")
    assert [j["jobId"] for j in await client.job_info("cluster")] == [jid]
    sim_job = fc.scheduler.jobs_by_id[jid]  # type: ignore[attr-defined]
    assert sim_job.env["FIRECRESTSPAWNER_ENV"] == "eyJBIjoiYiJ9"
    assert fc.count(job_id=jid) >= 5


async def test_errors_surface_as_unexpected_status(
        fc: FirecrestDouble, client: AsyncFirecrest) -> None:
    with pytest.raises(UnexpectedStatusException) as e:
        await client.job_info("cluster", "99999")
    assert e.value.responses[-1].status_code == 404
    with pytest.raises(UnexpectedStatusException) as e:
        await client.cancel_job("cluster", "99999")
    assert e.value.responses[-1].status_code == 500
    with pytest.raises(UnexpectedStatusException) as e:
        await client.submit("cluster", working_dir="/w", script_str="no shebang")
    assert "sbatch: error" in e.value.responses[-1].json()["message"]


async def test_upload_and_view(fc: FirecrestDouble, client: AsyncFirecrest,
                               tmp_path: Path) -> None:
    root = fc.filesystems[0].path
    local = tmp_path / "job.sh"
    local.write_text("#!/bin/bash\necho hi\n")
    assert await client.upload("cluster", str(local), root, "job.sh") is None
    assert await client.view("cluster", f"{root}/job.sh") == "#!/bin/bash\necho hi\n"
    names = [f["name"] for f in await client.list_files("cluster", root)]
    assert names == ["job.sh"]
    with pytest.raises(UnexpectedStatusException) as e:
        await client.view("cluster", "/etc/passwd")
    assert e.value.responses[-1].status_code == 400


async def test_upload_over_max_ops_file_size_is_413(
        fc: FirecrestDouble, client: AsyncFirecrest, tmp_path: Path) -> None:
    fc.max_ops_file_size = 1000  # pyfirecrest uploads directly below 1 MiB
    local = tmp_path / "big.bin"
    local.write_bytes(b"x" * 5000)
    with pytest.raises(UnexpectedStatusException) as e:
        await client.upload("cluster", str(local), fc.filesystems[0].path, "big.bin")
    assert e.value.responses[-1].status_code == 413


async def test_async_auth_headers_are_used(fc: FirecrestDouble) -> None:
    class AsyncAuth:
        calls = 0

        async def auth_headers(self) -> dict[str, str]:
            AsyncAuth.calls += 1
            return {"Authorization": f"Bearer {fc.idp.mint('dave')}"}

    c = AsyncFirecrest(fc.url, authorization=AsyncAuth())
    try:
        assert (await c.userinfo("cluster"))["user"]["name"] == "dave"
    finally:
        await c.close_session()
    assert AsyncAuth.calls == 1


@pytest.mark.scheduler_kwargs(reservations=("course",))
async def test_partitions_reservations_and_reservation_check(
        fc: FirecrestDouble, client: AsyncFirecrest) -> None:
    assert [p["name"] for p in await client.partitions("cluster")] == ["normal", "debug"]
    assert [r["name"] for r in await client.reservations("cluster")] == ["course"]
    job = await client.submit("cluster", working_dir="/w", script_str=SCRIPT,
                              reservation="course")
    assert job["jobId"]
    with pytest.raises(UnexpectedStatusException) as e:
        await client.submit("cluster", working_dir="/w", script_str=SCRIPT,
                            reservation="nope")
    assert "Requested reservation is invalid" in e.value.responses[-1].json()["message"]


async def test_partition_states_and_nodes(fc: FirecrestDouble, client: AsyncFirecrest) -> None:
    sched = fc.scheduler
    sched.partition_states["debug"] = "DOWN"  # type: ignore[attr-defined]
    sched.node_states["nid000002"] = ["IDLE", "DRAIN"]  # type: ignore[attr-defined]
    states = {p["name"]: (p["partition"], p["totalNodes"])
              for p in await client.partitions("cluster")}
    assert states == {"normal": ("UP", 8), "debug": ("DOWN", 8)}
    job = await client.submit("cluster", working_dir="/w", script_str=SCRIPT)
    for _ in range(100):  # bounded: the job runs after the 0.2 s queue delay
        nodes = {n["name"]: n["state"] for n in await client.nodes("cluster")}
        if nodes["nid000001"] == ["ALLOCATED"]:
            break
        await asyncio.sleep(0.05)
    assert nodes["nid000001"] == ["ALLOCATED"], (job, nodes)
    assert nodes["nid000002"] == ["IDLE", "DRAIN"] and nodes["nid000003"] == ["IDLE"]


async def test_tail_by_bytes_and_lines(fc: FirecrestDouble, client: AsyncFirecrest) -> None:
    root = Path(fc.filesystems[0].path)
    (root / "out.log").write_text("".join(f"line {i}\n" for i in range(30)))
    last = await client.tail("cluster", str(root / "out.log"), num_lines=2)
    assert last["content"] == "line 28\nline 29\n" and last["contentType"] == "lines"
    assert last["endPosition"] == (root / "out.log").stat().st_size
    tail = await client.tail("cluster", str(root / "out.log"), num_bytes=8)
    assert tail["content"] == "\nline 29\n"[-8:] and tail["contentType"] == "bytes"
    assert (await client.tail("cluster", str(root / "out.log")))["content"].count("\n") == 10
    skipped = await client.tail("cluster", str(root / "out.log"), num_lines=28,
                                exclude_beginning=True)
    assert skipped["content"] == "line 28\nline 29\n"
    with pytest.raises(UnexpectedStatusException) as e:
        await client.tail("cluster", str(root / "missing.log"))
    assert "No such file or directory" in e.value.responses[-1].json()["message"]
