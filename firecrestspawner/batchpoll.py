"""Batched polling: one FirecREST job listing per poll interval serves every server of the hub.

Without it each running server costs one ``GET /compute/{system}/jobs/{job_id}`` per
poll interval: 2000 servers, 2000 requests (each a ``sacct``/``squeue`` run behind
FirecREST). With a service account configured (``service_client_id``) and
``batch_poll`` on, the hub instead asks once per interval for the whole system:
``GET /compute/{system}/jobs?allusers=true``. FirecREST v2 documents ``allusers`` as
"all jobs visible by the current user": the listing shows other users' jobs only when
the service account's Slurm user may see them (Slurm's ``PrivateData`` does not hide
jobs, or the account is a Slurm operator). A job missing from a listing is never taken
for "not found":

* :class:`JobLister` is a hub-wide singleton per (event loop, FirecREST URL, system,
  service client). It makes one listing request at a time; concurrent callers share
  it, and its answer serves every lookup for ``max_age`` seconds (the poll interval).
* A job found RUNNING in the listing: its record is the poll's answer (no request of
  its own). A record in any other state would change the server's fate (ended,
  requeued, ending): the job's own request confirms it first — the listing and the
  per-job view come from different sacct runs and disagree while a job changes state
  (right after a start the listing's ``sacct --allusers`` does not know the job yet and
  it is listed PENDING, while ``sacct -j`` says RUNNING: alone, a requeue), and a server
  is never ended on the listing alone.
* A job absent from the listing (too new for it, ended before sacct's window, hidden
  from the service account), or a listing that failed (5xx, timeout, refused): the
  spawner falls back to the per-job request, which keeps the "Job not found twice"
  rule. A failed listing is not retried for ``max_age`` seconds: meanwhile every poll
  goes per job, as without a service account.
* A job absent from two listings that its per-job request then finds alive means the
  listing cannot see it: logged once per lister (the site's Slurm hides other users'
  jobs from the service account), and counted in :attr:`JobLister.blind`.

Nothing here blocks the hub's event loop: the body of a large listing (2000 jobs are
~1.4 MB of JSON, 80-150 ms for one ``json.loads`` on a busy 2-core machine) is parsed
record by record, yielding to the loop every few milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from firecrest.FirecrestException import UnexpectedStatusException

from . import metrics
from .gateway import Failure, GatewayError, JobGateway
from .slurm import JobStatus, Phase
from .tls import ssl_context

log = logging.getLogger(__name__)

#: How long the parser may hold the loop before it yields (seconds).
SLICE_S = 0.004
#: Polls that waited for a listing resume this many per loop iteration (hundreds of
#: them resuming at once would hold the loop for tens of milliseconds).
RESUME_BATCH = 25
_PREFIX = re.compile(r'\s*\{\s*"jobs"\s*:\s*')
_WS = re.compile(r"[\s,]*")

#: The clock listings age by (a test advances its own instead of sleeping).
_clock: Callable[[], float] = time.monotonic


async def parse_listing(body: bytes, slice_s: float = SLICE_S) -> dict[str, JobStatus]:
    """``{job id: JobStatus}`` of a ``GET /compute/{system}/jobs`` answer body.

    Parses one job record at a time and yields to the event loop whenever ``slice_s``
    seconds went by, so that a listing of thousands of jobs never stalls the hub.
    Records without ``jobId``/``status.state`` are skipped. Raises ValueError when the
    body is not FirecREST's ``{"jobs": [...]}``.
    """
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    out: dict[str, JobStatus] = {}
    match = _PREFIX.match(text)
    if match is None:  # another layout (e.g. more keys first): small, parse at once
        data = json.loads(text)
        records = data.get("jobs") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(records, list | type(None)):
            raise ValueError("the answer is not FirecREST's {\"jobs\": [...]}")
        for record in records or []:
            _add(out, record)
        return out
    pos = match.end()
    if text.startswith("null", pos):
        return out
    if not text.startswith("[", pos):
        raise ValueError("the answer's \"jobs\" is not a list")
    pos += 1
    loop_clock = time.perf_counter
    started = loop_clock()
    while True:
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= len(text):
            raise ValueError("the answer's job list is cut short")
        if text[pos] == "]":
            return out
        record, pos = decoder.raw_decode(text, pos)
        _add(out, record)
        if loop_clock() - started > slice_s:
            await asyncio.sleep(0)
            started = loop_clock()


def _add(out: dict[str, JobStatus], record: Any) -> None:
    try:
        status = JobStatus.from_firecrest(record)
    except (ValueError, AttributeError):
        return
    out[status.job_id] = status


@dataclass
class JobLister:
    """The hub's shared job listing of one system (see the module text).

    ``gateway`` bounds and classifies the listing request (its ``auth`` is the service
    account's token object); ``http`` sends it to ``url`` (FirecREST's base URL).
    """

    system: str
    gateway: JobGateway
    http: httpx.AsyncClient
    url: str
    #: When the current listing (or failure) came, monotonic seconds; None: never.
    at: float | None = None
    jobs: dict[str, JobStatus] = field(default_factory=dict)
    failure: GatewayError | None = None
    #: Listing requests made (tests and the benchmark read it).
    requests: int = 0
    #: Jobs found alive per job after being absent from two listings.
    blind: int = 0
    #: The event loop the lister (and its HTTP client) belongs to.
    loop: asyncio.AbstractEventLoop | None = None
    _task: asyncio.Task[None] | None = None
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    _absent: dict[str, float] = field(default_factory=dict)
    _warned: bool = False

    async def lookup(self, job_id: str, max_age: float) -> JobStatus | None:
        """The job's status from a listing at most ``max_age`` s old (fetched if none
        is); None when the listing does not show the job. Raises GatewayError when the
        listing failed (now or less than ``max_age`` s ago): poll per job then."""
        if self.at is None or _clock() - self.at >= max_age:
            loop = asyncio.get_running_loop()
            if self._task is None or self._task.done():
                self._task = loop.create_task(self._refresh())
            waiter = loop.create_future()
            self._waiters.append(waiter)
            await waiter
        failure = self.failure
        if failure is not None:  # a new exception each time (no traceback piling up)
            raise GatewayError(failure.failure, failure.detail, failure.status)
        status = self.jobs.get(job_id)
        if status is None:
            self._absent.setdefault(job_id, self.at or 0.0)
        else:
            self._absent.pop(job_id, None)
        return status

    def found_alive(self, job_id: str) -> None:
        """The per-job request found a job this listing did not show, still alive."""
        first = self._absent.get(job_id)
        if first is None or self.at is None or self.at <= first:
            return  # absent from one listing only: it may have been too new for it
        self.blind += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "batched polling: job %s on %s is alive but absent from the service "
                "account's job listing (allusers=true): the account does not see other "
                "users' jobs (Slurm PrivateData?). Such jobs are polled one request each; "
                "make the account a Slurm operator or set batch_poll = False", job_id,
                self.system)

    def _resume_waiters(self) -> None:
        """Wake up to RESUME_BATCH waiting polls; the next ones in the next iteration."""
        for _ in range(min(RESUME_BATCH, len(self._waiters))):
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        if self._waiters:
            asyncio.get_running_loop().call_soon(self._resume_waiters)

    async def _refresh(self) -> None:
        try:
            await self._fetch()
        finally:
            self._resume_waiters()

    async def _fetch(self) -> None:
        try:
            body = await self.gateway.call(self._get)
            jobs = await parse_listing(body)
        except GatewayError as exc:
            self._fail(exc)
            return
        except ValueError as exc:
            self._fail(GatewayError(Failure.OUTAGE, f"unexpected FirecREST job listing: {exc}"))
            return
        self.jobs, self.failure, self.at = jobs, None, _clock()
        self._absent = {k: v for k, v in self._absent.items() if k not in jobs}
        if len(self._absent) > 4 * len(jobs) + 1000:  # ended jobs nobody asks for again
            self._absent.clear()

    def _fail(self, exc: GatewayError) -> None:
        log.warning("batched polling: the job listing of %s failed (%s); servers are "
                    "polled one request each until the next interval", self.system,
                    exc.detail)
        self.jobs, self.failure, self.at = {}, exc, _clock()

    async def _get(self) -> bytes:
        self.requests += 1
        headers = await self.gateway.auth.auth_headers()
        response = await self.http.get(f"{self.url}/compute/{self.system}/jobs",
                                       params={"allusers": "true"}, headers=headers)
        if response.status_code != 200:
            raise UnexpectedStatusException([response], 200)
        return response.content

    async def close(self) -> None:
        """Close the HTTP client (tests)."""
        await self.http.aclose()


# One lister per (event loop, FirecREST URL, system, service client id).
_listers: dict[tuple[int, str, str, str], JobLister] = {}


def lister_for(spawner: Any, gateway: JobGateway) -> JobLister:
    """The hub's :class:`JobLister` for the spawner's system and service account;
    ``gateway`` is the service account's (its token object authorizes the listing)."""
    loop = asyncio.get_running_loop()
    system = spawner.job_system or spawner.system
    key = (id(loop), spawner.firecrest_url, system, spawner.service_client_id)
    lister = _listers.get(key)
    if lister is None or lister.loop is not loop:  # (a new loop may reuse a dead one's id)
        http = httpx.AsyncClient(verify=ssl_context(spawner.verify_tls),
                                 timeout=spawner.firecrest_timeout)
        metrics.count_session_requests(http, spawner.firecrest_url)
        lister = _listers[key] = JobLister(
            system, JobGateway(http, gateway.auth, spawner.firecrest_timeout * 2), http,
            spawner.firecrest_url.rstrip("/"), loop=loop)
    return lister


def enabled(spawner: Any) -> bool:
    """Whether the spawner's polls go through the shared listing."""
    return bool(spawner.service_client_id) and bool(spawner.batch_poll)


async def job_status(spawner: Any, gateway: JobGateway) -> JobStatus:
    """The status of the spawner's job for ``poll()``: from the hub's shared listing when
    batched polling is on and the listing shows the job, else (absent, listing failed,
    batching off, or a listed state other than RUNNING, which only the job's own answer
    may act on) one request for the job through ``gateway``. Raises GatewayError as
    :meth:`~.gateway.JobGateway.status` does (a JOB_NOT_FOUND only after two looks)."""
    lister: JobLister | None = None
    if enabled(spawner):
        lister = lister_for(spawner, gateway)
        try:
            status = await lister.lookup(spawner.job_id, float(spawner.poll_interval))
        except GatewayError:
            status = None
        if status is not None and status.phase is Phase.RUNNING:
            return status
    status = await gateway.status(spawner.job_system, spawner.job_id,
                                  second_look_delay=spawner.not_found_recheck)
    if lister is not None and lister.failure is None and not status.over:
        lister.found_alive(spawner.job_id)
    return status


async def close_all() -> None:
    """Close the listers of the running loop and forget every lister (tests)."""
    loop = asyncio.get_running_loop()
    for lister in list(_listers.values()):
        if lister.loop is loop:
            await lister.close()
    _listers.clear()
