"""One image build with streamed, prefixed output and per-step status lines.

Two builders:

- BuildKit, for every Dockerfile that uses a BuildKit-only feature (``RUN --mount``: the
  hub and singleuser images bind-mount uv and our wheel, and keep uv's cache in a cache
  mount shared by builds; see docs/images.md), or for any Dockerfile when
  ``DOCKER_BUILDKIT=1``. The engine's API has no BuildKit session the Docker SDK can
  open (docker-py drives only the classic builder's ``/build`` endpoint), so BuildKit
  builds run a docker CLI that can (``buildkit_cli``), its plain progress streamed: the
  one place f7tbuild runs the docker CLI;
- the classic builder otherwise (chp, the stand-ins), through the Docker SDK (its
  streamed JSON events: output lines, the image id, errors).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors

from f7tbuild import engine
from f7tbuild.output import prefixed, status
from f7tbuild.progress import StepTracker


class BuildError(RuntimeError):
    """docker build failed; the streamed output above shows why."""


@dataclass
class BuildRequest:
    """Everything one docker build needs."""

    name: str
    dockerfile: Path
    context: Path
    tags: list[str]
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    #: None: BuildKit when the Dockerfile needs it or DOCKER_BUILDKIT=1 (``use_buildkit``).
    buildkit: bool | None = None
    #: BuildKit only: the platform to build for (``--platform``), for emulated builds.
    platform: str | None = None


#: A BuildKit-only instruction flag: RUN --mount=... (bind, cache, secret mounts).
_BUILDKIT_ONLY = re.compile(r"^\s*RUN\s+(?:--\S+\s+)*--mount=", re.MULTILINE | re.IGNORECASE)


def needs_buildkit(dockerfile: Path) -> bool:
    """True when ``dockerfile`` uses a feature only BuildKit has (``RUN --mount``)."""
    return bool(_BUILDKIT_ONLY.search(dockerfile.read_text()))


def use_buildkit(req: BuildRequest, env: dict[str, str] | None = None) -> bool:
    """The builder of ``req``: its own choice, else BuildKit when needed or asked for."""
    if req.buildkit is not None:
        return req.buildkit
    return needs_buildkit(req.dockerfile) or buildkit_enabled(env)


def buildkit_enabled(env: dict[str, str] | None = None) -> bool:
    """True when DOCKER_BUILDKIT asks for BuildKit (docker 20.10 has no buildx)."""
    value = (os.environ if env is None else env).get("DOCKER_BUILDKIT", "0").strip().lower()
    return value in ("1", "true", "yes")


def _cli_major(cli: str) -> int | None:
    try:
        proc = subprocess.run(
            [cli, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return int(proc.stdout.strip().split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _has_buildx(cli: str) -> bool:
    try:
        proc = subprocess.run(
            [cli, "buildx", "version"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def buildkit_cli() -> str:
    """A docker CLI able to run ``DOCKER_BUILDKIT=1 docker build``.

    CLIs from 23.0 on need the buildx plugin for that; CLIs before 23 (such as Debian's
    docker.io 20.10 in /usr/bin) drive the engine's built-in BuildKit themselves. Order:
    env F7T_DOCKER_CLI, ``docker`` on PATH, then other docker binaries on PATH and
    /usr/bin/docker.
    """
    candidates = [os.environ.get("F7T_DOCKER_CLI", ""), shutil.which("docker") or ""]
    for directory in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        candidates.append(os.path.join(directory, "docker"))
    seen: set[str] = set()
    for cli in candidates:
        if not cli or not os.access(cli, os.X_OK) or os.path.realpath(cli) in seen:
            continue
        seen.add(os.path.realpath(cli))
        major = _cli_major(cli)
        if major is not None and (major < 23 or _has_buildx(cli)):
            return cli
    raise BuildError(
        "this build needs BuildKit (RUN --mount in its Dockerfile, or DOCKER_BUILDKIT=1) but "
        "no docker CLI here can use it: CLIs >= 23 need the buildx plugin (apt-get install "
        "docker-buildx, or docker-buildx-plugin), CLIs < 23 have it built in (Debian's "
        "docker.io 20.10 in /usr/bin; set F7T_DOCKER_CLI=/path/to/that docker)."
    )


def command(req: BuildRequest, buildkit: bool, cli: str = "docker") -> list[str]:
    """The docker build command line (always ``--network host``: loopback CA, proxy)."""
    cmd = [cli, "build", "--network", "host", "-f", str(req.dockerfile)]
    if buildkit:
        cmd += ["--progress", "plain"]
        if req.platform:
            cmd += ["--platform", req.platform]
    if req.no_cache:
        cmd.append("--no-cache")
    for tag in req.tags:
        cmd += ["-t", tag]
    for key, value in req.build_args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    for key, value in req.labels.items():
        cmd += ["--label", f"{key}={value}"]
    cmd.append(str(req.context))
    return cmd


def _sdk_build(req: BuildRequest, on_line: Callable[[str], None]) -> str:
    """Classic builder through the SDK; every tag set; returns the image id."""
    api = engine.client(timeout=3600).api
    image_id = ""
    pending = ""
    try:
        events = api.build(
            path=str(req.context),
            dockerfile=str(req.dockerfile),
            tag=req.tags[0],
            buildargs=req.build_args,
            labels=req.labels,
            nocache=req.no_cache,
            pull=req.pull,
            network_mode="host",
            rm=True,
            forcerm=True,
            decode=True,
        )
        for event in events:
            if "error" in event:
                raise BuildError(f"[{req.name}] docker build failed: {event['error'].strip()}")
            text = event.get("stream") or ""
            if not text and event.get("status"):
                text = f"{event.get('id', '')} {event['status']}".strip() + "\n"
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                on_line(line + "\n")
            aux = event.get("aux") or {}
            if aux.get("ID"):
                image_id = str(aux["ID"])
    except docker.errors.DockerException as exc:
        raise BuildError(f"[{req.name}] docker build failed: {exc}") from None
    if pending:
        on_line(pending + "\n")
    if not image_id:
        raise BuildError(f"[{req.name}] docker build ended without an image id")
    for tag in req.tags[1:]:
        engine.tag(image_id, tag)
    return image_id


def run(req: BuildRequest) -> float:
    """Run the build, streaming every line as ``[name] ...``; return seconds taken."""
    buildkit = use_buildkit(req)
    if not buildkit:
        status(f"[{req.name}] docker build (classic builder, Docker SDK) -> {', '.join(req.tags)}")
        tracker = StepTracker(emit=lambda msg: status(f"[{req.name}] {msg}"))
        start = time.monotonic()

        def on_sdk_line(line: str) -> None:
            prefixed(req.name, line)
            tracker.feed(line)

        try:
            _sdk_build(req, on_sdk_line)
        finally:
            tracker.close()
        took = time.monotonic() - start
        status(f"[{req.name}] built in {took:.1f}s")
        return took
    # BuildKit: the one place f7tbuild runs the docker CLI (see the module's docstring).
    cli = buildkit_cli()
    if cli != shutil.which("docker"):
        status(f"[{req.name}] BuildKit through {cli} (the default docker CLI has no buildx)")
    cmd = command(req, True, cli)
    status(f"[{req.name}] docker build (BuildKit, docker CLI) -> {', '.join(req.tags)}")
    tracker = StepTracker(emit=lambda msg: status(f"[{req.name}] {msg}"))
    start = time.monotonic()

    def on_line(line: str) -> None:
        prefixed(req.name, line)
        tracker.feed(line)

    rc = engine.stream(cmd, on_line, env={"DOCKER_BUILDKIT": "1"})
    tracker.close()
    took = time.monotonic() - start
    if rc != 0:
        raise BuildError(
            f"[{req.name}] docker build failed (exit {rc}) after {took:.0f}s; see the lines above"
        )
    status(f"[{req.name}] built in {took:.1f}s")
    return took
