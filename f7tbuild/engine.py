"""The Docker engine through the Docker SDK (``docker`` on PyPI): images, pulls, pushes.

Structured data (inspect, labels, digests, pull/push progress, containers and their
exit codes and logs) comes from the engine's API, never from CLI text; classic builds
too (``dockerbuild``: the build's streamed JSON events). The docker CLI is kept in one
place only, ``dockerbuild``'s BuildKit path (``DOCKER_BUILDKIT=1``): the SDK cannot
open a BuildKit session. ``stream`` runs other programs (debootstrap, pytest) with
prefixed output.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import docker
import docker.errors

INSTALL_HINT = (
    "install and start one as root with scripts/install-docker.sh "
    "(Debian: docker.io + dockerd), or point DOCKER_HOST at a running engine"
)


class EngineError(RuntimeError):
    """The Docker engine is missing or an engine call failed."""


@lru_cache(maxsize=4)
def _client(host: str, timeout: float) -> docker.DockerClient:
    return docker.DockerClient(base_url=host, timeout=int(timeout)) if host else docker.from_env(
        timeout=int(timeout)
    )


def client(timeout: float = 120) -> docker.DockerClient:
    """A Docker SDK client for DOCKER_HOST (default: the local socket)."""
    try:
        return _client(os.environ.get("DOCKER_HOST", ""), timeout)
    except docker.errors.DockerException as exc:
        raise EngineError(f"no Docker engine reachable ({exc}); {INSTALL_HINT}") from None


def require_engine(timeout: float = 20) -> str:
    """Return the engine's version, or raise an error that says how to get one."""
    try:
        version = client(timeout).version().get("Version", "")
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"no Docker engine reachable ({exc}); {INSTALL_HINT}") from None
    if not version:
        raise EngineError(f"the Docker engine did not report a version; {INSTALL_HINT}")
    return str(version)


def image_exists(ref: str) -> bool:
    """True if the image is in the local engine."""
    try:
        client().images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        raise EngineError(f"inspecting {ref} failed: {exc}") from None
    return True


def inspect(ref: str) -> dict[str, Any]:
    """The engine's inspect data of one image (``docker image inspect``)."""
    try:
        return dict(client().images.get(ref).attrs)
    except docker.errors.ImageNotFound:
        raise EngineError(f"image {ref} is not in the local engine: build or pull it") from None
    except docker.errors.APIError as exc:
        raise EngineError(f"inspecting {ref} failed: {exc}") from None


def image_id(ref: str) -> str:
    """The local image id (``sha256:...``)."""
    return str(inspect(ref)["Id"])


def image_size(ref: str) -> int:
    """Image size in bytes, as the engine reports it."""
    return int(inspect(ref)["Size"])


def labels(ref: str) -> dict[str, str]:
    """The image's labels (empty if none)."""
    return dict((inspect(ref).get("Config") or {}).get("Labels") or {})


def split_ref(ref: str) -> tuple[str, str]:
    """``(repository, tag or digest)`` of ``host:port/name:tag`` or ``name@sha256:...``.

    The tag is ``latest`` when absent.
    """
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


def repo_digest(ref: str, repository: str | None = None) -> str | None:
    """The ``sha256:...`` digest the engine recorded for the image in ``repository``.

    (``RepoDigests``: set by a pull or a push.) ``repository`` defaults to ref's own.
    """
    repository = repository or split_ref(ref.split("@", 1)[0])[0]
    for entry in inspect(ref).get("RepoDigests") or []:
        name, _, digest = entry.partition("@")
        if name == repository or name == f"docker.io/library/{repository}":
            return digest
    return None


def _progress(events: Iterator[dict[str, Any]], deadline: float, what: str) -> Iterator[str]:
    """Lines of a pull/push event stream; raise on an error event or the deadline."""
    for event in events:
        if time.monotonic() > deadline:
            raise EngineError(f"{what}: no result before the deadline")
        if "error" in event:
            raise EngineError(f"{what}: {event.get('error')}")
        status_ = event.get("status", "")
        layer = event.get("id", "")
        if status_ and "progress" not in event:
            yield f"{layer}: {status_}" if layer else status_


def try_pull(ref: str, timeout: float) -> tuple[bool, str]:
    """Pull ``ref`` for at most ``timeout`` seconds; return (ok, reason)."""
    repo, tag = split_ref(ref)
    deadline = time.monotonic() + timeout
    try:
        api = client(timeout).api
        for _ in _progress(api.pull(repo, tag, stream=True, decode=True), deadline, "pull"):
            pass
    except (EngineError, docker.errors.DockerException, OSError) as exc:
        return False, str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return True, "pulled"


def tag(ref: str, new_ref: str) -> None:
    """Tag a local image (``docker tag``)."""
    repo, tag_ = split_ref(new_ref)
    try:
        ok = client().images.get(ref).tag(repo, tag_)
    except docker.errors.DockerException as exc:
        raise EngineError(f"tagging {ref} as {new_ref} failed: {exc}") from None
    if not ok:
        raise EngineError(f"the engine refused to tag {ref} as {new_ref}")


def push(ref: str, on_line: Callable[[str], None], timeout: float = 1800) -> str:
    """Push ``ref`` with per-layer progress lines; return the digest the registry gave."""
    repo, tag_ = split_ref(ref)
    deadline = time.monotonic() + timeout
    digest = ""
    try:
        events = client(timeout).api.push(repo, tag_, stream=True, decode=True)
        for event in events:
            if time.monotonic() > deadline:
                raise EngineError(f"push {ref}: not done after {timeout:.0f}s")
            if "error" in event:
                raise EngineError(f"push {ref} failed: {event['error']}")
            aux = event.get("aux") or {}
            if aux.get("Digest"):
                digest = str(aux["Digest"])
            elif event.get("status") and "progress" not in event:
                layer = event.get("id", "")
                on_line(f"{layer}: {event['status']}" if layer else str(event["status"]))
    except docker.errors.DockerException as exc:
        raise EngineError(f"push {ref} failed: {exc}") from None
    if not digest:
        raise EngineError(f"push {ref}: the registry returned no digest")
    return digest


def remove_image(ref: str) -> None:
    """Remove one local tag (no error when absent)."""
    try:
        client().images.remove(ref, noprune=False)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise EngineError(f"removing {ref} failed: {exc}") from None


def run(
    image: str, command: Sequence[str], timeout: float = 300, **kwargs: Any
) -> tuple[int, str, str]:
    """Run a throw-away container to its end: (exit code, stdout, stderr).

    ``kwargs`` go to the SDK's ``containers.create`` (``volumes``, ``environment``,
    ``user``, ``network_mode``...). The container is removed whatever happens.
    """
    cli = client(timeout)
    try:
        container = cli.containers.create(image, list(command), **kwargs)
    except docker.errors.DockerException as exc:
        raise EngineError(f"running {' '.join(command)} in {image} failed: {exc}") from None
    try:
        container.start()
        result = container.wait(timeout=timeout)
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        return int(result.get("StatusCode", -1)), out, err
    except (docker.errors.DockerException, OSError) as exc:  # OSError: timeouts
        raise EngineError(f"running {' '.join(command)} in {image} failed: {exc}") from None
    finally:
        try:
            container.remove(force=True)
        except docker.errors.DockerException:
            pass


def run_output(image: str, command: Sequence[str], timeout: float = 300, **kwargs: Any) -> str:
    """Run a throw-away container and return its stdout (stderr in the error on failure)."""
    code, out, err = run(image, command, timeout, **kwargs)
    if code != 0:
        raise EngineError(f"{' '.join(command)} in {image} exited {code}: {err[-800:]}")
    return out


class _Chunks(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the SDK's raw streams)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def save(ref: str, timeout: float = 1800) -> io.BufferedReader:
    """The ``docker save`` tar of one image as a readable stream (Docker SDK)."""
    try:
        chunks = client(timeout).api.get_image(ref, chunk_size=1 << 20)
    except docker.errors.DockerException as exc:
        raise EngineError(f"saving {ref} failed: {exc}") from None
    return io.BufferedReader(_Chunks(iter(chunks)), buffer_size=1 << 20)


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
