"""A FirecREST v2 (API 2.5.6) test double with a mini identity provider.

Not shipped in the wheel: tests and benchmarks import it from the repository root.

Quick use::

    from firecrest_double import FirecrestDouble, SimulatedScheduler, Outcome

    async with FirecrestDouble(SimulatedScheduler("cluster", queue_delay=0.5)) as fc:
        token = fc.idp.mint("alice")            # RS256 JWT with kid, 300 s
        ...  # point firecrest.v2.AsyncFirecrest at fc.url
        fc.assert_no_violations()

or ``fc = FirecrestDouble(...).start_in_thread()`` to keep the double's CPU out of
the caller's event loop (``fc.stop_thread()`` to end it).

What it guarantees
    Every request and response is validated against the OpenAPI document
    (:mod:`firecrest_double.spec`); violations become 422 answers and entries in
    ``fc.violations``. The measured behaviours of the real server
    (``firecrest-v2-notes.md``) are reproduced: string job ids, the ``JobModel``
    shape while pending, ``CANCELLED by <uid>``, 404 ``Job not found.``, 500 for
    cancelling finished/unknown jobs and for sbatch rejections, the error body
    shape, ``f7t-appversion: 2.5.6``, the token rules (:mod:`firecrest_double.auth`)
    and ``--export`` mangling of ``env`` (:func:`~firecrest_double.scheduler.apply_export`).

Observability
    ``fc.requests`` (log of :class:`~firecrest_double.server.RequestRecord`),
    ``fc.route_counts`` / ``fc.job_counts`` / ``fc.count(route, job_id)``,
    ``fc.faults`` (:mod:`firecrest_double.faults`), ``fc.idp.refresh_count``.

The scheduler protocol
    The HTTP layer talks to a backend through :class:`~firecrest_double.scheduler.Scheduler`
    (a ``typing.Protocol``): ``system_name``; ``async start()`` / ``async stop()``;
    ``userinfo(user) -> UserInfo``; ``async submit(user, JobSubmission) -> job id``
    (raise :class:`~firecrest_double.scheduler.SchedulerError` with sbatch's stderr
    → HTTP 500); ``async jobs(user, job_id=None, allusers=False, account=None)`` →
    ``JobModel`` dicts (raise :class:`~firecrest_double.scheduler.JobNotFound` → 404);
    ``async metadata(user, job_id)`` → ``JobMetadataModel`` dicts; ``async cancel(user,
    job_id)`` (unknown or finished → SchedulerError → 500). Backends:
    :class:`~firecrest_double.simulated.SimulatedScheduler` (deterministic state
    machine, scripted :class:`~firecrest_double.simulated.Outcome`, optional real
    execution of the batch script) and ``firecrest_double.slurm.SlurmScheduler``
    (real ``sbatch``/``squeue``/``scancel`` of a local cluster).
"""

from .auth import AuthError, TokenVerifier
from .faults import Fault, Faults
from .idp import IdentityProvider
from .scheduler import (
    AccountingError,
    JobNotFound,
    JobSubmission,
    Scheduler,
    SchedulerError,
    UserInfo,
    apply_export,
)
from .server import APP_VERSION, FileSystemConfig, FirecrestDouble, RequestRecord
from .simulated import Outcome, SimJob, SimulatedScheduler
from .spec import OpenAPISpec, ResponseViolation, Violation, load_spec

__all__ = [
    "APP_VERSION", "AccountingError", "AuthError", "Fault", "Faults", "FileSystemConfig", "FirecrestDouble",
    "IdentityProvider", "JobNotFound", "JobSubmission", "OpenAPISpec", "Outcome",
    "RequestRecord", "ResponseViolation", "Scheduler", "SchedulerError", "SimJob",
    "SimulatedScheduler", "TokenVerifier", "UserInfo", "Violation", "apply_export",
    "load_spec",
]
