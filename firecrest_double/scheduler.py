"""The scheduler side of the double: the :class:`Scheduler` protocol and shared pieces.

The HTTP layer (:mod:`firecrest_double.server`) turns FirecREST routes into calls on a
``Scheduler``; a backend answers in FirecREST's own shapes (``JobModel`` and
``JobMetadataModel`` dicts of the OpenAPI document) and raises the errors below,
which the HTTP layer maps to the status codes the real server uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable


class SchedulerError(Exception):
    """The scheduler command failed (sbatch/scancel exit != 0) → HTTP 500.

    ``stderr`` is the command's standard error; the message follows FirecREST's
    wording so clients see what they would see against the real server."""

    def __init__(self, stderr: str, exit_status: int = 1) -> None:
        self.stderr = stderr
        self.exit_status = exit_status
        super().__init__(
            f"Unexpected Slurm command response. exit_status:{exit_status} std_err:{stderr}")


class JobNotFound(Exception):
    """No job with this id → HTTP 404 ``Job not found.``."""


class AccountingError(Exception):
    """Slurm accounting is off or slurmdbd does not answer → HTTP 500 with this message.

    FirecREST's job queries run ``sacct`` (merged with ``squeue``): without
    ``accounting_storage/slurmdbd`` every job query and ``userinfo`` answer 500
    ``Only 'accounting_storage/slurmdbd' is supported``; when slurmdbd stops, every job
    query answers 500 (``Problem talking to the database``) until it is back."""

    NOT_CONFIGURED = "Only 'accounting_storage/slurmdbd' is supported"
    DATABASE_DOWN = ("Unexpected Slurm command response. exit_status:1 std_err:sacct: error: "
                     "Problem talking to the database: Connection refused")


@dataclass(frozen=True)
class UserInfo:
    """POSIX identity of a user on the cluster."""

    name: str
    uid: int
    group: str
    gid: int
    accounts: tuple[str, ...] = ()
    default_account: str | None = None

    def as_response(self) -> dict[str, Any]:
        """``UserInfoResponse`` of the OpenAPI document."""
        return {
            "user": {"id": str(self.uid), "name": self.name},
            "group": {"id": str(self.gid), "name": self.group},
            "groups": [{"id": str(self.gid), "name": self.group}],
            "accounts": [{"name": a, "default": a == self.default_account} for a in self.accounts],
        }


@dataclass
class JobSubmission:
    """A validated ``PostJobSubmitRequest.job`` (camelCase names already applied)."""

    working_directory: str
    script: str | None = None
    script_path: str | None = None
    env: Mapping[str, str] | Sequence[str] | None = None
    name: str | None = None
    account: str | None = None
    partition: str | None = None
    reservation: str | None = None
    constraints: str | None = None
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    #: The JobDescriptionModel default when a request carries no ``env``.
    DEFAULT_ENV: ClassVar[dict[str, str]] = {"F7T_version": "v2.0.0"}

    @classmethod
    def from_request(cls, job: Mapping[str, Any]) -> JobSubmission:
        """Build from the request body's ``job`` object."""
        known = {
            "workingDirectory": "working_directory", "script": "script",
            "scriptPath": "script_path", "env": "env", "name": "name", "account": "account",
            "partition": "partition", "reservation": "reservation",
            "constraints": "constraints", "standardInput": "standard_input",
            "standardOutput": "standard_output", "standardError": "standard_error",
        }
        kwargs: dict[str, Any] = {py: job[js] for js, py in known.items() if js in job}
        kwargs["extra"] = {k: v for k, v in job.items() if k not in known}
        if "env" not in job:
            kwargs["env"] = dict(cls.DEFAULT_ENV)
        return cls(**kwargs)


@runtime_checkable
class Scheduler(Protocol):
    """What the double's HTTP layer needs from a scheduler backend.

    All methods are coroutines run on the double's event loop. ``user`` is the
    verified token's ``preferred_username``. Implementations: ``SimulatedScheduler``
    (in-process state machine, optionally executing scripts) and a real-Slurm backend.
    """

    system_name: str

    async def start(self) -> None:
        """Prepare the backend (called once, in the double's loop, before serving)."""

    async def stop(self) -> None:
        """Release everything (kill running job processes)."""

    def userinfo(self, user: str) -> UserInfo:
        """POSIX identity and accounts of ``user``."""

    async def submit(self, user: str, job: JobSubmission) -> str:
        """Submit; return the job id (a string of digits). Raise SchedulerError."""

    async def jobs(self, user: str, job_id: str | None = None,
                   allusers: bool = False, account: str | None = None) -> list[dict[str, Any]]:
        """``JobModel`` dicts: one job (raise JobNotFound) or the user's jobs."""

    async def metadata(self, user: str, job_id: str) -> list[dict[str, Any]]:
        """``JobMetadataModel`` dicts for one job (raise JobNotFound)."""

    async def cancel(self, user: str, job_id: str) -> None:
        """scancel semantics: unknown or finished job → SchedulerError (HTTP 500)."""


# -- sbatch --export semantics ---------------------------------------------------------
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def export_string(env: Mapping[str, str] | Sequence[str] | None) -> str:
    """The ``K1=v1,K2=v2`` list FirecREST puts in ``sbatch --export='ALL,...'``."""
    if env is None:
        return ""
    if isinstance(env, Mapping):
        return ",".join(f"{k}={v}" for k, v in env.items())
    return ",".join(env)


def apply_export(env: Mapping[str, str] | Sequence[str] | None,
                 login_env: Mapping[str, str]) -> dict[str, str]:
    """The environment a job sees after FirecREST's ``sbatch --export='ALL,<env>'``.

    Reproduces the measured behaviour: the variables are joined with commas inside a
    single-quoted shell word, so

    * a value containing a comma is cut at its first comma (the rest becomes an
      ``--export`` token without ``=``, which only re-exports an existing name);
    * a lone single quote: that variable swallows the rest of the export string
      (``V="it's"`` then ``AFTER=v`` gives ``V="it's,AFTER=v"``); every later variable
      is lost;
    * anything else (spaces, ``;``, ``$HOME``, backticks, newlines, backslashes,
      UTF-8, double quotes) arrives exactly.

    ``ALL`` means the job also inherits ``login_env``.
    """
    joined = export_string(env)
    quote = joined.find("'")
    head, tail = (joined, "") if quote < 0 else (joined[:quote], joined[quote:])
    tokens = head.split(",")
    tokens[-1] += tail  # the token holding the quote runs to the end of the string
    result = dict(login_env)
    for token in tokens:
        name, eq, value = token.partition("=")
        if eq and _NAME.match(name):
            result[name] = value
    return result


_DIRECTIVE = re.compile(r"^#SBATCH\s+(.*)$")


def sbatch_directives(script: str) -> dict[str, str]:
    """``#SBATCH`` options of a batch script, long names as keys (``-p`` → partition).

    Parsing stops at the first non-comment, non-blank line, as sbatch does."""
    short = {"p": "partition", "A": "account", "J": "job-name", "t": "time", "o": "output",
             "e": "error", "i": "input", "C": "constraint", "D": "chdir", "N": "nodes"}
    out: dict[str, str] = {}
    for line in script.splitlines()[1:]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        m = _DIRECTIVE.match(stripped)
        if not m:
            continue
        opt = m.group(1).split("#")[0].strip()
        if opt.startswith("--"):
            key, _, val = opt[2:].partition("=")
            if not _ and " " in key:
                key, _, val = key.partition(" ")
        elif opt.startswith("-") and len(opt) > 1:
            key, val = short.get(opt[1], opt[1]), opt[2:].lstrip("= ").strip()
        else:
            continue
        out[key.strip()] = val.strip().strip("'\"")
    return out


def parse_time_limit(value: str) -> int:
    """Slurm ``--time`` (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) in seconds."""
    days = 0
    if "-" in value:
        d, value = value.split("-", 1)
        days = int(d)
        parts = [int(p) for p in value.split(":")]
        while len(parts) < 3:
            parts.append(0)
        h, m, s = parts[:3]
    else:
        parts = [int(p) for p in value.split(":")]
        if len(parts) == 1:
            h, m, s = 0, parts[0], 0
        elif len(parts) == 2:
            h, m, s = 0, parts[0], parts[1]
        else:
            h, m, s = parts[:3]
    return ((days * 24 + h) * 60 + m) * 60 + s


def parse_memory_mb(value: str) -> int:
    """Slurm ``--mem`` (default unit MB; K/M/G/T suffixes) in MB."""
    m = re.fullmatch(r"(\d+)([KMGT]?)[Bb]?", value.strip(), re.IGNORECASE)
    if not m:
        raise ValueError(value)
    n, unit = int(m.group(1)), m.group(2).upper()
    return {"K": n // 1024, "": n, "M": n, "G": n * 1024, "T": n * 1024 * 1024}[unit]
