"""Every image for a foreign platform under emulation, then one multi-arch index each.

``python -m f7tbuild build-emulated --platform linux/arm64`` (``nox -s build-arm64``), in timed phases:

1. preflight: the engine, qemu through binfmt_misc (cause and fix when missing), crane;
2. stand-ins: the Debian tree of each suite for ``linux/arm64`` (f7tbuild.emulation,
   cached), then the stand-in bases on it (f7t4jhub/arm64/standin-<kind>);
3. every selected image built for ``linux/arm64`` on them (f7t4jhub/arm64/<image>) and
   checked with the same checks as the host's builds (tests/by_image), emulated;
4. the host's own builds of the same commit (built and checked when missing);
5. a registry on loopback: each platform pushed the release's way (``publish
   --platform``), one index per computed tag (f7tbuild.index);
6. inspection from the registry: both platforms in every index, each pulled by the
   index digest for its platform, the very image built, and run: ``uname -m``.

Each phase prints its duration; a summary table and ``timings.json`` end the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from f7tbuild import checkpass, engine, tools
from f7tbuild.build import BuildOptions, Built, build_one, run_checks
from f7tbuild.catalogue import REPO_ROOT, Catalogue, Target
from f7tbuild.emulation import make_rootfs
from f7tbuild.output import status, warn
from f7tbuild.platforms import Platform, binfmt_problem, foreign_arch, host_arch
from f7tbuild.standin import make_standins
from f7tbuild.tags import Revision, current_revision, local_refs

DEFAULT_OUT = REPO_ROOT / "build" / "multiarch"


class CrossBuildError(RuntimeError):
    """A phase failed; the message names the cause and the fix."""


@dataclass
class Phases:
    """Named, timed phases with start/end lines and a summary."""

    clock: Callable[[], float] = time.monotonic
    emit: Callable[[str], None] = status
    done: list[tuple[str, float, str]] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase; a failure is recorded as FAILED and raised on."""
        start = self.clock()
        self.emit(f"phase {name}: started")
        state = "ok"
        try:
            yield
        except BaseException:
            state = "FAILED"
            raise
        finally:
            took = self.clock() - start
            self.done.append((name, took, state))
            self.emit(f"phase {name}: {state if state != 'ok' else 'done'} in {fmt(took)}")

    def summary(self) -> list[str]:
        """One line per phase and the total."""
        width = max((len(n) for n, _, _ in self.done), default=5)
        lines = [f"{n:<{width}}  {fmt(t):>8}  {s}" for n, t, s in self.done]
        lines.append(f"{'total':<{width}}  {fmt(sum(t for _, t, _ in self.done)):>8}")
        return lines

    def as_json(self) -> list[dict[str, Any]]:
        return [{"phase": n, "seconds": round(t, 1), "state": s} for n, t, s in self.done]


def fmt(seconds: float) -> str:
    """``42.0s`` or ``12m05s``."""
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def preflight(plat: Platform, host: str | None = None) -> None:
    """The engine, qemu for ``plat`` and crane are usable; else CrossBuildError."""
    host = host or host_arch()
    if foreign_arch(plat, host) is None:
        raise CrossBuildError(
            f"{plat} is this host's own platform: build it with `nox -s build` (no emulation)"
        )
    status(f"Docker engine {engine.require_engine()}; host {host}, building {plat} under qemu")
    problem = binfmt_problem(plat)
    if problem:
        raise CrossBuildError(problem)
    tools.find("crane")


def standin_kinds(targets: list[Target]) -> list[str]:
    """The stand-in kinds the targets are built on, in first-use order."""
    kinds: list[str] = []
    for target in targets:
        if target.standin not in kinds:
            kinds.append(target.standin)
    return kinds


def wanted_platforms(targets: list[Target], plat: Platform) -> list[Target]:
    """The targets whose catalogue ``platforms`` list ``plat`` (others are skipped, named)."""
    keep = []
    for target in targets:
        if any(Platform.parse(p).arch == plat.arch for p in target.platforms):
            keep.append(target)
        else:
            warn(f"[{target.name}] catalogue platforms {list(target.platforms)} lack {plat}: skipped")
    return keep


def host_build(cat: Catalogue, target: Target, rev: Revision, opts: BuildOptions) -> str:
    """The host's checked stand-in build of ``target`` at ``rev``: reused, or made now."""
    ref = local_refs(target, rev, standin=True)[0]
    if engine.image_exists(ref) and checkpass.lookup(engine.image_id(ref)) is not None:
        status(f"[{target.name}] host build {ref}: present and checked")
        return ref
    status(f"[{target.name}] host build {ref}: missing or unchecked, building it now")
    built = build_one(cat, target, BuildOptions(base="standin", ca_bundle=opts.ca_bundle), rev)
    if not run_checks(built, opts.ca_bundle):
        raise CrossBuildError(f"[{target.name}] the checks of the host build {built.ref} failed")
    return built.ref


def pull_platform(repository: str, digest: str, plat: Platform) -> str:
    """Pull ``repository@digest`` for ``plat`` (Docker SDK); return the local image id.

    The engine keeps one image per reference: the reference left by the previous
    platform's pull is removed first (only that name; the image keeps its own tags), so
    the answer is this platform's image.
    """
    engine.remove_image(f"{repository}@{digest}")
    try:
        image = engine.client(1800).images.pull(
            repository, tag=digest, platform=f"{plat}"
        )
    except docker.errors.DockerException as exc:
        raise CrossBuildError(f"docker pull --platform {plat} {repository}@{digest}: {exc}") from None
    return str(image.id)


def machine_of(image_id: str, plat: Platform) -> str:
    """``uname -m`` in a throw-away container of ``image_id``."""
    return engine.run_output(image_id, ["-m"], timeout=300, entrypoint=["uname"], user="").strip()


@dataclass
class Result:
    """What happened to one image."""

    name: str
    refs: dict[str, str] = field(default_factory=dict)  # platform -> local ref
    build_seconds: float = 0.0
    checks_seconds: float = 0.0
    state: str = "pending"
    index: str = ""
    machines: dict[str, str] = field(default_factory=dict)
    image_ids: dict[str, str] = field(default_factory=dict)  # platform -> image id pushed


def run(
    cat: Catalogue,
    names: list[str],
    platform: str = "linux/arm64",
    opts: BuildOptions | None = None,
    index: bool = True,
    out_dir: Path = DEFAULT_OUT,
) -> int:
    """The whole session (module docstring); returns the exit status."""
    plat = Platform.parse(platform)
    opts = opts or BuildOptions()
    opts.platform = plat
    opts.base = "standin"
    host = Platform.parse(host_arch())
    phases = Phases()
    results: dict[str, Result] = {}
    failed = False
    started = time.monotonic()
    try:
        with phases.phase("preflight"):
            preflight(plat)
            targets = wanted_platforms(cat.select(names), plat)
            rev = current_revision(cat.source)
            status(f"images for {plat}: {', '.join(t.name for t in targets)} at {rev.short}")
        kinds = standin_kinds(targets)
        for suite in dict.fromkeys(cat.standin(k).suite for k in kinds):
            with phases.phase(f"rootfs {suite} {plat.arch} (debootstrap or cache)"):
                make_rootfs(suite, plat, rebuild=opts.rebuild_rootfs)
        with phases.phase(f"stand-in bases {plat.arch}"):
            refs = make_standins(
                cat, kinds, rebuild=opts.rebuild, ca_bundle=opts.ca_bundle, platform=plat,
            )
            opts._remade.update(kinds)  # made (or remade) once: the builds reuse them
            status(f"stand-ins for {plat}: {', '.join(refs)}")
        for n, target in enumerate(targets, 1):
            res = results.setdefault(target.name, Result(target.name))
            status(f"[{target.name}] image {n}/{len(targets)} for {plat} "
                   f"({fmt(time.monotonic() - started)} into the run)")
            try:
                with phases.phase(f"build {target.name} {plat.arch}"):
                    built: Built = build_one(cat, target, opts, rev)
                    res.refs[str(plat)] = built.ref
                    res.build_seconds = built.seconds
            except (RuntimeError, engine.EngineError) as exc:
                warn(str(exc))
                res.state = "BUILD FAILED"
                failed = True
                continue
            if not opts.checks:
                res.state = "built, not checked"
                continue
            if checkpass.lookup(engine.image_id(built.ref)) is not None:
                status(f"[{target.name}] checks already passed for this image id: not re-run")
                res.state = "built, checked"
                continue
            try:
                with phases.phase(f"checks {target.name} {plat.arch}"):
                    t0 = time.monotonic()
                    ok = run_checks(built, opts.ca_bundle)
                    res.checks_seconds = time.monotonic() - t0
                    if not ok:
                        raise CrossBuildError(f"[{target.name}] checks failed under emulation")
                res.state = "built, checked"
            except CrossBuildError as exc:
                warn(str(exc))
                res.state = "CHECKS FAILED"
                failed = True
        ready = [t for t in targets if results[t.name].state == "built, checked"]
        if index and ready:
            with phases.phase(f"host builds {host.arch}"):
                for target in ready:
                    results[target.name].refs[str(host)] = host_build(cat, target, rev, opts)
            _index_phases(cat, ready, rev, plat, host, phases, results, out_dir)
        elif index:
            warn("no image was built and checked for both platforms: no index assembled")
    except CrossBuildError as exc:
        warn(str(exc))
        failed = True
    except (RuntimeError, engine.EngineError) as exc:
        warn(f"{type(exc).__name__}: {exc}")
        failed = True
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "timings.json").write_text(
        json.dumps(
            {"platform": str(plat), "phases": phases.as_json(),
             "images": [r.__dict__ for r in results.values()]},
            indent=2,
        )
        + "\n"
    )
    status(f"phases ({plat} under emulation):")
    for line in phases.summary():
        status(f"  {line}")
    status("images:")
    for res in results.values():
        extra = f", index {res.index}" if res.index else ""
        machines = ", ".join(f"{p}: {m}" for p, m in res.machines.items())
        status(f"  {res.name}: {res.state}{extra}" + (f" ({machines})" if machines else ""))
    status(f"timings: {out_dir / 'timings.json'}")
    return 1 if failed else 0


def _index_phases(
    cat: Catalogue,
    ready: list[Target],
    rev: Revision,
    plat: Platform,
    host: Platform,
    phases: Phases,
    results: dict[str, Result],
    out_dir: Path,
) -> None:
    from f7tbuild import loopreg
    from f7tbuild.index import assemble, platforms_of
    from f7tbuild.publish import Policy, publish_one, write_summary

    # Stand-in builds may go to a loopback registry only (f7tbuild.publish.Policy).
    policy = Policy(allow_standin=True, allow_dirty=True)
    work = out_dir / "registry"
    with loopreg.serve(work) as registry:
        status(f"loopback registry {registry} (crane registry serve, blobs in {work})")
        pushed_refs: list[str] = []
        try:
            with phases.phase("push both platforms to the loopback registry"):
                dirs = []
                for p in (host, plat):
                    pub_dir = out_dir / f"publish-{p.arch}"
                    done = [
                        publish_one(cat, t, registry, rev, pub_dir, policy, platform=str(p))
                        for t in ready
                    ]
                    write_summary(pub_dir, done)
                    pushed_refs += [f"{d.repository}:{tag}" for d in done for tag in d.tags]
                    dirs.append(pub_dir)
                    for d in done:
                        results[d.target].refs[f"{p} pushed"] = d.ref
                        results[d.target].image_ids[str(p)] = d.image_id
            with phases.phase("assemble the multi-arch indexes"):
                indexes = assemble(dirs)
                # The inspection's pulls leave <registry>/<image>@<index digest> behind.
                pushed_refs += [idx.ref for idx in indexes]
            with phases.phase("inspect: platforms present, each pulled and run"):
                for idx in indexes:
                    res = results[idx.target]
                    res.machines = inspect_index(
                        idx, platforms_of(idx.ref), (host, plat), res.image_ids
                    )
                    res.index = idx.ref
        finally:
            for ref in pushed_refs:
                engine.remove_image(ref)


def inspect_index(
    idx: Any, listed: list[str], plats: tuple[Platform, ...], image_ids: dict[str, str]
) -> dict[str, str]:
    """Check one pushed index (f7tbuild.index.Index): every platform of ``plats`` listed;
    each, pulled through the index digest with ``--platform``, is the image pushed
    (``image_ids``: platform -> image id) and runs as its architecture (``uname -m``).

    Returns platform -> ``uname -m``; raises CrossBuildError naming what is wrong.
    """
    have = {"/".join(p.split("/")[:2]) for p in listed}
    want = {str(p) for p in plats}
    if not want <= have:
        raise CrossBuildError(
            f"[{idx.target}] index {idx.ref} lists {sorted(listed)}, not {sorted(want)}"
        )
    machines: dict[str, str] = {}
    for p in plats:
        image_id = pull_platform(idx.repository, idx.digest, p)
        local = engine.inspect(image_id)
        if local.get("Architecture") != p.arch:
            raise CrossBuildError(
                f"[{idx.target}] docker pull --platform {p} of {idx.ref} gave a "
                f"{local.get('Architecture')} image"
            )
        if image_id != image_ids.get(str(p)):
            raise CrossBuildError(
                f"[{idx.target}] the {p} image pulled through {idx.ref} is {image_id[:19]}, "
                f"not the image built and pushed ({image_ids.get(str(p), '?')[:19]})"
            )
        problem = binfmt_problem(p) if foreign_arch(p) is not None else None
        if problem:
            raise CrossBuildError(f"[{idx.target}] cannot run the {p} image here: {problem}")
        machine = machine_of(image_id, p)
        if machine != p.machine:
            raise CrossBuildError(
                f"[{idx.target}] {p} image {image_id[:19]} runs as {machine!r}, not {p.machine}"
            )
        machines[str(p)] = machine
        status(f"[{idx.target}] {idx.ref} {p}: pulled {image_id[:19]}, uname -m = {machine}")
    return machines


def inspect_published(indexes: list[Any], entries: list[dict[str, Any]]) -> None:
    """``publish-index --inspect``: inspect_index for each index, the expected image ids
    read from the per-platform ``published.json`` entries."""
    from f7tbuild.index import platforms_of

    for idx in indexes:
        ids = {e["platform"]: e["image_id"] for e in entries if e["target"] == idx.target}
        plats = tuple(Platform.parse(p) for p in sorted(ids))
        inspect_index(idx, platforms_of(idx.ref), plats, ids)
