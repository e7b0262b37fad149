"""The real-Slurm backend's status routes without a cluster: recorded Slurm 22.05 output of
``scontrol show partitions/reservations -o`` and ``sinfo --json`` turned into FirecREST's
PartitionModel, ReservationModel and NodeModel (checked against the OpenAPI document)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from firecrest_double.slurm import SlurmScheduler, scontrol_fields
from firecrest_double.spec import load_spec

PARTITIONS = (
    "PartitionName=debug AllowGroups=ALL Default=YES MaxTime=UNLIMITED Nodes=vm "
    "State=UP TotalCPUs=2 TotalNodes=1 TRES=cpu=2,mem=24105M,node=1,billing=2\n"
    "PartitionName=gpu AllowGroups=ALL Default=NO MaxTime=1-00:00:00 Nodes=gpu[01-04] "
    "State=DRAIN TotalCPUs=256 TotalNodes=4 JobDefaults=(null)\n")
RESERVATIONS = (
    "ReservationName=course StartTime=2026-11-30T09:00:00 EndTime=2026-12-01T09:00:00 "
    "Duration=1-00:00:00 Nodes=vm NodeCnt=1 CoreCnt=2 Features=(null) PartitionName=(null) "
    "Flags=SPEC_NODES TRES=cpu=2 Users=f7tuser Groups=(null) Accounts=(null) "
    "Licenses=(null) State=ACTIVE BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)\n")
SINFO = {"nodes": [
    {"name": "vm", "hostname": "vm", "address": "127.0.0.1", "state": "idle",
     "state_flags": [], "partitions": ["debug", "normal"], "cpus": 2, "alloc_cpus": 0,
     "idle_cpus": 2, "sockets": 1, "cores": 2, "threads": 1, "weight": 1,
     "free_memory": 13638, "alloc_memory": 0, "features": ""},
    {"name": "gpu01", "hostname": "gpu01", "address": "10.0.0.1", "state": "mixed",
     "state_flags": ["DRAIN", "NOT_RESPONDING"], "partitions": ["gpu"], "cpus": 64,
     "alloc_cpus": 8, "idle_cpus": 56, "sockets": 2, "cores": 32, "threads": 1, "weight": 1,
     "free_memory": 1000, "alloc_memory": 100, "features": "a100"},
]}


class Recorded(SlurmScheduler):
    """The backend answering from recorded command output."""

    async def _run(self, cmd: Sequence[str], user: str | None = None, stdin: str | None = None,
                   check: bool = True) -> tuple[int, str, str]:
        out = {("scontrol", "show", "partitions", "-o"): PARTITIONS,
               ("scontrol", "show", "reservations", "-o"): RESERVATIONS,
               ("sinfo", "--json"): json.dumps(SINFO)}[tuple(cmd)]
        return 0, out, ""


def _valid(schema: str, items: list[dict[str, Any]]) -> None:
    for item in items:
        errors = load_spec().schema_errors({"$ref": f"#/components/schemas/{schema}"}, item,
                                           schema)
        assert not errors, (schema, item, errors)


def test_scontrol_values_may_hold_spaces_and_equals_signs() -> None:
    line = "NodeName=vm OS=Linux 6.1 #1 SMP  RealMemory=1 TRES=cpu=2,mem=1M State=IDLE"
    assert scontrol_fields(line) == {"NodeName": "vm", "OS": "Linux 6.1 #1 SMP",
                                     "RealMemory": "1", "TRES": "cpu=2,mem=1M",
                                     "State": "IDLE"}


async def test_partitions_nodes_and_reservations_as_firecrest_reports_them() -> None:
    backend = Recorded()
    partitions = await backend.partition_models()
    assert partitions == [{"name": "debug", "partition": "UP", "cpus": 2, "totalNodes": 1},
                          {"name": "gpu", "partition": "DRAIN", "cpus": 256, "totalNodes": 4}]
    nodes = await backend.node_models()
    assert [(n["name"], n["state"], n["partitions"]) for n in nodes] == [
        ("vm", ["IDLE"], ["debug", "normal"]), ("gpu01", ["MIXED", "DRAIN"], ["gpu"])]
    reservations = await backend.reservation_models()
    assert [(r["name"], r["nodeList"], r["state"], r["features"]) for r in reservations] == [
        ("course", "vm", "ACTIVE", None)]
    assert reservations[0]["endTime"] - reservations[0]["startTime"] == 86400
    _valid("PartitionModel", partitions)
    _valid("NodeModel", nodes)
    _valid("ReservationModel", reservations)
