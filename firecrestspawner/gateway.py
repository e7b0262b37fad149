"""The FirecREST job gateway: every call the spawner makes about a job, and what a failure means.

A :class:`JobGateway` wraps one pyfirecrest ``AsyncFirecrest`` client and its
authorization object. Each call is bounded in time and either returns FirecREST's
answer or raises :class:`GatewayError` whose :class:`Failure` says what the failure
means for a server:

``JOB_NOT_FOUND``
    FirecREST answered 404 ``Job not found`` for *this* job id. Only this ends a
    server, and only after a second look (:meth:`JobGateway.status` with
    ``confirm_gone=True``).
``OUTAGE``
    Anything that may heal by itself: 5xx, 429, timeouts, refused or reset
    connections, a 404 that is not "Job not found" (an unknown system, an ingress
    during a roll-out), an identity provider that is down or slow. The server is
    kept; the caller retries with bounded backoff.
``LOGIN_REQUIRED``
    No token can be had without the user logging in again (refused refresh).
``FORBIDDEN``
    FirecREST answered 403: the user may not do this (not a token problem).
``REFUSED``
    FirecREST refused the request (other 4xx, or sbatch's rejection as 500 on
    submit): the message says why.

A 401 drops the cached token, refreshes it once and retries the call once. Anything
else (``KeyError``, ``TypeError``...) is a programming error and propagates as is.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from firecrest.FirecrestException import FirecrestException, UnexpectedStatusException

from . import metrics
from .slurm import JobStatus, Phase
from .tokens import TokenError, TransientTokenError

T = TypeVar("T")


class Failure(enum.Enum):
    """What a failed FirecREST call means for a server (see the module text)."""

    JOB_NOT_FOUND = "job not found"
    OUTAGE = "outage"
    LOGIN_REQUIRED = "login required"
    FORBIDDEN = "forbidden"
    REFUSED = "refused"


class GatewayError(Exception):
    """A FirecREST call failed; :attr:`failure` classifies it, :attr:`detail` explains it
    (never contains a token)."""

    def __init__(self, failure: Failure, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail
        self.status = status


def _status_and_message(exc: UnexpectedStatusException) -> tuple[int | None, str]:
    response = exc.responses[-1] if exc.responses else None
    if response is None:
        return None, ""
    try:
        body = response.json()
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
    except ValueError:
        message = response.text[:200]
    return response.status_code, message


def classify(exc: BaseException, job_id: str | None = None) -> GatewayError:
    """Turn an exception of a FirecREST call into a :class:`GatewayError`.

    ``job_id`` is the job the call was about (a 404 "Job not found" then means that
    job). Exceptions that are not about FirecREST or the token endpoint (programming
    errors) are re-raised.
    """
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, UnexpectedStatusException):
        status, message = _status_and_message(exc)
        detail = f"FirecREST answered {status}" + (f": {message}" if message else "")
        if status == 404:
            if job_id is not None and message.strip().rstrip(".").lower() == "job not found":
                return GatewayError(Failure.JOB_NOT_FOUND, detail, status)
            return GatewayError(Failure.OUTAGE, detail + " (not a job answer: kept as an outage)",
                                status)
        if status == 401:
            return GatewayError(Failure.OUTAGE, detail + " (the access token was refused)",
                                status)
        if status == 403:
            return GatewayError(Failure.FORBIDDEN, detail, status)
        if status is not None and (status >= 500 or status == 429):
            return GatewayError(Failure.OUTAGE, detail, status)
        return GatewayError(Failure.REFUSED, detail, status)
    if isinstance(exc, TransientTokenError):
        return GatewayError(Failure.OUTAGE, str(exc))
    if isinstance(exc, TokenError):
        return GatewayError(Failure.LOGIN_REQUIRED, str(exc))
    if isinstance(exc, (httpx.HTTPError, asyncio.TimeoutError, OSError)):
        return GatewayError(Failure.OUTAGE,
                            f"FirecREST unreachable: {type(exc).__name__}: {exc}".rstrip(": "))
    if isinstance(exc, FirecrestException):
        return GatewayError(Failure.OUTAGE, f"FirecREST error: {exc}")
    raise exc


def _is_401(exc: BaseException) -> bool:
    return isinstance(exc, UnexpectedStatusException) and _status_and_message(exc)[0] == 401


class JobGateway:
    """FirecREST calls about jobs, each bounded and classified (see the module text).

    ``client`` is a pyfirecrest v2 ``AsyncFirecrest``; ``auth`` its authorization
    object (with ``invalidate()`` to drop a refused token); ``timeout`` bounds each
    call (the token refresh has its own, longer timeout: a slow refresh is not cut).
    """

    def __init__(self, client: Any, auth: Any, timeout: float) -> None:
        self.client = client
        self.auth = auth
        self.timeout = timeout
        #: FirecREST calls made through this gateway (tests and the benchmark read it).
        self.calls = 0

    async def call(self, make: Callable[[], Awaitable[T]], job_id: str | None = None) -> T:
        """Run one FirecREST call; on 401 drop the token, refresh once and retry once.

        Returns the call's answer; raises :class:`GatewayError` on failure.
        """
        for attempt in (1, 2):
            self.calls += 1
            used: str | None = None
            try:
                if hasattr(self.auth, "get_token"):
                    # the token first, outside the call's own time bound: a refresh
                    # has its own (longer) timeout and must not be cut
                    used = await self.auth.get_token()
                return await asyncio.wait_for(make(), timeout=self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (classified; programming errors re-raise)
                metrics.count_unanswered(exc)
                if _is_401(exc) and hasattr(self.auth, "invalidate"):
                    self.auth.invalidate(used)
                    if attempt == 1:
                        continue
                raise classify(exc, job_id) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def status(self, system: str, job_id: str, confirm_gone: bool = True,
                     second_look_delay: float = 1.0) -> JobStatus:
        """The job's :class:`JobStatus`.

        A "Job not found" answer is looked at a second time after
        ``second_look_delay`` seconds (when ``confirm_gone``); only two in a row raise
        ``GatewayError(JOB_NOT_FOUND)``.
        """
        try:
            return await self._status_once(system, job_id)
        except GatewayError as exc:
            if exc.failure is not Failure.JOB_NOT_FOUND or not confirm_gone:
                raise
        await asyncio.sleep(second_look_delay)
        return await self._status_once(system, job_id)

    async def _status_once(self, system: str, job_id: str) -> JobStatus:
        jobs = await self.call(lambda: self.client.job_info(system, job_id), job_id)
        for record in jobs or []:
            try:
                status = JobStatus.from_firecrest(record)
            except ValueError as exc:
                raise GatewayError(Failure.OUTAGE, f"unexpected FirecREST answer: {exc}") from None
            if status.job_id == job_id:
                return status
        raise GatewayError(Failure.OUTAGE,
                           f"FirecREST's answer about job {job_id} does not contain it")

    async def submit(self, system: str, workdir: str, script: str) -> str:
        """Submit ``script`` (sent as the request body: no secret on a command line);
        returns the job id."""
        answer = await self.call(lambda: self.client.submit(system, workdir, script_str=script))
        try:
            return str(answer["jobId"])
        except (KeyError, TypeError):
            raise GatewayError(Failure.OUTAGE,
                               f"FirecREST's submit answer has no jobId: {answer!r:.200}") from None

    async def cancel(self, system: str, job_id: str) -> None:
        """Ask Slurm to cancel the job (FirecREST answers 500 for an ended job)."""
        await self.call(lambda: self.client.cancel_job(system, job_id), job_id)

    async def jobs(self, system: str) -> list[tuple[str, JobStatus]]:
        """The user's jobs on ``system`` as (job name, status) pairs."""
        records = await self.call(lambda: self.client.job_info(system))
        out = []
        for record in records or []:
            try:
                out.append((str(record.get("name") or ""), JobStatus.from_firecrest(record)))
            except (ValueError, AttributeError):
                continue
        return out

    async def cancel_and_confirm(self, system: str, job_id: str, bound: float,
                                 interval: float = 0.5) -> tuple[bool, str]:
        """Cancel the job and watch it until FirecREST reports it ended.

        Returns ``(True, how it ended)`` once a terminal state (or a confirmed "Job not
        found") is seen within ``bound`` seconds, else ``(False, last thing seen)``.
        Never raises for FirecREST failures; :class:`Failure.LOGIN_REQUIRED` and
        others are reported in the second element.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        cancel_sent = False
        delay = interval
        last = "no answer yet"
        while True:
            if not cancel_sent:
                try:
                    await self.cancel(system, job_id)
                    cancel_sent = True
                except GatewayError as exc:
                    # 500 also means "already ended" on real FirecREST: the status says
                    last = f"cancel failed: {exc.detail}"
            try:
                status = await self.status(system, job_id, second_look_delay=min(interval, 1.0))
                if status.phase is Phase.TERMINAL:
                    return True, status.describe()
                last = status.describe()
            except GatewayError as exc:
                if exc.failure is Failure.JOB_NOT_FOUND:
                    return True, "no longer known to FirecREST"
                last = exc.detail
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False, last
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 5.0)
