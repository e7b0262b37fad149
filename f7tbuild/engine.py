"""The Docker engine, through the docker CLI: reachability, images, pulls, streamed runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

INSTALL_HINT = (
    "install and start one as root with scripts/install-docker.sh "
    "(Debian: docker.io + dockerd), or point DOCKER_HOST at a running engine"
)


class EngineError(RuntimeError):
    """The Docker engine is missing or a docker command failed."""


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run one docker command, capturing its output."""
    if shutil.which("docker") is None:
        raise EngineError(f"the docker CLI is not installed: {INSTALL_HINT}")
    try:
        proc = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"`docker {' '.join(args)}` took more than {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        raise EngineError(
            f"`docker {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
        )
    return proc


def require_engine(timeout: float = 20) -> str:
    """Return the engine's version, or raise an error that says how to get one."""
    try:
        proc = docker("info", "--format", "{{.ServerVersion}}", timeout=timeout, check=False)
    except EngineError as exc:
        raise EngineError(f"no Docker engine reachable ({exc}); {INSTALL_HINT}") from None
    version = proc.stdout.strip()
    if proc.returncode != 0 or not version or version == "<no value>":
        raise EngineError(
            f"no Docker engine reachable ({proc.stderr.strip()[-300:] or 'docker info failed'}); "
            f"{INSTALL_HINT}"
        )
    return version


def image_exists(ref: str) -> bool:
    """True if the image is in the local engine."""
    return docker("image", "inspect", ref, check=False, timeout=30).returncode == 0


def inspect(ref: str) -> dict:
    """``docker image inspect`` of one image."""
    return json.loads(docker("image", "inspect", ref, timeout=30).stdout)[0]


def image_size(ref: str) -> int:
    """Image size in bytes, as the engine reports it."""
    return int(inspect(ref)["Size"])


def labels(ref: str) -> dict[str, str]:
    """The image's labels (empty if none)."""
    return inspect(ref).get("Config", {}).get("Labels") or {}


def try_pull(ref: str, timeout: float) -> tuple[bool, str]:
    """Try ``docker pull`` for at most ``timeout`` seconds; return (ok, reason)."""
    try:
        proc = docker("pull", "--quiet", ref, timeout=timeout, check=False)
    except EngineError as exc:
        return False, str(exc)
    if proc.returncode == 0:
        return True, "pulled"
    return False, (proc.stderr.strip().splitlines() or ["docker pull failed"])[-1][:300]


def stream(
    cmd: Sequence[str],
    on_line: Callable[[str], None],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> int:
    """Run a command, passing each line of its merged stdout/stderr to ``on_line``."""
    merged_env = {**os.environ, **(env or {})}
    with subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=merged_env,
        cwd=cwd,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            on_line(line)
        return proc.wait()
