"""The local Slurm cluster as tests use it: is it usable, as whom, and a job directory.

Shared by ``tests/slurm`` (the double's Slurm backend) and ``tests/e2e`` (the whole
path, hub to JupyterLab job). A missing cluster skips the test with the reason, or
fails it when CI requires ``slurm`` (see :mod:`tests.support.require`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from firecrest_double.slurm import slurm_unavailable_reason
from tests.support.require import unavailable

#: The unprivileged user jobs run as (created by scripts/slurm-up.sh).
JOB_USER = os.environ.get("F7T_SLURM_USER", "f7tuser")


def cluster_problem(user: str = JOB_USER, *, root_only: bool = False) -> str | None:
    """Why this process cannot run jobs as ``user`` on the local cluster, or ``None``.

    The cluster must answer (``sinfo``), ``user`` must exist, and this process must be
    root (it submits as ``user`` with runuser) or, unless ``root_only``, ``user`` itself.
    """
    reason = slurm_unavailable_reason()
    if reason is not None:
        return f"local Slurm cluster not usable: {reason}"
    try:
        pwd.getpwnam(user)
    except KeyError:
        return f"job user {user!r} missing: run scripts/slurm-up.sh (creates it)"
    if os.geteuid() == 0:
        return None
    if root_only:
        return f"this test runs as root (it submits as {user!r} via runuser)"
    if pwd.getpwuid(os.geteuid()).pw_name != user:
        return f"must run as root (to submit as {user!r} with runuser) or as {user!r}"
    return None


def require_cluster(user: str = JOB_USER, *, root_only: bool = False) -> str:
    """``user``, once :func:`cluster_problem` finds nothing; else skip (or fail in CI)."""
    problem = cluster_problem(user, root_only=root_only)
    if problem is not None:
        unavailable("slurm", problem)
    return user


@contextmanager
def job_directory(user: str, prefix: str) -> Iterator[Path]:
    """A fresh directory in ``user``'s home, owned by ``user``; removed afterwards."""
    pw = pwd.getpwnam(user)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=pw.pw_dir))
    try:
        os.chown(path, pw.pw_uid, pw.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def mark_slurm_below(directory: Path, items: list[pytest.Item]) -> None:
    """Mark ``slurm`` every collected test whose file lies below ``directory``."""
    for item in items:
        if directory in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slurm)
