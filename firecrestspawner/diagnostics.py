"""Failure diagnostics: why a job failed, in the words of Slurm and of the job's own output.

When a start fails or a running server's job ends on its own, the user reads the job's
Slurm state and reason and the last lines of its output, and the hub log has the same
with the job id. The output is read through FirecREST's file API (``GET
/filesystem/{system}/ops/tail`` with ``bytes``: at most ``diagnostics_bytes`` bytes, of
which the last ``diagnostics_lines`` lines are shown, each cut at
:data:`MAX_LINE` characters).

Secrets are never shown: the server's API token, the values of the job's secret
variables (names with TOKEN, SECRET, KEY, PASSWORD or COOKIE, and the encoded
``FIRECRESTSPAWNER_ENV``), and anything that looks like a token (JWTs, ``Bearer ...``,
``token=...``/``secret: ...`` assignments, long hexadecimal or base64 strings) are
replaced by ``[redacted]`` before the text reaches a message or the log.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

from .errors import InvalidOptions, LoginRequired, StartFailed
from .gateway import GatewayError, JobGateway
from .slurm import JobStatus, base_state

REDACTED = "[redacted]"
#: Longest line shown (longer ones are cut).
MAX_LINE = 300
#: Seconds the output may take to read (a failing start is not held up longer).
READ_TIMEOUT = 10.0

_SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD|PASSWD|COOKIE|CREDENTIAL|AUTH",
                          re.IGNORECASE)
_PATTERNS = (
    # JSON Web Tokens
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # Authorization headers
    re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{12,}"),
    # name=value / name: value where the name says secret
    re.compile(r"(?i)([A-Za-z0-9_]*(?:token|secret|password|passwd|api_?key|cookie)"
               r"[A-Za-z0-9_]*[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;]{4,}"),
    # long hexadecimal strings (JupyterHub's API tokens are 32 hex digits)
    re.compile(r"\b[0-9a-fA-F]{32,}\b"),
    # long base64/base64url runs with at least one digit and one letter
    re.compile(r"(?<![A-Za-z0-9+/_=-])(?=[A-Za-z0-9+/_=-]*[0-9])(?=[A-Za-z0-9+/_=-]*[A-Za-z])"
               r"[A-Za-z0-9+/_-]{40,}={0,2}(?![A-Za-z0-9+/_=-])"),
)


def secret_values(env: dict[str, str], extra: Iterable[str] = ()) -> list[str]:
    """The values of ``env`` that must never be shown (names that say secret, the encoded
    environment), plus ``extra``; longest first."""
    values = {v for k, v in env.items()
              if v and len(v) >= 6 and (_SECRET_NAME.search(k) or k == "FIRECRESTSPAWNER_ENV")}
    values.update(v for v in extra if v and len(v) >= 6)
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the ``secrets`` and without anything that looks like a token."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + (" " if m.group(1)[-1:].isalpha()
                                                       else "") + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def last_lines(content: str, lines: int, secrets: Iterable[str] = ()) -> list[str]:
    """The last ``lines`` non-empty lines of ``content``, redacted, each at most
    :data:`MAX_LINE` characters, control characters removed."""
    if lines <= 0:
        return []
    kept = [line.rstrip() for line in content.replace("\r", "\n").split("\n") if line.strip()]
    out = []
    for line in kept[-lines:]:
        clean = "".join(c if c.isprintable() else " " for c in line)
        clean = redact(clean, secrets)
        out.append(clean if len(clean) <= MAX_LINE else clean[:MAX_LINE] + " [...]")
    return out


def output_path(spawner: Any, job_id: str) -> str:
    """The absolute path of the job's output file on the cluster."""
    workdir = spawner.job_workdir or spawner.format_string(spawner.workdir)
    name = spawner.job_output.replace("%j", job_id)
    folder = spawner.format_string(spawner.job_log_dir) if spawner.job_log_dir else ""
    if folder and not folder.startswith("/"):
        folder = f"{workdir.rstrip('/')}/{folder}"
    return f"{(folder or workdir).rstrip('/')}/{name}"


async def read_tail(gw: JobGateway, system: str, path: str, max_bytes: int) -> str:
    """The last ``max_bytes`` bytes of ``path`` through FirecREST (raises GatewayError)."""
    answer = await asyncio.wait_for(
        gw.call(lambda: gw.client.tail(system, path, num_bytes=max_bytes)), READ_TIMEOUT)
    if isinstance(answer, dict):
        return str(answer.get("content") or "")
    return str(answer or "")


async def report(spawner: Any, status: JobStatus | None, job_id: str = "") -> str:
    """A paragraph for the user: Slurm's state and reason, then the last lines of the
    job's output (or why they could not be read). Never raises; never holds a secret."""
    job_id = job_id or spawner.job_id
    secrets = secret_values(_env(spawner), [getattr(spawner, "api_token", "") or ""])
    parts = []
    if status is not None:
        parts.append(f"Slurm reports job {job_id} {status.describe()}.")
    if spawner.diagnostics_lines <= 0 or not job_id:
        return " ".join(parts)
    path = output_path(spawner, job_id)
    try:
        content = await read_tail(spawner.gateway(), spawner.job_system or spawner.system,
                                  path, spawner.diagnostics_bytes)
    except (GatewayError, asyncio.TimeoutError) as exc:
        detail = exc.detail if isinstance(exc, GatewayError) else "no answer in time"
        parts.append(f"Its output {path} could not be read through FirecREST "
                     f"({redact(detail, secrets)}).")
        return " ".join(parts)
    lines = last_lines(content, spawner.diagnostics_lines, secrets)
    if not lines:
        parts.append(f"Its output {path} is empty.")
    else:
        parts.append(f"Last lines of {path}:\n" + "\n".join(f"  {line}" for line in lines))
    return " ".join(parts)


def _env(spawner: Any) -> dict[str, str]:
    try:
        return dict(spawner.job_env())
    except Exception:  # noqa: BLE001  (no environment without a running hub: nothing to hide)
        return {}


async def explain(spawner: Any, why: str, status: JobStatus | None) -> str:
    """``why`` followed by :func:`report` (the caller logs it, with the job id)."""
    text = await report(spawner, status)
    return f"{why}. {text}" if text else why


async def annotate(spawner: Any, exc: BaseException) -> None:
    """Add the job's last output lines to a failed start's error (a job existed, it was
    not stopped by the user, and the failure is not about options or tokens)."""
    if (not isinstance(exc, StartFailed) or isinstance(exc, (InvalidOptions, LoginRequired))
            or not spawner.job_id or spawner._stop_requested):
        return
    text = await report(spawner, None)
    path = output_path(spawner, spawner.job_id)
    if path in str(exc):  # the message already names the file
        text = text.replace(f"Last lines of {path}:", "Its last lines:")
    if text:
        spawner.log.warning("%s: job %s: start failed: %s %s", spawner._log_name,
                            spawner.job_id, redact(str(exc)), text)
        exc.add_detail(text)


def unexpected(status: JobStatus) -> bool:
    """Whether a job's end deserves diagnostics (not a plain exit 0)."""
    return not (base_state(status.state) == "COMPLETED" and status.exit_code in (0, None))


__all__ = ["annotate", "explain", "last_lines", "output_path", "read_tail", "redact", "report",
           "secret_values", "unexpected"]
