"""Job names: which hub, user and server a Slurm job belongs to.

Every job this hub submits is named from the ``job_name`` setting, by default
:data:`DEFAULT_JOB_NAME` (``jupyterhub.{hub_id}-{username}-{servername}``, reduced to
``[A-Za-z0-9_.-]``). The reconciler's orphan sweep takes a job for one of this hub's
only when its name is exactly the name of one of the user's servers *on this hub*:
the hub id is part of it, so two hubs sharing a FirecREST account never touch each
other's jobs (their hub ids must differ).

The hub id (setting ``hub_id``) has only letters, digits, ``_`` and ``.`` (no ``-``:
in the default name the first ``-`` after ``jupyterhub.`` ends it), at most
:data:`HUB_ID_MAX` characters. Its default comes from the hub's configuration
(:func:`default_hub_id`): the host of ``JupyterHub.public_url``, else the path of
``JupyterHub.base_url``, else ``hub``.

Jobs submitted before hub ids existed are named :data:`LEGACY_JOB_NAME`
(``jupyterhub-{username}-{servername}``); with ``legacy_job_names`` (default True) the
sweep still recognises them, so that an upgrade leaves no job of a crashed start behind.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

DEFAULT_JOB_NAME = "jupyterhub.{hub_id}-{username}-{servername}"
LEGACY_JOB_NAME = "jupyterhub-{username}-{servername}"
HUB_ID_MAX = 24
HUB_ID_RE = re.compile(r"[A-Za-z0-9_.]{1," + str(HUB_ID_MAX) + r"}\Z")
#: Fields a job_name must contain: hub, user and server.
REQUIRED_FIELDS = ("{hub_id}", "{username}", "{servername}")


def hub_id_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a hub id (None when it is fine)."""
    if HUB_ID_RE.match(value):
        return None
    shown = value[:40] + ("..." if len(value) > 40 else "")
    if not value:
        return "is empty"
    if len(value) > HUB_ID_MAX:
        return f"{shown!r} has {len(value)} characters, at most {HUB_ID_MAX} are allowed"
    bad = sorted({c for c in value if not re.match(r"[A-Za-z0-9_.]", c)})
    return (f"{shown!r} contains {''.join(bad)!r}: only letters, digits, '_' and '.' are "
            "allowed (Slurm job names; '-' separates the hub id from the user name)")


def _slug(text: str) -> str:
    """``text`` reduced to a valid hub id (stable: the same text, the same id)."""
    slug = re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_.")
    if len(slug) > HUB_ID_MAX:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        slug = slug[:HUB_ID_MAX - 9].rstrip("_.") + "_" + digest
    return slug


def default_hub_id(hub_config: Any) -> str:
    """The hub id derived from JupyterHub's configuration (``c.JupyterHub``): the host
    of ``public_url`` (plus its path when not ``/``), else the path of ``base_url``,
    else ``hub``. Stable across restarts as long as these settings are."""
    def setting(name: str) -> str:
        value = hub_config.get(name, "") if hasattr(hub_config, "get") else ""
        return value if isinstance(value, str) else ""

    public = setting("public_url")
    if public:
        parts = urlsplit(public)
        text = (parts.hostname or "") + parts.path.rstrip("/").replace("/", "_")
        if _slug(text):
            return _slug(text)
    base = setting("base_url").strip("/")
    return _slug(base.replace("/", "_")) or "hub"


def job_name_problem(value: str) -> str | None:
    """What is wrong with a ``job_name`` template (None when it is fine)."""
    missing = [f for f in REQUIRED_FIELDS if f not in value]
    if missing:
        return (f"{value[:80]!r} lacks {', '.join(missing)}: the reconciler tells this hub's "
                "jobs apart from other hubs' by their names, which must name hub, user and "
                f"server, e.g. {DEFAULT_JOB_NAME!r}")
    return None
