"""``SimulatedScheduler``: a deterministic in-process Slurm stand-in.

Each submitted job runs a small state machine on the double's event loop::

    PENDING (stateReason "None", then "Priority"/…) --queue delay--> RUNNING
    RUNNING --outcome--> [COMPLETING -->] COMPLETED | FAILED | TIMEOUT | NODE_FAIL
    any live state --cancel--> "CANCELLED by <uid>"

The queue delay is a number of seconds or a callable ``(submission, index) -> float``
(``index`` counts submissions from 0), so runs are reproducible. What happens once a
job runs is an :class:`Outcome`: the default one, or the next one queued with
:meth:`SimulatedScheduler.script`.

As the real FirecREST in front of Slurm with accounting (``firecrest-v2-notes.md``,
"More behaviours"), job answers are sacct merged with squeue:

* RUNNING shows ``running_lag`` seconds (default 0.3) **after** the job really started
  (its script runs, its launcher may already call back) — until then the job is still
  reported PENDING, without nodes;
* with :attr:`SimulatedScheduler.accounting` ``"none"`` every job query and ``userinfo``
  answer 500 ``Only 'accounting_storage/slurmdbd' is supported``; with ``"down"``
  (slurmdbd stopped) every job query answers 500 ``Problem talking to the database``;
  submit and cancel still work;
* RUNNING records carry ``exitCode 0`` and ``interruptSignal 0``; ``time.limit`` is null
  without a time limit; ``killRequestUser`` is always null; a job cancelled while
  pending has ``nodes: "None assigned"``, ``allocationNodes`` 0 and keeps its last
  ``stateReason``; cancelling a finished or unknown job is a 500 with scancel's words;
* while pending, ``time.start`` is 0, or with ``estimate_start=True`` Slurm's estimate
  of the start (squeue's StartTime once the backfill scheduler computed one): here the
  moment the queue delay ends.

With ``execute=True`` the batch script really runs when the job becomes RUNNING: as
a local subprocess (its own session) with the environment ``sbatch --export='ALL,…'``
would give it (see :func:`~firecrest_double.scheduler.apply_export`) plus the usual
``SLURM_*`` variables, ``cwd`` = the working directory, stdout/stderr written to the
job's ``standardOutput``/``standardError`` files. The job then ends when the process
does (exit 0 → COMPLETED, else FAILED with its exit code) and a cancel kills the
process group (SIGTERM, then SIGKILL after ``kill_grace``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scheduler import (
    AccountingError,
    JobNotFound,
    JobSubmission,
    SchedulerError,
    UserInfo,
    apply_export,
    parse_memory_mb,
    parse_time_limit,
    sbatch_directives,
)

QueueDelay = float | Callable[[JobSubmission, int], float]
#: Accounting states: slurmdbd up, not configured at all, or configured but stopped.
ACCOUNTING_STATES = ("up", "none", "down")
#: What FirecREST reports as ``nodes`` of a job cancelled before it got any.
NONE_ASSIGNED = "None assigned"
TERMINAL_PREFIXES = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY")


@dataclass(frozen=True)
class Outcome:
    """What a job does once RUNNING.

    ``kind``: ``run`` (until its script ends — with ``execute`` — or it is cancelled
    or hits its time limit), ``complete``, ``fail``, ``timeout``, ``node_fail``,
    ``out_of_memory``, ``cancel`` (cancelled by ``cancel_uid``, e.g. an admin) or
    ``never_start`` (stays PENDING with ``pending_reason``). ``after`` is seconds of
    RUNNING before the outcome happens. ``queue_delay`` overrides the scheduler's.
    """

    kind: str = "run"
    after: float = 0.0
    exit_code: int = 0
    queue_delay: float | None = None
    pending_reason: str = "Priority"
    cancel_uid: int = 0

    @classmethod
    def run(cls, **kw: Any) -> Outcome:
        """Run until the script ends, a cancel, or the time limit."""
        return cls("run", **kw)

    @classmethod
    def complete(cls, after: float = 0.0, **kw: Any) -> Outcome:
        """End COMPLETED (exit 0) after ``after`` seconds."""
        return cls("complete", after, **kw)

    @classmethod
    def fail(cls, exit_code: int = 1, after: float = 0.0, **kw: Any) -> Outcome:
        """End FAILED with ``exit_code`` after ``after`` seconds."""
        return cls("fail", after, exit_code, **kw)

    @classmethod
    def timeout(cls, after: float = 0.0, **kw: Any) -> Outcome:
        """End TIMEOUT after ``after`` seconds."""
        return cls("timeout", after, **kw)

    @classmethod
    def node_fail(cls, after: float = 0.0, **kw: Any) -> Outcome:
        """End NODE_FAIL after ``after`` seconds."""
        return cls("node_fail", after, **kw)

    @classmethod
    def cancelled(cls, after: float = 0.0, uid: int = 0, **kw: Any) -> Outcome:
        """Cancelled by ``uid`` (default root) after ``after`` seconds of running."""
        return cls("cancel", after, cancel_uid=uid, **kw)

    @classmethod
    def never_start(cls, reason: str = "Resources") -> Outcome:
        """Stay PENDING forever with ``reason``."""
        return cls("never_start", pending_reason=reason)


@dataclass
class SimJob:
    """The scheduler's record of one job."""

    job_id: str
    index: int
    user: UserInfo
    submission: JobSubmission
    script: str
    name: str
    partition: str
    account: str
    working_directory: str
    outcome: Outcome
    queue_delay: float
    time_limit: int | None
    stdin: str
    stdout: str
    stderr: str
    env: dict[str, str]
    submit_time: float = field(default_factory=time.time)
    state: str = "PENDING"
    reason: str = "None"
    exit_code: int | None = None
    interrupt_signal: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    #: Slurm's estimated start while pending (reported as ``time.start``), or None.
    estimated_start: float | None = None
    node: str = ""
    #: Who cancelled (kept for tests; FirecREST's ``killRequestUser`` is always null).
    kill_user: str | None = None
    #: ``time.monotonic()`` from which sacct knows the job is RUNNING (None: not running).
    running_visible_at: float | None = None
    #: The last reason shown while pending (what sacct keeps after a pending cancel).
    pending_reason: str = "None"
    priority: int = 0
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    history: list[tuple[float, str]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True in a terminal state."""
        return self.state.startswith(TERMINAL_PREFIXES)

    def _status(self) -> dict[str, Any]:
        return {"state": self.state, "stateReason": self.reason,
                "exitCode": self.exit_code, "interruptSignal": self.interrupt_signal}

    def _time(self) -> dict[str, Any]:
        now = time.time()
        start = int(self.start_time) if self.start_time else 0
        if not start and self.estimated_start and self.state == "PENDING":
            start = int(self.estimated_start)
        end = int(self.end_time) if self.end_time else 0
        elapsed = int((self.end_time or now) - self.start_time) if self.start_time else 0
        limit = self.time_limit // 60 if self.time_limit else None
        return {"elapsed": elapsed, "start": start, "end": end, "suspended": 0, "limit": limit}

    def lagging(self, now: float | None = None) -> bool:
        """True while the job runs but sacct does not know it yet (reported PENDING)."""
        return (self.state == "RUNNING" and self.running_visible_at is not None
                and (time.monotonic() if now is None else now) < self.running_visible_at)

    def as_job_model(self, cluster: str) -> dict[str, Any]:
        """The ``JobModel`` FirecREST returns for this job (as sacct+squeue show it)."""
        if self.lagging():
            status = {"state": "PENDING", "stateReason": self.pending_reason,
                      "exitCode": None, "interruptSignal": None}
            times = {"elapsed": 0, "start": 0, "end": 0, "suspended": 0,
                     "limit": self._time()["limit"]}
            tasks: list[dict[str, Any]] = []
            nodes, allocated = "", 0
        else:
            status, times = self._status(), self._time()
            tasks = []
            if self.state != "PENDING":
                tasks.append({"id": f"{self.job_id}.batch", "name": "batch",
                              "status": status, "time": times})
            nodes = self.node
            allocated = 1 if self.node and self.node != NONE_ASSIGNED else 0
        return {
            "jobId": self.job_id, "name": self.name, "status": status, "tasks": tasks,
            "time": times, "account": self.account, "allocationNodes": allocated,
            "cluster": cluster, "group": self.user.group, "nodes": nodes,
            "partition": self.partition, "killRequestUser": None,
            "user": self.user.name, "workingDirectory": self.working_directory,
            "priority": self.priority,
        }

    def as_metadata(self) -> dict[str, Any]:
        """The ``JobMetadataModel`` for this job (``%j`` expanded)."""
        return {"jobId": self.job_id, "script": self.script, "standardInput": self.stdin,
                "standardOutput": self.stdout, "standardError": self.stderr}


class SimulatedScheduler:
    """In-process Slurm stand-in implementing the :class:`Scheduler` protocol."""

    def __init__(
        self,
        system_name: str = "cluster",
        *,
        queue_delay: QueueDelay = 0.5,
        default_outcome: Outcome | None = None,
        partitions: Sequence[str] = ("normal", "debug"),
        reservations: Sequence[str] = (),
        accounts: Sequence[str] = ("f7t4jhub",),
        users: Mapping[str, UserInfo] | None = None,
        reason_after: float = 0.3,
        completing_s: float = 0.05,
        node_memory_mb: int = 256_000,
        nodes: Sequence[str] | None = None,
        execute: bool = False,
        login_env: Mapping[str, str] | None = None,
        kill_grace: float = 2.0,
        first_job_id: int = 1,
        spool_dir: str | None = None,
        running_lag: float | Callable[[SimJob], float] = 0.3,
        accounting: str = "up",
        estimate_start: bool = False,
    ) -> None:
        self.system_name = system_name
        self.queue_delay = queue_delay
        self.default_outcome = default_outcome or Outcome.run()
        self.partitions = tuple(partitions)
        self.reservations = tuple(reservations)
        self.accounts = tuple(accounts)
        self.users: dict[str, UserInfo] = dict(users or {})
        self.reason_after = reason_after
        self.completing_s = completing_s
        self.node_memory_mb = node_memory_mb
        self.execute = execute
        self.nodes = tuple(nodes or ([socket.gethostname()] if execute else
                                     [f"nid{i:06d}" for i in range(1, 9)]))
        self.login_env = dict(os.environ if login_env is None else login_env)
        self.kill_grace = kill_grace
        #: Seconds between a job really RUNNING and FirecREST reporting it (sacct's lag),
        #: or a callable ``(job) -> seconds``. The notes measured 0.3-0.9 s.
        self.running_lag = running_lag
        #: Report Slurm's estimated start (``time.start``) of pending jobs.
        self.estimate_start = estimate_start
        self._accounting = "up"
        self.accounting = accounting
        self.jobs_by_id: dict[str, SimJob] = {}
        self._next_id = first_job_id
        self._scripted: deque[Outcome] = deque()
        self._spool_arg = spool_dir
        self._spool: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        #: Called as ``hook(job, new_state)`` on every state change, in the double's loop.
        self.on_state_change: list[Callable[[SimJob, str], None]] = []
        #: Slurm state of each partition (``UP``, ``DOWN``, ``DRAIN``, ``INACTIVE``), as
        #: GET /status/{system}/partitions reports it; unlisted partitions are ``UP``.
        self.partition_states: dict[str, str] = {}
        #: Nodes of each partition; unlisted partitions hold every node.
        self.partition_nodes: dict[str, list[str]] = {}
        #: Node states set by a test (``["DOWN"]``, ``["IDLE", "DRAIN"]``); other nodes
        #: are ``ALLOCATED`` while a job runs on them, else ``IDLE``.
        self.node_states: dict[str, list[str]] = {}

    # -- configuration ---------------------------------------------------------------
    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next submissions (first queued → next submitted)."""
        self._scripted.extend(outcomes)

    @property
    def accounting(self) -> str:
        """``"up"`` (slurmdbd answers), ``"none"`` (not configured) or ``"down"`` (stopped).

        Set it at any time: the next job query answers accordingly."""
        return self._accounting

    @accounting.setter
    def accounting(self, value: str) -> None:
        if value not in ACCOUNTING_STATES:
            raise ValueError(f"accounting must be one of {ACCOUNTING_STATES}, got {value!r}")
        self._accounting = value

    def _check_accounting(self, userinfo: bool = False) -> None:
        """Raise AccountingError as FirecREST's sacct-based queries do."""
        if self._accounting == "none":
            raise AccountingError(AccountingError.NOT_CONFIGURED)
        if self._accounting == "down" and not userinfo:
            raise AccountingError(AccountingError.DATABASE_DOWN)

    def userinfo(self, user: str) -> UserInfo:
        """Known users as configured; others get a stable uid from their name.

        Raises AccountingError (HTTP 500) when accounting is not configured."""
        self._check_accounting(userinfo=True)
        return self._user(user)

    def _user(self, user: str) -> UserInfo:
        info = self.users.get(user)
        if info is None:
            uid = 20000 + zlib.crc32(user.encode()) % 10000
            info = UserInfo(user, uid, user, uid, self.accounts,
                            self.accounts[0] if self.accounts else None)
            self.users[user] = info
        return info

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Create the spool directory for executed scripts."""
        if self._spool_arg:
            self._spool = Path(self._spool_arg)
            self._spool.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="f7t-double-spool-")
            self._spool = Path(self._tmp.name)

    async def stop(self) -> None:
        """Stop every job's state machine and kill every job process."""
        for job in self.jobs_by_id.values():
            if job.task and not job.task.done():
                job.task.cancel()
            await self._kill(job, grace=0.5)
        tasks = [j.task for j in self.jobs_by_id.values() if j.task]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- Scheduler protocol ------------------------------------------------------------
    async def submit(self, user: str, job: JobSubmission) -> str:
        """sbatch: validate like sbatch would, record the job, start its state machine."""
        info = self._user(user)
        script = job.script
        if script is None:
            path = Path(job.script_path or "")
            try:
                script = path.read_text()
            except OSError:
                raise SchedulerError(f"sbatch: error: Unable to open file {job.script_path}\n")
        if not script.startswith("#!"):
            raise SchedulerError(
                "sbatch: error: This does not look like a batch script.  The first\n"
                "sbatch: error: line must start with #! followed by the path to an interpreter.\n"
                "sbatch: error: For instance: #!/bin/sh\n")
        directives = sbatch_directives(script)
        partition = job.partition or directives.get("partition") or self.partitions[0]
        if partition not in self.partitions:
            raise SchedulerError(
                f"sbatch: error: invalid partition specified: {partition}\n"
                "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
        reservation = job.reservation or directives.get("reservation")
        if reservation and reservation not in self.reservations:
            raise SchedulerError(
                "sbatch: error: Batch job submission failed: Requested reservation is invalid\n")
        account = job.account or directives.get("account") or info.default_account or ""
        if account not in info.accounts:
            raise SchedulerError(
                "sbatch: error: Batch job submission failed: "
                "Invalid account or account/partition combination specified\n")
        if "mem" in directives:
            try:
                mem = parse_memory_mb(directives["mem"])
            except ValueError:
                raise SchedulerError(
                    f"sbatch: error: Invalid --mem specification: {directives['mem']}\n")
            if mem > self.node_memory_mb:
                raise SchedulerError(
                    "sbatch: error: Memory specification can not be satisfied\n"
                    "sbatch: error: Batch job submission failed: "
                    "Requested node configuration is not available\n")
        time_limit = None
        if "time" in directives:
            try:
                time_limit = parse_time_limit(directives["time"])
            except ValueError:
                raise SchedulerError("sbatch: error: Invalid time limit specification\n")
        job_id = str(self._next_id)
        self._next_id += 1
        index = len(self.jobs_by_id)
        outcome = self._scripted.popleft() if self._scripted else self.default_outcome
        if outcome.queue_delay is not None:
            delay = outcome.queue_delay
        elif callable(self.queue_delay):
            delay = float(self.queue_delay(job, index))
        else:
            delay = float(self.queue_delay)
        wd = job.working_directory
        name = job.name or directives.get("job-name") or "sbatch"

        def _path(value: str | None, default: str) -> str:
            p = (value or default).replace("%j", job_id).replace("%u", user).replace("%x", name)
            return p if p.startswith("/") or p == "/dev/null" else os.path.join(wd, p)

        stdout = _path(job.standard_output or directives.get("output"), "slurm-%j.out")
        stderr = _path(job.standard_error or directives.get("error"), stdout)
        stdin = _path(job.standard_input or directives.get("input"), "/dev/null")
        sim = SimJob(
            job_id=job_id, index=index, user=info, submission=job, script=script, name=name,
            partition=partition, account=account, working_directory=wd, outcome=outcome,
            queue_delay=delay, time_limit=time_limit, stdin=stdin, stdout=stdout,
            stderr=stderr, env=apply_export(job.env, self.login_env),
            priority=4_294_900_000 - index,
        )
        if self.estimate_start and outcome.kind != "never_start":
            sim.estimated_start = sim.submit_time + delay
        sim.history.append((time.monotonic(), "PENDING"))
        self.jobs_by_id[job_id] = sim
        sim.task = asyncio.get_running_loop().create_task(self._lifecycle(sim))
        return job_id

    async def jobs(self, user: str, job_id: str | None = None,
                   allusers: bool = False, account: str | None = None) -> list[dict[str, Any]]:
        """JobModel dicts of one job or of the user's (or everybody's) jobs."""
        self._check_accounting()
        if job_id is not None:
            job = self.jobs_by_id.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            return [job.as_job_model(self.system_name)]
        return [j.as_job_model(self.system_name) for j in self.jobs_by_id.values()
                if (allusers or j.user.name == user) and (account is None or j.account == account)]

    async def metadata(self, user: str, job_id: str) -> list[dict[str, Any]]:
        """JobMetadataModel of one job."""
        job = self.jobs_by_id.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return [job.as_metadata()]

    async def cancel(self, user: str, job_id: str) -> None:
        """scancel: unknown and finished jobs are errors (HTTP 500 upstream)."""
        job = self.jobs_by_id.get(job_id)
        if job is None:
            raise SchedulerError(
                f"scancel: error: Kill job error on job id {job_id}: Invalid job id specified\n")
        if job.finished:
            raise SchedulerError(
                f"scancel: error: Kill job error on job id {job_id}: "
                "Job/step already completing or completed\n")
        info = self._user(user)
        await self._finish_cancelled(job, info.uid, user)

    # -- optional status routes -------------------------------------------------------
    def nodes_of(self, partition: str) -> list[str]:
        """The nodes of ``partition``."""
        return list(self.partition_nodes.get(partition, self.nodes))

    def node_state(self, node: str) -> list[str]:
        """The node's states as FirecREST lists them (``NodeModel.state``)."""
        if node in self.node_states:
            return list(self.node_states[node])
        busy = any(j.node == node and j.state in ("RUNNING", "COMPLETING")
                   for j in self.jobs_by_id.values())
        return ["ALLOCATED"] if busy else ["IDLE"]

    async def partition_models(self) -> list[dict[str, Any]]:
        """``PartitionModel`` dicts (GET /status/{system}/partitions): as FirecREST maps
        ``scontrol show partitions``, ``partition`` holds the partition's State."""
        return [{"name": p, "partition": self.partition_states.get(p, "UP"),
                 "cpus": 128 * len(self.nodes_of(p)), "totalNodes": len(self.nodes_of(p))}
                for p in self.partitions]

    async def node_models(self) -> list[dict[str, Any]]:
        """``NodeModel`` dicts (GET /status/{system}/nodes)."""
        out = []
        for node in self.nodes:
            state = self.node_state(node)
            busy = "ALLOCATED" in state
            out.append({"name": node, "hostname": node, "address": node, "cpus": 128,
                        "allocCpus": 128 if busy else 0, "idleCpus": 0 if busy else 128,
                        "sockets": 2, "cores": 64, "threads": 1, "weight": 1,
                        "freeMemory": self.node_memory_mb, "features": None,
                        "partitions": [p for p in self.partitions if node in self.nodes_of(p)],
                        "state": state})
        return out

    async def reservation_models(self) -> list[dict[str, Any]]:
        """``ReservationModel`` dicts (GET /status/{system}/reservations)."""
        now = int(time.time())
        return [{"name": r, "nodeList": ",".join(self.nodes), "startTime": now - 3600,
                 "endTime": now + 86400, "state": "ACTIVE", "features": None}
                for r in self.reservations]

    # -- direct control (call in the double's loop) ----------------------------------
    async def end_job(self, job_id: str, state: str = "NODE_FAIL", exit_code: int = 0,
                      reason: str = "None") -> None:
        """End a live job now with ``state`` and ``reason`` (e.g. a node failure under a
        running lab)."""
        job = self.jobs_by_id[job_id]
        if job.finished:
            raise ValueError(f"job {job_id} already ended {job.state}")
        if job.task and not job.task.done() and job.task is not asyncio.current_task():
            job.task.cancel()
        await self._kill(job)
        self._terminal(job, state, exit_code, reason)

    async def requeue(self, job_id: str, *, state: str = "PENDING", reason: str = "BeginTime",
                      run_again_after: float | None = None) -> None:
        """Put a live job back in the queue, as Slurm does after a node failure or a
        preemption with requeueing allowed: its processes are killed, it shows ``state``
        (``PENDING`` or ``REQUEUED``) with ``reason`` and, with ``run_again_after``, runs
        again (on another node) that many seconds later."""
        job = self.jobs_by_id[job_id]
        if job.finished:
            raise ValueError(f"job {job_id} already ended {job.state}")
        if job.task and not job.task.done() and job.task is not asyncio.current_task():
            job.task.cancel()
        await self._kill(job)
        job.node, job.start_time, job.exit_code = "", None, None
        self._set(job, state, reason)
        if run_again_after is not None:
            job.queue_delay = run_again_after
            job.index += 1
            job.task = asyncio.get_running_loop().create_task(self._lifecycle(job))

    # -- internals -------------------------------------------------------------------
    def _set(self, job: SimJob, state: str, reason: str | None = None) -> None:
        job.state = state
        if reason is not None:
            job.reason = reason
        job.history.append((time.monotonic(), state))
        for hook in list(self.on_state_change):
            hook(job, state)

    def _terminal(self, job: SimJob, state: str, exit_code: int | None,
                  reason: str = "None", sig: int | None = None) -> None:
        job.exit_code = exit_code
        job.interrupt_signal = sig
        job.end_time = time.time()
        self._set(job, state, reason)

    async def _finish_cancelled(self, job: SimJob, uid: int, user: str | None) -> None:
        if job.task and not job.task.done() and job.task is not asyncio.current_task():
            job.task.cancel()
        job.kill_user = user
        was_running = job.start_time is not None
        if not was_running:
            job.node = NONE_ASSIGNED
        self._terminal(job, f"CANCELLED by {uid}", 0 if was_running else None,
                       reason="None" if was_running else job.reason,
                       sig=signal.SIGTERM if was_running else None)
        await self._kill(job)

    async def _lifecycle(self, job: SimJob) -> None:
        o = job.outcome
        if job.queue_delay > self.reason_after and job.reason == "None":
            await asyncio.sleep(self.reason_after)
            job.reason = job.pending_reason = o.pending_reason
            await asyncio.sleep(job.queue_delay - self.reason_after)
        else:
            await asyncio.sleep(job.queue_delay)
        if o.kind == "never_start":
            job.reason = job.pending_reason = o.pending_reason
            return
        job.node = self.nodes[job.index % len(self.nodes)]
        job.start_time = time.time()
        job.exit_code, job.interrupt_signal = 0, 0
        lag = self.running_lag(job) if callable(self.running_lag) else self.running_lag
        job.running_visible_at = time.monotonic() + max(0.0, float(lag))
        self._set(job, "RUNNING", "None")
        if self.execute:
            if not os.path.isdir(job.working_directory):
                self._terminal(job, "FAILED", 1, "NonZeroExitCode")
                return
            try:
                await self._launch(job)
            except OSError:  # unwritable output, missing interpreter...: FAILED, as in Slurm
                self._terminal(job, "FAILED", 1, "NonZeroExitCode")
                return
        deadline = o.after if o.kind != "run" else None
        if job.time_limit is not None and (deadline is None or job.time_limit < deadline):
            deadline, kind = float(job.time_limit), "timeout"
        else:
            kind = o.kind
        waiter = asyncio.ensure_future(job.process.wait()) if job.process else None
        try:
            if waiter is not None:
                done, _ = await asyncio.wait([waiter], timeout=deadline)
                if waiter in done:
                    rc = waiter.result()
                    _reap_group(job.process.pid)
                    await self._completing(job)
                    if rc == 0:
                        self._terminal(job, "COMPLETED", 0)
                    elif rc < 0:
                        self._terminal(job, "FAILED", 0, "NonZeroExitCode", sig=-rc)
                    else:
                        self._terminal(job, "FAILED", rc, "NonZeroExitCode")
                    return
            elif deadline is None:
                await asyncio.Event().wait()  # runs until cancelled
            else:
                await asyncio.sleep(deadline)
        finally:
            if waiter is not None and not waiter.done():
                waiter.cancel()
        await self._kill(job)
        if kind == "complete":
            await self._completing(job)
            self._terminal(job, "COMPLETED", 0)
        elif kind == "fail":
            await self._completing(job)
            self._terminal(job, "FAILED", o.exit_code, "NonZeroExitCode")
        elif kind == "timeout":
            self._terminal(job, "TIMEOUT", 0, "TimeLimit")
        elif kind == "node_fail":
            self._terminal(job, "NODE_FAIL", 0, "NodeDown")
        elif kind == "out_of_memory":
            self._terminal(job, "OUT_OF_MEMORY", 0, "OutOfMemory")
        elif kind == "cancel":
            await self._finish_cancelled(job, o.cancel_uid, "root" if o.cancel_uid == 0 else None)

    async def _completing(self, job: SimJob) -> None:
        if self.completing_s > 0:
            self._set(job, "COMPLETING")
            await asyncio.sleep(self.completing_s)

    async def _launch(self, job: SimJob) -> None:
        assert self._spool is not None, "SimulatedScheduler.start() was not called"
        path = self._spool / f"job{job.job_id}.sh"
        path.write_text(job.script)
        path.chmod(0o700)
        env = dict(job.env)
        env.update({
            "SLURM_JOB_ID": job.job_id, "SLURM_JOBID": job.job_id,
            "SLURM_JOB_NAME": job.name, "SLURM_SUBMIT_DIR": job.working_directory,
            "SLURM_JOB_NODELIST": job.node, "SLURM_NODELIST": job.node,
            "SLURMD_NODENAME": job.node, "SLURM_JOB_USER": job.user.name,
            "SLURM_JOB_UID": str(job.user.uid), "SLURM_JOB_ACCOUNT": job.account,
            "SLURM_JOB_PARTITION": job.partition, "SLURM_CLUSTER_NAME": self.system_name,
            "SLURM_NNODES": "1", "SLURM_JOB_NUM_NODES": "1",
        })
        # Local files, opened as slurmstepd opens them: quick, so opened inline.
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(job.stdout, "ab"))  # noqa: ASYNC230
            err = out if job.stderr == job.stdout else files.enter_context(
                open(job.stderr, "ab"))  # noqa: ASYNC230
            inp = files.enter_context(open(job.stdin, "rb"))  # noqa: ASYNC230
            job.process = await asyncio.create_subprocess_exec(
                str(path), cwd=job.working_directory, env=env, stdin=inp, stdout=out,
                stderr=err, start_new_session=True)

    async def _kill(self, job: SimJob, grace: float | None = None) -> None:
        proc = job.process
        if proc is None or proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, self.kill_grace if grace is None else grace),
                          (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                # the group is gone: reap the script so its exit status is known
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 5.0)
                return
            try:
                await asyncio.wait_for(proc.wait(), wait)
                return
            except asyncio.TimeoutError:
                continue


def _reap_group(pgid: int) -> None:
    """Kill what a finished batch script left behind in its session, as Slurm does."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
