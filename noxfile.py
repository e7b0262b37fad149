"""f7t4jhub sessions: build and check the images, test the spawner, check the recipes.

Quick start: ``nox -s build`` (all images, each followed by its checks; earlier builds
are then removed, 2 kept per image), then ``nox -s tests``. ``nox --list`` shows every
session. The logic lives in the importable packages ``f7tbuild`` (images) and
``firecrestspawner`` (spawner); this file is only the table of sessions.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

PYTHON = "3.11"
BUILD_DEPS = ["-r", "requirements/build.txt"]
TEST_DEPS = ["-r", "requirements/test.txt"]
E2E_DEPS = ["-r", "requirements/e2e.txt"]


def _go_tools(session: nox.Session) -> None:
    """Wait for the Go programs host-setup builds in the background (helm, cosign, ...)."""
    session.run("bash", "scripts/go-tools.sh", "wait", external=True)


def _f7tbuild(session: nox.Session, *args: str) -> None:
    session.install(*BUILD_DEPS)
    session.run("python", "-m", "f7tbuild", *args, *session.posargs)


@nox.session(name="standins", python=PYTHON)
def standins(session: nox.Session) -> None:
    """Make the stand-in base images from Debian packages (used when a real base can't be pulled)."""
    _f7tbuild(session, "standins")


@nox.session(name="build-chp", python=PYTHON)
def build_chp(session: nox.Session) -> None:
    """Build the chp proxy image, then run its testinfra checks; earlier builds removed (2 kept per image)."""
    _f7tbuild(session, "build", "chp")


@nox.session(name="build-hub", python=PYTHON)
def build_hub(session: nox.Session) -> None:
    """Build the f7t4jhub hub image, then run its testinfra checks; earlier builds removed (2 kept per image)."""
    _f7tbuild(session, "build", "hub")


@nox.session(name="build-singleuser", python=PYTHON)
def build_singleuser(session: nox.Session) -> None:
    """Build the singleuser images (all variants, or those named after --), then check them; earlier builds removed (2 kept per image)."""
    _f7tbuild(session, "build", "singleuser")


@nox.session(name="build", python=PYTHON)
def build(session: nox.Session) -> None:
    """Build and check every image: chp, hub and all singleuser variants; then remove earlier builds (2 kept per image)."""
    _f7tbuild(session, "build", "all")


@nox.session(name="clean-images", python=PYTHON)
def clean_images(session: nox.Session) -> None:
    """Remove earlier local builds of our images, keeping the newest per image (-- --keep N, --dry-run)."""
    _f7tbuild(session, "clean-images")


@nox.session(name="build-arm64", python=PYTHON)
def build_arm64(session: nox.Session) -> None:
    """Slow, not in CI: every image for linux/arm64 under qemu, checked; amd64+arm64 indexes on a loopback registry."""
    session.run("bash", "scripts/emulation-setup.sh", external=True)  # qemu, binfmt_misc
    _go_tools(session)  # crane (loopback registry, indexes), syft (publish's SBOMs)
    _f7tbuild(session, "build-emulated", "--platform", "linux/arm64")


@nox.session(name="lock", python=PYTHON)
def lock(session: nox.Session) -> None:
    """Regenerate the hashed locks (hub, singleuser variants, uenv and native recipes) from catalogue.toml."""
    _f7tbuild(session, "lock")
    session.run("python", "-m", "recipes.locks")


@nox.session(name="lint", python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint Dockerfiles (hadolint), shell scripts (shellcheck), Python (ruff, mypy), workflows (actionlint)."""
    session.install("-e", ".[hub]")  # mypy checks the spawner against JupyterHub's types
    _go_tools(session)  # actionlint
    _f7tbuild(session, "lint")


# JupyterHub 6.x runs the whole suite; 5.x (also allowed by the hub extra) runs the
# spawner and unit tests again (tests/api already starts a hub of each major itself).
# tests/deploy (the whole deployment: containers, browser) is the e2e session, which the
# 6.x run queues after itself, so `nox -s tests` runs it too.
JUPYTERHUB_SUITES = {
    "6": ["tests", "--ignore=tests/deploy"],
    "5": ["tests/spawner", "tests/unit"],
}


@nox.session(name="tests", python=PYTHON)
@nox.parametrize("jupyterhub", list(JUPYTERHUB_SUITES))
def tests(session: nox.Session, jupyterhub: str) -> None:
    """Run the tests: unit, spawner vs the FirecREST double, Slurm e2e, recipes (JupyterHub 5.x: spawner+unit); then e2e."""
    session.install(*TEST_DEPS)
    session.install("-e", ".[hub]", f"jupyterhub=={jupyterhub}.*")
    _go_tools(session)  # helm (chart tests), crane, cosign, syft (registry test)
    session.run("pytest", *(session.posargs or JUPYTERHUB_SUITES[jupyterhub]))
    if jupyterhub == "6" and not session.posargs:
        session.notify("e2e")


@nox.session(name="e2e", python=PYTHON)
def e2e(session: nox.Session) -> None:
    """The deployment end to end: hub+chp containers, OIDC provider, FirecREST on Slurm, Podman job, Chromium."""
    session.install(*E2E_DEPS)
    # --durations=0: every phase's time (set-up: images into Podman, the containers) in the log.
    session.run("pytest", "tests/deploy", "--durations=0", *session.posargs)


@nox.session(name="chart", python=PYTHON)
def chart(session: nox.Session) -> None:
    """Helm chart: lint, render, Kubernetes schemas; its pods run with the real hub and chp images."""
    session.install(*TEST_DEPS)
    session.install("-e", ".[hub]")
    _go_tools(session)
    session.run("pytest", "tests/chart", *session.posargs)


@nox.session(name="check-recipes", python=PYTHON)
def check_recipes(session: nox.Session) -> None:
    """Validate the uenv recipe with Stackinator and launch JupyterLab from uenv and native installs."""
    session.install(*TEST_DEPS)
    session.run("pytest", "tests/recipes", *session.posargs)


@nox.session(name="bench-images", python=PYTHON)
def bench_images(session: nox.Session) -> None:
    """Benchmark: build times vs an upstream-style build, cold/warm, sizes over the bases (prints figures)."""
    _f7tbuild(session, "bench")


@nox.session(name="bench-spawner", python=PYTHON)
def bench_spawner(session: nox.Session) -> None:
    """Benchmark: 200 concurrent spawns against the FirecREST double (calls per poll, loop stalls); then requests per poll interval for 1/200/2000 servers, per-server vs batched."""
    session.install(*TEST_DEPS)
    session.install("-e", ".[hub]")
    session.run("python", "-m", "benchmarks.spawn", *session.posargs)
    session.run("python", "-m", "benchmarks.polling")


@nox.session(name="bench-e2e", python=PYTHON)
def bench_e2e(session: nox.Session) -> None:
    """Benchmark: spawn request to Lab through the proxy in the whole deployment, split by phase; 10 users at once (prints figures)."""
    session.install(*E2E_DEPS)
    session.run("python", "-m", "benchmarks.e2e", *session.posargs)


@nox.session(name="publish", python=PYTHON)
def publish(session: nox.Session) -> None:
    """Push checked builds (-- --registry HOST/NS, --sign KEY); write digests, manifests, SBOMs."""
    _go_tools(session)
    _f7tbuild(session, "publish")


@nox.session(name="publish-index", python=PYTHON)
def publish_index(session: nox.Session) -> None:
    """Assemble (and -- --sign) multi-arch indexes from per-platform publish results."""
    _f7tbuild(session, "index")
