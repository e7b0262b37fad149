"""Errors a start can end with, raised so that JupyterHub shows their message to the user.

JupyterHub shows an ``HTTPError``'s message (and, from 6.x, a ``SpawnException``'s) on
the spawn-pending page, in the progress stream (``Spawn failed: <message>``) and in
the REST API's JSON error body, and logs it without a traceback. Any other exception
becomes a bare ``500: Internal Server Error``; so every start failure the spawner can
explain is one of these.
"""

from __future__ import annotations

from tornado import web

try:  # JupyterHub >= 6: a policy refusal, reported to the user without a traceback
    from jupyterhub.spawner import SpawnException as _Base
except ImportError:  # JupyterHub 5: an HTTPError is reported without a traceback too
    _Base = web.HTTPError  # type: ignore[assignment,misc]


class StartFailed(_Base):  # type: ignore[misc,valid-type]
    """A start failed for a reason the message names (token, FirecREST, Slurm)."""

    status = 503
    reason_label = "firecrest"

    def __init__(self, message: str, status: int | None = None) -> None:
        code = status if status is not None else self.status
        if _Base is web.HTTPError:
            super().__init__(code, "%s", message, reason=self.reason_label)
        else:
            super().__init__(message, reason=self.reason_label, status_code=code)
        self.text = message
        #: What JupyterHub's API and progress stream show.
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.text

    def add_detail(self, detail: str) -> None:
        """Append ``detail`` (e.g. the job's last output lines) to what users see."""
        self.text = f"{self.text.rstrip('.')}. {detail}"
        self.jupyterhub_message = self.text
        if getattr(self, "log_message", None) == "%s":  # JupyterHub 5: an HTTPError
            self.args = (self.text,)


class InvalidOptions(StartFailed):
    """User options refused (HTTP 400); the message names the field."""

    status = 400
    reason_label = "invalid_options"


class LoginRequired(StartFailed):
    """No FirecREST token without the user logging in again (HTTP 401)."""

    status = 401
    reason_label = "login_required"


class JobEnded(StartFailed):
    """The job ended (or was found gone) before JupyterLab came up."""

    status = 500
    reason_label = "job_ended"


class StartTimeout(StartFailed):
    """The job did not come up within the start timeout (it was cancelled)."""

    status = 504
    reason_label = "timeout"


class InternalError(StartFailed):
    """A bug in the spawner (``KeyError``, ``TypeError``...) ended the start: the user
    gets a sentence, the log gets the traceback; never counted as a FirecREST outage."""

    status = 500
    reason_label = "internal_error"


def internal_error(action: str, exc: BaseException) -> InternalError:
    """The sentence for an unexpected exception while doing ``action`` (the exception's
    type only: its text may hold anything; the traceback is in the hub's log)."""
    return InternalError(
        f"{action} failed because of an internal error in the hub's FirecRESTSpawner "
        f"({type(exc).__name__}); this is not a problem with your options or the cluster. "
        "The hub's log has the details: please tell your administrators if it happens again")
