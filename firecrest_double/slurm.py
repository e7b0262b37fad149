"""A real-Slurm backend for the FirecREST double: jobs are submitted with ``sbatch``.

:class:`SlurmScheduler` implements :class:`firecrest_double.scheduler.Scheduler` by
running the Slurm client commands of the local cluster (``scripts/slurm-up.sh``) as
the token's user, the way FirecREST runs them over ssh:

* submit: ``sbatch --parsable --chdir=<dir> [--job-name ...] --export=ALL,K=v,...``
  with the script on stdin, in the user's login environment (``runuser -l <user>``
  when the double runs as root; directly when it already runs as that user). The
  ``env`` values are joined exactly as FirecREST joins them, so real ``sbatch`` cuts
  values at commas; FirecREST's single-quoted shell word also loses everything from a
  lone ``'`` on, which is reproduced before the string reaches ``sbatch``.
* job info, as FirecREST does it: ``sacct --json`` (the accounting database, through
  slurmdbd) merged with ``squeue --json`` (Slurm 22.05's ``-j`` filter is ignored with
  ``--json``, so squeue's job is picked from its list). A job sacct knows is answered
  from sacct's record (so finished jobs stay visible after ``MinJobAge``, and a job
  cancelled while pending shows ``nodes: "None assigned"``); a job only squeue knows
  yet (sacct lags ~0.3-0.9 s behind a new job) is answered PENDING, so RUNNING shows a
  little after the job really started, as on the real server. When sacct fails — no
  ``accounting_storage/slurmdbd``, or slurmdbd stopped — every job query answers 500
  (:class:`~firecrest_double.scheduler.AccountingError`), never "not found".
* cancel: ``scancel <id>``. Real FirecREST answers 500 for an unknown or finished job
  (Slurm's ``scancel`` itself exits 0 there), so the job is looked up first.

Answers use FirecREST's shapes: string ids, ``CANCELLED by <uid>`` (the uid of the user
whose cancel request went through this backend), ``stateReason`` ``"None"`` while
pending, ``exitCode``/``interruptSignal`` null until the job started.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from firecrest_double.scheduler import (
    AccountingError,
    JobNotFound,
    JobSubmission,
    SchedulerError,
    UserInfo,
    export_string,
)

#: Slurm states after which a job does not run any more.
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "SPECIAL_EXIT",
    }
)
#: States before the batch script started.
NOT_STARTED_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUE_HOLD", "REQUEUED"})

#: How long one Slurm command may take before the request fails.
COMMAND_TIMEOUT = 30.0


class SlurmUnavailable(RuntimeError):
    """The local Slurm cluster cannot be reached."""


def slurm_unavailable_reason(timeout: float = 10.0) -> str | None:
    """Why the local Slurm cluster is not usable, or ``None`` when it is.

    Checks that ``sinfo``/``sbatch``/``squeue`` exist and that ``sinfo`` answers with at
    least one node that can run jobs. Used by tests to skip with a clear reason."""
    for tool in ("sinfo", "sbatch", "squeue", "scancel"):
        if shutil.which(tool) is None:
            return f"'{tool}' not found: start the test cluster with scripts/slurm-up.sh (as root)"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"'sinfo' did not answer within {timeout:.0f}s: is slurmctld running? (scripts/slurm-up.sh)"
    if proc.returncode != 0:
        return (
            f"'sinfo' failed ({proc.stderr.strip() or proc.returncode}): "
            "start the test cluster with scripts/slurm-up.sh (as root)"
        )
    states = proc.stdout.split()
    usable = [s for s in states if s.rstrip("*~#") in {"idle", "mixed", "allocated", "completing"}]
    if not usable:
        return (
            f"no usable Slurm node (sinfo states: {states or 'none'}); "
            "scripts/slurm-up.sh resumes drained nodes"
        )
    return None


#: NodeModel.state values of the OpenAPI document.
NODE_STATES = frozenset({"IDLE", "ALLOCATED", "MIXED", "DOWN", "DRAIN", "OFFLINE", "RESERVED",
                         "COMPLETING", "BUSY", "POWERING_DOWN", "POWERING_UP", "UNKNOWN"})
_SCONTROL_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9_:/.]*)=(.*?)(?=\s+[A-Za-z][A-Za-z0-9_:/.]*=|\s*$)")


def scontrol_fields(line: str) -> dict[str, str]:
    """``Key=value`` pairs of one ``scontrol show ... -o`` line (values may hold spaces,
    as a node's ``OS=Linux 6.1 #1 SMP``)."""
    return {m.group(1): m.group(2).strip() for m in _SCONTROL_FIELD.finditer(line.strip())}


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _epoch(stamp: str) -> int:
    """scontrol's local ``YYYY-MM-DDTHH:MM:SS`` as epoch seconds (0 when unknown)."""
    try:
        return int(time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return 0


def _decode_exit(status: int) -> tuple[int, int]:
    """Slurm's raw wait status → (exit code, signal), as ``scontrol`` shows ``A:B``."""
    signal = status & 0x7F
    if signal:
        return 0, signal
    return (status >> 8) & 0xFF, 0


class SlurmScheduler:
    """:class:`~firecrest_double.scheduler.Scheduler` backed by the local Slurm cluster.

    ``system_name`` is the FirecREST system name the double serves. The double must
    run as root (to submit as any existing user) or as the only user it serves."""

    def __init__(
        self,
        system_name: str = "cluster",
        command_timeout: float = COMMAND_TIMEOUT,
        squeue_cache_s: float = 0.2,
        cancel_on_stop: bool = True,
    ) -> None:
        self.system_name = system_name
        self.command_timeout = command_timeout
        #: ``squeue --json`` answers are reused for this long (many concurrent polls).
        self.squeue_cache_s = squeue_cache_s
        self._scripts: dict[str, str] = {}
        self._cancelled_by: dict[str, int] = {}
        self._squeue: tuple[float, list[dict[str, Any]]] | None = None
        self._squeue_lock = asyncio.Lock()
        #: Every job id this backend submitted (tests cancel leftovers on stop).
        self.submitted: list[str] = []
        #: ``stop()`` cancels them (tests); False keeps them, as a restarted FirecREST does.
        self.cancel_on_stop = cancel_on_stop
        #: Slurm commands still running for requests that went away (see :meth:`_run`).
        self._commands: set[asyncio.Future[tuple[bytes, bytes]]] = set()

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Check that the cluster answers (raises :class:`SlurmUnavailable`)."""
        reason = await asyncio.to_thread(slurm_unavailable_reason)
        if reason is not None:
            raise SlurmUnavailable(reason)

    async def stop(self) -> None:
        """Cancel the jobs this backend submitted that still run (``cancel_on_stop``)."""
        if self._commands:  # commands of requests that went away: let them finish
            await asyncio.wait(set(self._commands), timeout=self.command_timeout)
        if not self.cancel_on_stop:
            return
        try:
            jobs = {str(j["job_id"]): j for j in await self._squeue_jobs(fresh=True)}
        except SchedulerError:
            return
        for job_id in self.submitted:
            job = jobs.get(job_id)
            if job is not None and job["job_state"] not in TERMINAL_STATES:
                await self._run(["scancel", job_id], user=job.get("user_name") or None, check=False)

    # -- identities -------------------------------------------------------------------
    def userinfo(self, user: str) -> UserInfo:
        """The POSIX identity of ``user`` on this host (no accounting: no accounts)."""
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise SchedulerError(
                f"id: '{user}': no such user (create it on the cluster, e.g. "
                f"scripts/slurm-up.sh creates f7tuser)"
            ) from None
        try:
            group = grp.getgrgid(pw.pw_gid).gr_name
        except KeyError:
            group = str(pw.pw_gid)
        return UserInfo(name=user, uid=pw.pw_uid, group=group, gid=pw.pw_gid)

    # -- commands ---------------------------------------------------------------------
    def _argv(self, cmd: Sequence[str], user: str | None) -> list[str]:
        """Run ``cmd`` as ``user`` in a login shell (FirecREST runs commands over ssh)."""
        if user is None:
            return list(cmd)
        self.userinfo(user)  # raises a clear error for unknown users
        if os.geteuid() == 0:
            return ["runuser", "-l", user, "-c", shlex.join(cmd)]
        me = pwd.getpwuid(os.geteuid()).pw_name
        if me != user:
            raise SchedulerError(
                f"the double runs as '{me}' and cannot act as '{user}': run it as root "
                f"(it then uses runuser) or use tokens for '{me}'"
            )
        return ["bash", "-lc", shlex.join(cmd)]

    async def _run(
        self,
        cmd: Sequence[str],
        user: str | None = None,
        stdin: str | None = None,
        check: bool = True,
    ) -> tuple[int, str, str]:
        argv = self._argv(cmd, user)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd="/",
        )
        # A request that goes away (the client timed out: the HTTP handler is cancelled)
        # does not stop its command, as on FirecREST: it finishes and is reaped here.
        work = asyncio.ensure_future(
            proc.communicate(stdin.encode() if stdin is not None else None))
        self._commands.add(work)
        work.add_done_callback(self._command_done)
        try:
            out, err = await asyncio.wait_for(asyncio.shield(work), self.command_timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await asyncio.wait({work}, timeout=self.command_timeout)
            raise SchedulerError(
                f"'{cmd[0]}' did not answer within {self.command_timeout:.0f}s "
                "(is slurmctld running? scripts/slurm-up.sh)",
                124,
            ) from None
        rc = proc.returncode if proc.returncode is not None else -1
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if check and rc != 0:
            raise SchedulerError(stderr.strip() or stdout.strip() or f"{cmd[0]} failed", rc)
        return rc, stdout, stderr

    def _command_done(self, work: asyncio.Future[tuple[bytes, bytes]]) -> None:
        self._commands.discard(work)
        if not work.cancelled():
            work.exception()  # retrieved: an error of a request that went away is moot

    # -- submit -----------------------------------------------------------------------
    @staticmethod
    def export_option(env: Mapping[str, str] | Sequence[str] | None) -> str:
        """``--export`` as FirecREST builds it, cut at a lone quote as its shell word is."""
        joined = export_string(env)
        quote = joined.find("'")
        if quote >= 0:
            joined = joined[:quote]
        return "--export=ALL" + ("," + joined if joined else "")

    def sbatch_command(self, job: JobSubmission) -> list[str]:
        """The ``sbatch`` argv for a submission whose script comes on stdin."""
        cmd = ["sbatch", "--parsable", f"--chdir={job.working_directory}"]
        options = (
            ("--job-name", job.name),
            ("--account", job.account),
            ("--partition", job.partition),
            ("--reservation", job.reservation),
            ("--constraint", job.constraints),
            ("--input", job.standard_input),
            ("--output", job.standard_output),
            ("--error", job.standard_error),
        )
        cmd += [f"{opt}={value}" for opt, value in options if value]
        cmd.append(self.export_option(job.env))
        if job.script_path and not job.script:
            cmd.append(job.script_path)
        return cmd

    async def submit(self, user: str, job: JobSubmission) -> str:
        """``sbatch`` as ``user``; returns the job id. sbatch errors → SchedulerError."""
        if not job.script and not job.script_path:
            raise SchedulerError("sbatch: error: no batch script given (script or scriptPath)")
        _, out, _ = await self._run(self.sbatch_command(job), user=user, stdin=job.script or "")
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch answered no job id: {out.strip()!r}")
        self._scripts[job_id] = job.script or ""
        self.submitted.append(job_id)
        self._squeue = None
        return job_id

    # -- job info ---------------------------------------------------------------------
    async def _sacct_jobs(self, user: str, job_id: str | None = None,
                          allusers: bool = False) -> list[dict[str, Any]]:
        """``sacct --json`` records (one job, or the user's/everybody's since midnight).

        Raises AccountingError (HTTP 500) when sacct cannot answer: accounting not
        configured, or slurmdbd not reachable."""
        cmd = ["sacct", "--json"]
        if job_id is not None:
            cmd += ["-j", job_id]
        elif allusers:
            cmd.append("--allusers")
        else:  # sacct run by root (or an operator) would list everybody's jobs
            cmd += ["--user", user]
        rc, out, err = await self._run(cmd, user=user, check=False)
        if rc != 0:
            if "accounting storage is disabled" in err.lower():
                raise AccountingError(AccountingError.NOT_CONFIGURED)
            raise AccountingError(
                f"Unexpected Slurm command response. exit_status:{rc} std_err:{err.strip()}")
        try:
            jobs = json.loads(out)["jobs"]
        except (ValueError, KeyError) as exc:
            raise AccountingError(f"sacct --json answered no job list: {out[:200]!r}") from exc
        # 22.05 ignores -j and --user with --json (as squeue ignores -j): filter here
        return [j for j in jobs
                if (job_id is None or str(j.get("job_id")) == job_id)
                and (job_id is not None or allusers or j.get("user") == user)]

    def sacct_model(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """One ``sacct --json`` job (Slurm 22.05) as FirecREST's ``JobModel``."""
        job_id = str(job["job_id"])
        state_info = job.get("state") or {}
        state = str(state_info.get("current") or "PENDING")
        started = state not in NOT_STARTED_STATES
        shown = state
        if state == "CANCELLED" and job_id in self._cancelled_by:
            shown = f"CANCELLED by {self._cancelled_by[job_id]}"
        exit_info = job.get("exit_code") or {}
        signal_info = exit_info.get("signal") or {}
        status = {
            "state": shown,
            "stateReason": str(state_info.get("reason") or "None"),
            "exitCode": int(exit_info.get("return_code") or 0) if started else None,
            "interruptSignal": int(signal_info.get("signal_id") or 0) if started else None,
        }
        t = job.get("time") or {}
        start = int(t.get("start") or 0) if started else 0
        end = int(t.get("end") or 0) if state in TERMINAL_STATES else 0
        limit = t.get("limit")
        times = {
            "elapsed": int(t.get("elapsed") or 0),
            "start": start,
            "end": end,
            "suspended": int(t.get("suspended") or 0),
            "limit": int(limit) if isinstance(limit, int) else None,
        }
        tasks: list[dict[str, Any]] = []
        if started:
            tasks.append({"id": f"{job_id}.batch", "name": "batch", "status": dict(status),
                          "time": dict(times)})
        priority = job.get("priority")
        return {
            "jobId": job_id,
            "name": str(job.get("name") or ""),
            "status": status,
            "tasks": tasks,
            "time": times,
            "account": job.get("account") or None,
            "allocationNodes": int(job.get("allocation_nodes") or 0),
            "cluster": str(job.get("cluster") or ""),
            "group": job.get("group") or None,
            "nodes": str(job.get("nodes") or ""),
            "partition": str(job.get("partition") or ""),
            "killRequestUser": None,  # FirecREST: always null
            "user": job.get("user") or None,
            "workingDirectory": str(job.get("working_directory") or ""),
            "priority": int(priority) if isinstance(priority, int) else None,
        }

    def not_in_sacct_yet(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """A job only squeue knows (sacct lags behind a new job): reported PENDING."""
        model = self.job_model(job)
        if model["status"]["state"] in TERMINAL_STATES or model["status"]["state"].startswith(
                "CANCELLED"):
            return model
        model["status"] = {"state": "PENDING", "stateReason": "None", "exitCode": None,
                           "interruptSignal": None}
        model["tasks"], model["nodes"], model["allocationNodes"] = [], "", 0
        model["time"] = {**model["time"], "elapsed": 0, "start": 0, "end": 0}
        return model

    async def merged(self, user: str, job_id: str | None = None,
                     allusers: bool = False) -> list[dict[str, Any]]:
        """sacct's records merged with squeue's, as FirecREST answers job queries.

        Known to both: squeue's live record (Slurm 22.05's ``sacct --json`` reports
        exit code 0 for a failed job and drops the state reason), with sacct's
        ``None assigned`` as the nodes of a job that ended before it got any. Only in
        sacct: its record (slurmctld forgot the job). Only in squeue: PENDING."""
        accounted = {str(j["job_id"]): j for j in await self._sacct_jobs(user, job_id, allusers)}
        models: dict[str, dict[str, Any]] = {}
        for job in await self._squeue_jobs():
            jid = str(job["job_id"])
            if job_id is not None and jid != job_id:
                continue
            if job_id is None and not allusers and job.get("user_name") != user:
                continue
            if jid not in accounted:
                models[jid] = self.not_in_sacct_yet(job)
                continue
            model = self.job_model(job)
            acct = self.sacct_model(accounted[jid])
            if not model["nodes"] and model["status"]["state"] != "PENDING":
                model["nodes"] = acct["nodes"]
                model["allocationNodes"] = acct["allocationNodes"]
            model["killRequestUser"] = None  # FirecREST: always null
            models[jid] = model
        for jid, job in accounted.items():
            models.setdefault(jid, self.sacct_model(job))
        return list(models.values())

    async def _squeue_jobs(self, fresh: bool = False) -> list[dict[str, Any]]:
        async with self._squeue_lock:
            now = time.monotonic()
            if not fresh and self._squeue and now - self._squeue[0] < self.squeue_cache_s:
                return self._squeue[1]
            _, out, _ = await self._run(["squeue", "--json"])
            try:
                jobs = json.loads(out)["jobs"]
            except (ValueError, KeyError) as exc:
                raise SchedulerError(f"squeue --json answered no job list: {out[:200]!r}") from exc
            self._squeue = (time.monotonic(), jobs)
            return jobs

    async def _find(self, job_id: str) -> dict[str, Any]:
        if not job_id.isdigit():
            raise JobNotFound(job_id)
        for job in await self._squeue_jobs():
            if str(job["job_id"]) == job_id:
                return job
        raise JobNotFound(job_id)

    def _status(self, job: Mapping[str, Any]) -> dict[str, Any]:
        state = str(job["job_state"])
        started = state not in NOT_STARTED_STATES
        if state == "CANCELLED":
            uid = self._cancelled_by.get(str(job["job_id"]))
            if uid is not None:
                state = f"CANCELLED by {uid}"
        exit_code: int | None = None
        signal: int | None = None
        if started:
            exit_code, signal = _decode_exit(int(job.get("exit_code") or 0))
        return {
            "state": state,
            "stateReason": str(job.get("state_reason") or "None"),
            "exitCode": exit_code,
            "interruptSignal": signal,
        }

    @staticmethod
    def _time(job: Mapping[str, Any]) -> dict[str, Any]:
        """Epoch seconds (0 = not yet), elapsed seconds, limit in minutes (as sacct)."""
        state = str(job["job_state"])
        started = state not in NOT_STARTED_STATES
        start = int(job.get("start_time") or 0) if started else 0
        end = int(job.get("end_time") or 0) if state in TERMINAL_STATES else 0
        elapsed = max(0, (end or int(time.time())) - start) if start else 0
        limit = job.get("time_limit")
        return {
            "elapsed": elapsed,
            "start": start,
            "end": end,
            "suspended": int(job.get("pre_sus_time") or 0),
            "limit": int(limit) if isinstance(limit, int) else None,
        }

    def job_model(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """One ``squeue --json`` job as FirecREST's ``JobModel``."""
        job_id = str(job["job_id"])
        state = str(job["job_state"])
        status = self._status(job)
        times = self._time(job)
        tasks: list[dict[str, Any]] = []
        if state not in NOT_STARTED_STATES:
            tasks.append(
                {
                    "id": f"{job_id}.batch",
                    "name": "batch",
                    "status": dict(status),
                    "time": dict(times),
                }
            )
        cancelled_by = self._cancelled_by.get(job_id)
        kill_user: str | None = None
        if cancelled_by is not None:
            try:
                kill_user = pwd.getpwuid(cancelled_by).pw_name
            except KeyError:
                kill_user = str(cancelled_by)
        started = state not in NOT_STARTED_STATES
        return {
            "jobId": job_id,
            "name": str(job.get("name") or ""),
            "status": status,
            "tasks": tasks,
            "time": times,
            "account": job.get("account") or None,
            "allocationNodes": int(job.get("node_count") or 0),
            "cluster": str(job.get("cluster") or ""),
            "group": job.get("group_name") or None,
            "nodes": str(job.get("nodes") or "") if started else "",
            "partition": str(job.get("partition") or ""),
            "killRequestUser": kill_user,
            "user": job.get("user_name") or None,
            "workingDirectory": str(job.get("current_working_directory") or ""),
            "priority": int(job["priority"]) if isinstance(job.get("priority"), int) else None,
        }

    async def jobs(
        self,
        user: str,
        job_id: str | None = None,
        allusers: bool = False,
        account: str | None = None,
    ) -> list[dict[str, Any]]:
        """One job (``JobNotFound`` when Slurm does not know it) or ``user``'s jobs,
        from sacct merged with squeue (AccountingError when sacct cannot answer)."""
        if job_id is not None:
            if not job_id.isdigit():
                raise JobNotFound(job_id)
            found = await self.merged(user, job_id)
            if not found:
                raise JobNotFound(job_id)
            return found[:1]
        return [m for m in await self.merged(user, None, allusers)
                if account is None or m["account"] == account]

    async def metadata(self, user: str, job_id: str) -> list[dict[str, Any]]:
        """Script and standard stream paths (``%j`` expanded, as FirecREST shows them)."""
        job = await self._find(job_id)
        script = self._scripts.get(job_id)
        if script is None:
            rc, out, _ = await self._run(
                ["scontrol", "write", "batch_script", job_id, "-"], check=False
            )
            script = out if rc == 0 else None
        workdir = str(job.get("current_working_directory") or "")

        def expand(path: str | None, default: str | None) -> str | None:
            path = path or default
            if not path:
                return None
            path = path.replace("%j", job_id).replace("%u", str(job.get("user_name") or ""))
            path = path.replace("%x", str(job.get("name") or ""))
            if not path.startswith("/") and workdir:
                path = f"{workdir}/{path}"
            return path

        default_out = f"{workdir}/slurm-{job_id}.out" if workdir else None
        stdout = expand(job.get("standard_output"), default_out)
        return [
            {
                "jobId": job_id,
                "script": script,
                "standardInput": expand(job.get("standard_input"), "/dev/null"),
                "standardOutput": stdout,
                "standardError": expand(job.get("standard_error"), stdout),
            }
        ]

    # -- status routes ----------------------------------------------------------------
    async def partition_models(self) -> list[dict[str, Any]]:
        """``PartitionModel`` dicts from ``scontrol show partitions -o`` (FirecREST's
        mapping: ``partition`` is the partition's State)."""
        _, out, _ = await self._run(["scontrol", "show", "partitions", "-o"])
        return [{"name": f["PartitionName"], "partition": f.get("State", "UNKNOWN"),
                 "cpus": _int_or_none(f.get("TotalCPUs")),
                 "totalNodes": _int_or_none(f.get("TotalNodes"))}
                for f in map(scontrol_fields, out.splitlines()) if "PartitionName" in f]

    async def reservation_models(self) -> list[dict[str, Any]]:
        """``ReservationModel`` dicts from ``scontrol show reservations -o``."""
        _, out, _ = await self._run(["scontrol", "show", "reservations", "-o"], check=False)
        found = []
        for f in map(scontrol_fields, out.splitlines()):
            if "ReservationName" not in f:
                continue
            features = f.get("Features")
            found.append({"name": f["ReservationName"], "nodeList": f.get("Nodes", ""),
                          "startTime": _epoch(f.get("StartTime", "")),
                          "endTime": _epoch(f.get("EndTime", "")),
                          "state": f.get("State"),
                          "features": None if features in (None, "(null)") else features})
        return found

    async def node_models(self) -> list[dict[str, Any]]:
        """``NodeModel`` dicts from ``sinfo --json`` (state and flags upper-cased, kept
        to the values of the OpenAPI document's NodeState)."""
        _, out, _ = await self._run(["sinfo", "--json"])
        try:
            nodes = json.loads(out).get("nodes") or []
        except (ValueError, AttributeError):
            raise SchedulerError(f"sinfo --json answered no JSON: {out[:200]!r}") from None
        found = []
        for node in nodes:
            states = [str(node.get("state") or "unknown"), *(node.get("state_flags") or [])]
            known = [w for w in (st.upper().rstrip("*~#!%$@^-") for st in states)
                     if w in NODE_STATES]
            found.append({
                "name": str(node.get("name")), "hostname": node.get("hostname"),
                "address": node.get("address"), "cpus": int(node.get("cpus") or 0),
                "allocCpus": node.get("alloc_cpus"), "idleCpus": node.get("idle_cpus"),
                "sockets": node.get("sockets"), "cores": node.get("cores"),
                "threads": node.get("threads"), "weight": node.get("weight"),
                "freeMemory": node.get("free_memory"), "allocMemory": node.get("alloc_memory"),
                "features": node.get("features") or None,
                "partitions": list(node.get("partitions") or []),
                "state": list(dict.fromkeys(known)) or ["UNKNOWN"],
            })
        return found

    # -- cancel -----------------------------------------------------------------------
    async def cancel(self, user: str, job_id: str) -> None:
        """``scancel`` as ``user``; unknown or finished job → SchedulerError (HTTP 500)."""
        try:
            job = await self._find(job_id)
        except JobNotFound:
            raise SchedulerError(
                f"scancel: error: Kill job error on job id {job_id}: Invalid job id specified"
            ) from None
        if job["job_state"] in TERMINAL_STATES:
            raise SchedulerError(
                f"scancel: error: Kill job error on job id {job_id}: "
                "Job/step already completing or completed"
            )
        _, _, err = await self._run(["scancel", job_id], user=user)
        if "error" in err.lower():
            raise SchedulerError(err.strip())
        self._cancelled_by[job_id] = self.userinfo(user).uid
        self._squeue = None
