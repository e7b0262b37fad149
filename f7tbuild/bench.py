"""``bench``: build times against an upstream-style build, image sizes, against targets.

Per image, in one run on the same base (stand-in bases already made, real ones pulled)
and on the same builder (BuildKit when our Dockerfile needs it, f7tbuild.dockerbuild):

- upstream cold: ``benchmarks/upstream/<family>.Dockerfile`` (one unpinned ``pip
  install`` of the stack and the spawner, as the seed deployment did), ``--no-cache``;
- cold: our build, ``--no-cache``, with an empty package cache (f7tbuild.pkgcache: every
  wheel downloaded, as on a fresh machine); the ratio cold / upstream cold is the figure;
- cold, cache warm: our build, ``--no-cache`` again, now with the package cache the cold
  build filled (no layer cache, no downloads: a machine that built before, or CI with a
  cache keyed on the locks); its ratio is printed beside the first;
- rebuild: an ordinary build right after the ``--no-cache`` one (every layer must come
  from the cache), ours and upstream's;
- warm: the same build after a one-line change in firecrestspawner/, made in a temporary
  copy of the build context (the work tree is never modified).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from f7tbuild import ca, engine, pkgcache, uvbinary
from f7tbuild.build import BuildOptions, build_one, resolve_base
from f7tbuild.catalogue import REPO_ROOT, Catalogue, Target
from f7tbuild.dockerbuild import BuildRequest, needs_buildkit
from f7tbuild.dockerbuild import run as docker_build
from f7tbuild.labels import pinned_versions
from f7tbuild.lint import project_files
from f7tbuild.output import status
from f7tbuild.tags import current_revision

MB = 1_000_000
# Targets (issue 2): warm/cold ratio for the hub; size over the base per family.
RATIO_TARGET = {"hub": 0.10}
# Targets (issue 8): our cold build / the upstream-style cold build, same base, same run.
UPSTREAM_TARGET = {"hub": 0.25, "singleuser": 0.5}
UPSTREAM_DIR = REPO_ROOT / "benchmarks" / "upstream"
SIZE_TARGET_MB = {"chp": 15.0, "singleuser": 250.0}
CHANGED_FILE = Path("firecrestspawner") / "__init__.py"


@dataclass(frozen=True)
class Result:
    """Measured figures of one target."""

    name: str
    family: str
    ref: str
    base: str
    cold_s: float
    warm_s: float
    size_mb: float
    base_mb: float
    rebuild_s: float = float("nan")
    upstream_cold_s: float | None = None
    upstream_rebuild_s: float | None = None
    cold_cached_s: float | None = None
    builder: str = "classic"

    @property
    def vs_upstream(self) -> float | None:
        """cold (empty package cache) / upstream cold."""
        return self.cold_s / self.upstream_cold_s if self.upstream_cold_s else None

    @property
    def cached_vs_upstream(self) -> float | None:
        """cold with a warm package cache / upstream cold."""
        if not self.upstream_cold_s or self.cold_cached_s is None:
            return None
        return self.cold_cached_s / self.upstream_cold_s

    @property
    def ratio(self) -> float:
        """warm / cold."""
        return self.warm_s / self.cold_s if self.cold_s else float("nan")

    @property
    def over_mb(self) -> float:
        """Size over the base."""
        return self.size_mb - self.base_mb


def changed_copy(dest: Path) -> Path:
    """Copy the project's files to ``dest`` and append a comment to firecrestspawner/.

    Only files git tracks or does not ignore are copied (no venvs, caches, .build/).
    """
    for src in project_files(REPO_ROOT):
        target = dest / src.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    uv = REPO_ROOT / uvbinary.UV_DIR
    if (uv / "uv").is_file():  # uv's binary, as a previous build on the work tree left it
        shutil.copytree(uv, dest / uvbinary.UV_DIR)
        shutil.copy2(REPO_ROOT / uvbinary.STAMP, dest / uvbinary.STAMP)
    changed = dest / CHANGED_FILE
    with changed.open("a") as fh:
        fh.write("\n# f7tbuild bench: one-line change for the warm rebuild\n")
    return dest


def _verdict(value: float, limit: float | None) -> str:
    if limit is None:
        return "-"
    return "ok" if value <= limit else "MISSED"


def builder_of(target: Target) -> bool:
    """True when our build of ``target`` uses BuildKit (the upstream-style one then does too)."""
    return needs_buildkit(REPO_ROOT / target.dockerfile)


def upstream_request(target: Target, base: str, ca_url: str, no_cache: bool) -> BuildRequest | None:
    """The upstream-style build of ``target`` on ``base`` (None: no such Dockerfile).

    It runs on the builder ours uses (BuildKit or the classic one), for a fair comparison.
    """
    dockerfile = UPSTREAM_DIR / f"{target.family}.Dockerfile"
    if not dockerfile.is_file():
        return None
    pins = " ".join(f"{n}=={v}" for n, v in pinned_versions(target).items())
    return BuildRequest(
        name=f"{target.name}:upstream",
        dockerfile=dockerfile,
        context=REPO_ROOT,
        tags=[f"f7t4jhub/bench-upstream:{target.name}"],
        build_args={"BASE_IMAGE": base, "CA_URL": ca_url, "STACK_REQUIREMENTS": pins},
        no_cache=no_cache,
        buildkit=builder_of(target),
    )


def upstream_table(results: list[Result]) -> str:
    """Markdown table: our cold build against upstream's, and rebuilds after --no-cache."""
    lines = [
        (
            "| image | builder (both) | upstream cold s | our cold s (package cache empty) | ours/upstream "
            "| our cold s (package cache warm) | ours/upstream | target "
            "| rebuild after --no-cache s (ours / upstream) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    nan = float("nan")
    for r in results:
        if r.upstream_cold_s is None or r.vs_upstream is None:
            continue
        target = UPSTREAM_TARGET.get(r.family)
        cached = r.cached_vs_upstream
        verdict = (
            f"<= {target:.2f}: empty {_verdict(r.vs_upstream, target)}, "
            f"warm {_verdict(cached if cached is not None else nan, target)}"
            if target
            else "-"
        )
        lines.append(
            f"| {r.ref} | {r.builder} | {r.upstream_cold_s:.1f} | {r.cold_s:.1f} | {r.vs_upstream:.2f} | "
            f"{r.cold_cached_s if r.cold_cached_s is not None else nan:.1f} | "
            f"{cached if cached is not None else nan:.2f} | "
            f"{verdict} | {r.rebuild_s:.1f} / {r.upstream_rebuild_s or nan:.1f} |"
        )
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    """Markdown table of the figures with the targets beside them."""
    lines = [
        "| image | base | cold s | warm s | warm/cold | target | size MB | over base MB | target |",
        "|---|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in results:
        rt = RATIO_TARGET.get(r.family)
        st = SIZE_TARGET_MB.get(r.family)
        lines.append(
            f"| {r.ref} | {r.base} | {r.cold_s:.1f} | {r.warm_s:.1f} | {r.ratio:.3f} | "
            f"{f'<= {rt:.2f} ' + _verdict(r.ratio, rt) if rt is not None else '-'} | "
            f"{r.size_mb:.1f} | {r.over_mb:.1f} | "
            f"{f'<= {st:.0f} ' + _verdict(r.over_mb, st) if st is not None else '-'} |"
        )
    return "\n".join(lines)


def machine() -> str:
    """One line describing this machine and engine."""
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs{mem}, Docker {engine.require_engine()}"
    )


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews every figure)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def measure(cat: Catalogue, target: Target, opts: BuildOptions) -> Result:
    """Upstream-style cold build, our cold build, rebuilds after them, warm rebuild, sizes."""
    rev = current_revision(cat.source)
    # One CA server for all builds: the same CA_URL keeps the cache keys equal. The
    # package cache is a fresh directory: empty for the first cold build, which fills it.
    with ca.serve(opts.ca_bundle) as url, tempfile.TemporaryDirectory(prefix="f7t-bench-") as tmp:
        base, _ = resolve_base(cat, target, opts)
        upstream = upstream_request(target, base, url, no_cache=True)
        upstream_cold = upstream_rebuild = None
        if upstream is not None:
            status(f"[bench] {target.name}: upstream-style cold build (--no-cache) on {base}")
            upstream_cold = docker_build(upstream)
        cold_opts = BuildOptions(**{**opts.__dict__, "no_cache": True})
        packages = Path(tmp) / "packages"
        projects = pkgcache.lock_projects(REPO_ROOT)
        pinned = pkgcache.lock_hashes(REPO_ROOT)
        # uv's binary is taken from its wheel on the host once per lock (f7tbuild.uvbinary):
        # forgotten here, so that the empty-cache build downloads it too.
        uvbinary.clear(REPO_ROOT)
        with pkgcache.serve(
            opts.ca_bundle, directory=packages, prefetch=projects, pinned=pinned
        ) as index:
            status(f"[bench] {target.name}: cold build (--no-cache, package cache empty)")
            cold = build_one(cat, target, cold_opts, rev, ca_url=url, index_url=index)
        with pkgcache.serve(
            opts.ca_bundle, directory=packages, prefetch=projects, pinned=pinned
        ) as index:
            status(f"[bench] {target.name}: cold build (--no-cache, package cache warm)")
            cold_cached = build_one(cat, target, cold_opts, rev, ca_url=url, index_url=index)
            status(f"[bench] {target.name}: ordinary rebuild right after --no-cache (cache reuse)")
            rebuild = build_one(cat, target, opts, rev, ca_url=url, index_url=index)
            if upstream is not None:
                status(f"[bench] {target.name}: upstream-style ordinary rebuild")
                upstream_rebuild = docker_build(
                    upstream_request(target, base, url, no_cache=False)  # type: ignore[arg-type]
                )
            root = changed_copy(Path(tmp) / "ctx")
            status(f"[bench] {target.name}: warm rebuild after a one-line change in {CHANGED_FILE}")
            warm = build_one(cat, target, opts, rev, root=root, ca_url=url, index_url=index)
            # Leave the tagged image built from the work tree, not from the changed copy.
            status(f"[bench] {target.name}: rebuilding from the work tree (cached)")
            build_one(cat, target, opts, rev, ca_url=url, index_url=index)
    return Result(
        name=target.name,
        family=target.family,
        ref=cold.ref,
        base=cold.base,
        cold_s=cold.seconds,
        warm_s=warm.seconds,
        size_mb=engine.image_size(cold.ref) / MB,
        base_mb=engine.image_size(cold.base) / MB,
        rebuild_s=rebuild.seconds,
        upstream_cold_s=upstream_cold,
        upstream_rebuild_s=upstream_rebuild,
        cold_cached_s=cold_cached.seconds,
        builder="BuildKit" if builder_of(target) else "classic",
    )


def bench(
    cat: Catalogue, names: list[str], ca_bundle: Path | None, output: Path | None = None
) -> int:
    """Measure every selected target; print the table; optionally append it to ``output``."""
    opts = BuildOptions(checks=False, ca_bundle=ca_bundle)
    load_start = load_average()
    results = [measure(cat, t, opts) for t in cat.select(names)]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"### {when}\n\nMachine: {machine()}; load average (1 min) {load_start} at the "
        f"start, {load_average()} at the end\n\n{table(results)}\n\n"
        f"Against the upstream-style build (same base, same run; cold = --no-cache for both,"
        f" bases present; ours once with an empty package cache, then with the cache that"
        f" build filled):\n\n{upstream_table(results)}\n"
    )
    print("\n" + text, flush=True)
    if output is not None:
        with output.open("a") as fh:
            fh.write("\n" + text)
        status(f"appended to {output}")
    missed = [
        r.name
        for r in results
        if (r.family in RATIO_TARGET and r.ratio > RATIO_TARGET[r.family])
        or (r.family in SIZE_TARGET_MB and r.over_mb > SIZE_TARGET_MB[r.family])
        or (r.vs_upstream is not None and r.vs_upstream > UPSTREAM_TARGET.get(r.family, 1e9))
    ]
    if missed:
        status(f"targets missed by: {', '.join(missed)}")
    return 0
