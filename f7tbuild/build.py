"""Build images from the catalogue (real base, else a visible stand-in fallback), then check them."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from f7tbuild import ca, checkpass, engine, housekeeping, pkgcache, projectwheel, uvbinary
from f7tbuild.catalogue import REPO_ROOT, Catalogue, Target
from f7tbuild.dockerbuild import BuildRequest
from f7tbuild.dockerbuild import run as docker_build
from f7tbuild.labels import image_labels
from f7tbuild.output import prefixed, status, warn
from f7tbuild.platforms import Platform, foreign_arch, host_arch
from f7tbuild.standin import build_standin
from f7tbuild.tags import Revision, component, current_revision, local_refs

CHECKS_DIR = REPO_ROOT / "tests" / "by_image"
# Checks every image gets besides its own test_<family>.py.
COMMON_CHECKS = ("test_labels.py",)


@dataclass
class BuildOptions:
    """How to build: base choice, caching, checks, CA bundle."""

    base: str = "auto"
    rebuild: bool = False
    no_cache: bool = False
    checks: bool = True
    pull_timeout: float = 20.0
    ca_bundle: Path | None = None
    #: A foreign platform to build for under emulation (None: the host's own).
    platform: Platform | None = None
    #: Redo debootstrap of the stand-in trees (emulated builds: ignore their cache).
    rebuild_rootfs: bool = False
    #: After a successful build, keep this many builds per image (0: keep all).
    keep_builds: int = housekeeping.BUILD_KEEP
    _remade: set[str] = field(default_factory=set)

    @property
    def arch(self) -> str | None:
        """The foreign architecture built for, None for the host's own."""
        return foreign_arch(self.platform)


@dataclass(frozen=True)
class Built:
    """A finished build."""

    target: Target
    ref: str
    base: str
    standin: bool
    seconds: float
    revision: str = ""


def resolve_base(cat: Catalogue, target: Target, opts: BuildOptions) -> tuple[str, bool]:
    """The base to build on: (reference, is_standin)."""
    if opts.arch is not None:
        if opts.base == "real":
            raise engine.EngineError(
                f"--base real with {opts.platform}: an emulated build uses stand-in bases only "
                "(the engine keeps one image per name, a pulled foreign base would shadow the "
                f"host's {target.base}); build {opts.platform} on a host of that architecture "
                "with `nox -s build -- --base real` (the release workflow's arm64 runner does)"
            )
        status(f"[{target.name}] {opts.platform} under emulation: stand-in '{target.standin}'")
    elif opts.base != "standin":
        if engine.image_exists(target.base):
            status(f"[{target.name}] base {target.base}: present locally")
            return target.base, False
        status(
            f"[{target.name}] base {target.base}: not local, docker pull ({opts.pull_timeout:.0f}s max)"
        )
        ok, why = engine.try_pull(target.base, opts.pull_timeout)
        if ok:
            return target.base, False
        if opts.base == "real":
            raise engine.EngineError(f"cannot pull {target.base}: {why} (--base real given)")
        warn(
            f"[{target.name}] cannot pull {target.base} ({why}); FALLING BACK to the "
            f"stand-in base '{target.standin}': this build is tagged -standin and cannot be published"
        )
    else:
        warn(f"[{target.name}] --base standin: building on stand-in '{target.standin}'")
    spec = cat.standin(target.standin)
    rebuild = opts.rebuild and spec.kind not in opts._remade
    ref = build_standin(spec, rebuild=rebuild, ca_bundle=opts.ca_bundle, platform=opts.platform)
    opts._remade.add(spec.kind)
    return ref, True


#: Under emulation uv may take longer than its default 60 s to byte-compile one file on
#: a busy host (a 24.07 build failed so); 0 lifts the limit.
EMULATED_COMPILE_TIMEOUT = "0"


def build_args(
    target: Target,
    base: str,
    standin: bool,
    ca_url: str,
    rev: Revision,
    index_url: str = "",
    emulated: bool = False,
) -> dict[str, str]:
    """The build arguments of docs/contracts.md section 3 for one target."""
    args = {
        "BASE_IMAGE": base,
        "CA_URL": ca_url,
        "INDEX_URL": index_url,
        "STANDIN": "true" if standin else "false",
        "BASE_REF": target.base,
        "OCI_VERSION": component(target),
        "OCI_REVISION": rev.sha,
        "OCI_CREATED": rev.created,
        "OCI_SOURCE": rev.source,
    }
    for key, arg in target.version_args.items():
        args[arg] = target.versions[key]
    if target.variant is not None and target.lock:
        args["STACK_LOCK"] = target.lock
    elif target.stack and not target.lock:
        args["STACK_REQUIREMENTS"] = target.stack_requirements()
    if emulated:
        args["UV_COMPILE_BYTECODE_TIMEOUT"] = EMULATED_COMPILE_TIMEOUT
    return args


def build_one(
    cat: Catalogue,
    target: Target,
    opts: BuildOptions,
    rev: Revision,
    root: Path = REPO_ROOT,
    ca_url: str | None = None,
    index_url: str | None = None,
) -> Built:
    """Resolve the base and build one target.

    ``root``: the tree holding the build context; ``ca_url``, ``index_url``: a CA server
    and a package cache (f7tbuild.pkgcache) already running (otherwise they are served
    for this build only).
    """
    base, standin = resolve_base(cat, target, opts)
    refs = local_refs(target, rev, standin, opts.arch)
    digest = None if standin else engine.repo_digest(base)
    labels = image_labels(target, rev, base, digest, standin)
    dockerfile = root / target.dockerfile
    started = time.monotonic()
    if projectwheel.WHEEL_DIR.as_posix() in dockerfile.read_text():
        projectwheel.ensure_wheel(root / target.context)
    wheel_s = time.monotonic() - started
    with ExitStack() as stack:
        url = stack.enter_context(
            ca.serve(opts.ca_bundle) if ca_url is None else nullcontext(ca_url)
        )
        index = stack.enter_context(
            pkgcache.serve(
                opts.ca_bundle,
                prefetch=pkgcache.lock_projects(root),
                pinned=pkgcache.lock_hashes(root),
            )
            if index_url is None
            else nullcontext(index_url)
        )
        if uvbinary.UV_DIR.as_posix() in dockerfile.read_text():
            started = time.monotonic()
            uvbinary.ensure_uv(
                root / target.context, opts.arch or host_arch(), index, opts.ca_bundle
            )
            wheel_s += time.monotonic() - started
        seconds = docker_build(
            BuildRequest(
                name=target.name,
                dockerfile=dockerfile,
                context=root / target.context,
                tags=refs,
                build_args=build_args(
                    target, base, standin, url, rev, index, emulated=opts.arch is not None
                ),
                labels=labels,
                no_cache=opts.no_cache,
                platform=str(opts.platform) if opts.platform is not None else None,
            )
        )
    if opts.arch is not None:
        built_for = engine.inspect(refs[0]).get("Architecture")
        if built_for != opts.arch:
            raise engine.EngineError(
                f"[{target.name}] {refs[0]} came out {built_for}, not {opts.arch}: its base "
                f"{base} is not {opts.platform}; remake it (--rebuild)"
            )
    return Built(target, refs[0], base, standin, wheel_s + seconds, rev.sha)


def check_files(built: Built) -> list[Path]:
    """The check files of one image: its own, then the common ones."""
    return [CHECKS_DIR / f"test_{built.target.family}.py", *(CHECKS_DIR / c for c in COMMON_CHECKS)]


def check_command(built: Built, ca_bundle: Path | None) -> list[str]:
    """The pytest command running one image's testinfra checks."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *(str(f) for f in check_files(built)),
        "-p",
        "no:cacheprovider",
        "-rA",
        f"--image-ref={built.ref}",
        f"--base-ref={built.base}",
        f"--image-target={built.target.name}",
    ]
    if built.target.variant:
        cmd.append(f"--image-variant={built.target.variant}")
    if ca_bundle is not None:
        cmd.append(f"--ca-bundle={ca_bundle}")
    return cmd


def run_checks(built: Built, ca_bundle: Path | None) -> bool:
    """Run the image's checks, streamed as ``[<name>:checks] ...``; True if they pass.

    A pass is recorded for the image's id (f7tbuild.checkpass): publish needs it.
    """
    files = check_files(built)
    missing = [f for f in files if not f.is_file()]
    if missing:
        warn(
            f"[{built.target.name}] no checks: {', '.join(map(str, missing))} missing "
            "(write it: every image is checked)"
        )
        return False
    names = [str(f.relative_to(REPO_ROOT)) for f in files]
    status(f"[{built.target.name}] checks: {' '.join(names)} on {built.ref}")
    image_id = engine.image_id(built.ref)
    rc = engine.stream(
        check_command(built, ca_bundle),
        lambda line: prefixed(f"{built.target.name}:checks", line),
        cwd=str(REPO_ROOT),
    )
    status(f"[{built.target.name}] checks {'passed' if rc == 0 else f'FAILED (pytest exit {rc})'}")
    if rc == 0:
        if engine.image_id(built.ref) != image_id:
            warn(f"[{built.target.name}] {built.ref} changed while checked: no pass recorded")
            return False
        marker = checkpass.record(image_id, built.ref, names, built.revision)
        status(f"[{built.target.name}] pass recorded for {image_id[:19]} ({marker.name})")
    return rc == 0


def build_all(cat: Catalogue, names: list[str], opts: BuildOptions) -> int:
    """Build (and check) every selected target; non-zero if any build or check failed."""
    rev = current_revision(cat.source)
    results: list[tuple[str, str]] = []
    failed = False
    with ExitStack() as stack:
        # One CA server and one package cache for every image: the variants share wheels.
        ca_url = stack.enter_context(ca.serve(opts.ca_bundle))
        index_url = stack.enter_context(
            pkgcache.serve(
                opts.ca_bundle,
                prefetch=pkgcache.lock_projects(REPO_ROOT),
                pinned=pkgcache.lock_hashes(REPO_ROOT),
            )
        )
        failed = _build_and_check(cat, names, opts, rev, results, ca_url, index_url)
    status("summary:")
    for ref, state in results:
        status(f"  {ref}: {state}")
    if failed:
        return 1
    if opts.keep_builds > 0:
        clean_up(cat, opts.keep_builds, [ref for ref, _ in results])
    return 0


def clean_up(cat: Catalogue, keep: int, built: list[str]) -> None:
    """Housekeeping after a successful build (f7tbuild.housekeeping): earlier builds of
    our images go, ``keep`` per image stay, ``built`` (this run's) are never removed.

    Prints one summary line; a failure is a warning, never a failed build.
    """
    try:
        result = housekeeping.housekeep(
            housekeeping.our_repositories(cat.families()),
            keep,
            protect=[*built, *housekeeping.current_refs(cat.targets)],
        )
    except Exception as exc:  # noqa: BLE001  (whatever went wrong, a good build stays good)
        warn(
            f"housekeeping failed ({type(exc).__name__}: {exc}); the builds are fine, "
            "earlier ones are still on disk: `nox -s clean-images` removes them"
        )
        return
    for left in result.skipped:
        warn(f"housekeeping left {housekeeping.describe(left)}: {left.reason}")
    status(result.summary())


def _build_and_check(
    cat: Catalogue,
    names: list[str],
    opts: BuildOptions,
    rev: Revision,
    results: list[tuple[str, str]],
    ca_url: str,
    index_url: str,
) -> bool:
    """Build and check each selected target, appending to ``results``; True if any failed."""
    failed = False
    for target in cat.select(names):
        try:
            built = build_one(cat, target, opts, rev, ca_url=ca_url, index_url=index_url)
        except RuntimeError as exc:
            warn(str(exc))
            results.append((target.name, "BUILD FAILED"))
            failed = True
            continue
        if opts.checks and not run_checks(built, opts.ca_bundle):
            results.append((built.ref, "built, CHECKS FAILED"))
            failed = True
        else:
            results.append(
                (built.ref, f"built in {built.seconds:.0f}s" + (", checked" if opts.checks else ""))
            )
    return failed
