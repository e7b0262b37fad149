"""One ``docker build`` with streamed, prefixed output and per-step status lines."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

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


def buildkit_enabled(env: dict[str, str] | None = None) -> bool:
    """True when DOCKER_BUILDKIT asks for BuildKit (docker 20.10 has no buildx)."""
    value = (os.environ if env is None else env).get("DOCKER_BUILDKIT", "0").strip().lower()
    return value in ("1", "true", "yes")


def command(req: BuildRequest, buildkit: bool) -> list[str]:
    """The docker build command line (always ``--network host``: loopback CA, proxy)."""
    cmd = ["docker", "build", "--network", "host", "-f", str(req.dockerfile)]
    if buildkit:
        cmd += ["--progress", "plain"]
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


def run(req: BuildRequest) -> float:
    """Run the build, streaming every line as ``[name] ...``; return seconds taken."""
    buildkit = buildkit_enabled()
    cmd = command(req, buildkit)
    status(
        f"[{req.name}] docker build ({'BuildKit' if buildkit else 'classic builder'}) "
        f"-> {', '.join(req.tags)}"
    )
    tracker = StepTracker(emit=lambda msg: status(f"[{req.name}] {msg}"))
    start = time.monotonic()

    def on_line(line: str) -> None:
        prefixed(req.name, line)
        tracker.feed(line)

    env = {"DOCKER_BUILDKIT": "1" if buildkit else "0"}
    rc = engine.stream(cmd, on_line, env=env)
    tracker.close()
    took = time.monotonic() - start
    if rc != 0:
        raise BuildError(
            f"[{req.name}] docker build failed (exit {rc}) after {took:.0f}s; see the lines above"
        )
    status(f"[{req.name}] built in {took:.1f}s")
    return took
