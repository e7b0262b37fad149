"""Stand-in root file systems for a foreign architecture, made under qemu emulation.

``debootstrap --arch=<arch> --foreign`` unpacks the packages (host programs only), then
``chroot <dir> /debootstrap/debootstrap --second-stage`` configures them with the
foreign programs, which the kernel runs through qemu-user-static (binfmt_misc, checked
first: f7tbuild.platforms.binfmt_problem). The tree is kept as a layer tar in a cache
(``/var/cache/f7t4jhub/rootfs``, or ``$F7T_ROOTFS_CACHE``), so that only the first run
pays for debootstrap.

The Docker 20.10 engine records every ``docker import`` as the host's architecture
(it ignores ``--platform``), so the image is written here in ``docker save`` form, one
layer with a config naming the architecture, and loaded through the Docker SDK: the
engine then runs it, and builds on it, as ``linux/<arch>``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from f7tbuild import engine
from f7tbuild.mirror import host_mirror
from f7tbuild.output import prefixed, status
from f7tbuild.platforms import Platform, binfmt_problem, local_repository

CACHE_DIR = Path(os.environ.get("F7T_ROOTFS_CACHE", "/var/cache/f7t4jhub/rootfs"))
ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class EmulationError(RuntimeError):
    """A foreign-architecture root file system could not be made (cause and fix inside)."""


def rootfs_ref(suite: str, arch: str) -> str:
    """Local name of the imported tree: ``f7t4jhub/<arch>/standin-rootfs:<suite>``."""
    return f"{local_repository('standin-rootfs', arch)}:{suite}"


def first_stage_command(suite: str, arch: str, target: Path, mirror: str) -> list[str]:
    """debootstrap's unpack-only stage for a foreign architecture."""
    return [
        "debootstrap",
        f"--arch={arch}",
        "--variant=minbase",
        "--foreign",
        suite,
        str(target),
        mirror,
    ]


def second_stage_command(target: Path) -> list[str]:
    """The configure stage, run by the tree's own (emulated) programs."""
    return ["chroot", str(target), "/debootstrap/debootstrap", "--second-stage"]


@dataclass(frozen=True)
class CachedRootfs:
    """A cached tree: the layer tar and what is known about it."""

    layer: Path
    meta: Path

    @classmethod
    def at(cls, suite: str, arch: str, cache_dir: Path | None = None) -> CachedRootfs:
        base = (cache_dir or CACHE_DIR) / f"{suite}-{arch}"
        return cls(base.with_suffix(".tar"), base.with_suffix(".json"))

    def read(self) -> dict[str, Any] | None:
        """The metadata when both files are there and agree in size, else None."""
        if not (self.layer.is_file() and self.meta.is_file()):
            return None
        try:
            data = dict(json.loads(self.meta.read_text()))
        except (OSError, ValueError):
            return None
        if data.get("size") != self.layer.stat().st_size or not data.get("diff_id"):
            return None
        return data


def image_config(
    arch: str, variant: str, diff_id: str, labels: dict[str, str], created: str
) -> dict[str, Any]:
    """The OCI/Docker image config of a one-layer image for ``linux/<arch>``."""
    config: dict[str, Any] = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {"Env": [ENV_PATH], "Cmd": ["/bin/bash"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "f7tbuild.emulation (debootstrap)"}],
    }
    if variant:
        config["variant"] = variant
    return config


def write_image_tar(
    out: Path, layer: Path, diff_id: str, ref: str, config: dict[str, Any]
) -> str:
    """Write a ``docker save``-format tar (manifest.json, config, one layer); return the
    image id the engine will give it (the config's digest)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = hashlib.sha256(blob).hexdigest()
    layer_dir = diff_id.split(":", 1)[1]
    manifest = [
        {
            "Config": f"{config_digest}.json",
            "RepoTags": [ref],
            "Layers": [f"{layer_dir}/layer.tar"],
        }
    ]
    with tarfile.open(out, "w") as tar:
        for name, data in (
            (f"{config_digest}.json", blob),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
        tar.add(str(layer), arcname=f"{layer_dir}/layer.tar")
    return f"sha256:{config_digest}"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _run(cmd: list[str], tag: str, fail: str) -> None:
    start = time.monotonic()
    lines = 0
    last = start

    def on_line(line: str) -> None:
        nonlocal lines, last
        lines += 1
        prefixed(tag, line)
        now = time.monotonic()
        if now - last > 30:  # a quiet long stage still shows it is alive
            status(f"[{tag}] {now - start:.0f}s so far")
            last = now

    rc = engine.stream(cmd, on_line)
    if rc != 0:
        raise EmulationError(f"{fail} (exit {rc} after {time.monotonic() - start:.0f}s); see above")


def mounts_below(root: Path, mounts_text: str) -> list[str]:
    """Mount points at or under ``root`` in ``/proc/mounts`` text, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point == str(root) or point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_below(root: Path) -> None:
    """Unmount whatever is mounted in the tree (before it is tarred or deleted)."""
    for point in mounts_below(root, Path("/proc/mounts").read_text()):
        subprocess.run(["umount", "-l", point], check=False, timeout=60)


def debootstrap_layer(
    suite: str, plat: Platform, cached: CachedRootfs, mirror: str | None = None
) -> dict[str, Any]:
    """debootstrap ``suite`` for ``plat`` into the cache; return its metadata."""
    if shutil.which("debootstrap") is None:
        raise EmulationError("debootstrap is not installed: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise EmulationError("debootstrap and chroot need root: run nox -s build-arm64 as root")
    problem = binfmt_problem(plat)
    if problem:
        raise EmulationError(problem)
    mirror = mirror or host_mirror()
    cached.layer.parent.mkdir(parents=True, exist_ok=True)
    tag = f"rootfs:{suite}/{plat.arch}"
    with tempfile.TemporaryDirectory(prefix=f"f7t-rootfs-{suite}-{plat.arch}-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        start = time.monotonic()
        status(f"[{tag}] debootstrap --foreign from {mirror} (the host's apt mirror)")
        _run(
            first_stage_command(suite, plat.arch, root, mirror),
            tag,
            f"debootstrap --arch={plat.arch} {suite} failed: check the mirror {mirror}",
        )
        first = time.monotonic() - start
        status(f"[{tag}] first stage done in {first:.0f}s; second stage under qemu (slow)")
        try:
            _run(
                second_stage_command(root),
                tag,
                f"the second stage in the {plat.arch} chroot failed: are {plat.arch} programs "
                f"run by qemu? (cat /proc/sys/fs/binfmt_misc/{plat.qemu})",
            )
        finally:
            unmount_below(root)  # proc/sys the second stage may leave mounted
        second = time.monotonic() - start - first
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        shutil.rmtree(root / "debootstrap", ignore_errors=True)
        partial = cached.layer.with_suffix(".tar.part")
        rc = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
            check=False,
            timeout=1800,
        ).returncode
        if rc != 0:
            partial.unlink(missing_ok=True)
            raise EmulationError(f"tar of the {suite}/{plat.arch} tree failed (exit {rc})")
    partial.replace(cached.layer)
    size = cached.layer.stat().st_size
    meta: dict[str, Any] = {
        "suite": suite,
        "arch": plat.arch,
        "variant": plat.variant,
        "mirror": mirror,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "diff_id": _sha256_file(cached.layer),
        "size": size,
        "seconds": {"first_stage": round(first, 1), "second_stage": round(second, 1)},
    }
    cached.meta.write_text(json.dumps(meta, indent=2) + "\n")
    status(f"[{tag}] cached {cached.layer} ({size / 1e6:.0f} MB)")
    return meta


def load_image(tar_path: Path, client_timeout: float = 1800) -> None:
    """``docker load`` a tar through the Docker SDK."""
    try:
        with tar_path.open("rb") as fh:
            engine.client(client_timeout).images.load(fh)
    except docker.errors.DockerException as exc:
        raise EmulationError(f"docker load of {tar_path} failed: {exc}") from None


def make_rootfs(
    suite: str,
    plat: Platform,
    rebuild: bool = False,
    mirror: str | None = None,
    cache_dir: Path | None = None,
    labels: dict[str, str] | None = None,
    inspect: Callable[[str], dict[str, Any]] = engine.inspect,
) -> str:
    """The ``linux/<arch>`` stand-in tree of ``suite`` as a local image; returns its ref.

    Reused when the image exists (and is of that architecture); else loaded from the
    cache; else debootstrapped (``rebuild``: always debootstrapped).
    """
    ref = rootfs_ref(suite, plat.arch)
    if not rebuild and engine.image_exists(ref):
        have = inspect(ref).get("Architecture")
        if have == plat.arch:
            status(f"reusing {ref} ({plat}; --rebuild-rootfs remakes it)")
            return ref
        status(f"{ref} is {have}, not {plat.arch}: making it again")
    cached = CachedRootfs.at(suite, plat.arch, cache_dir)
    meta = None if rebuild else cached.read()
    if meta is None:
        meta = debootstrap_layer(suite, plat, cached, mirror)
    else:
        status(f"[rootfs:{suite}/{plat.arch}] from the cache {cached.layer} ({meta['created']})")
    all_labels = {"org.f7t4jhub.standin": "true", "org.f7t4jhub.standin.suite": suite}
    all_labels.update(labels or {})
    config = image_config(plat.arch, plat.variant, meta["diff_id"], all_labels, meta["created"])
    with tempfile.TemporaryDirectory(prefix="f7t-image-", dir="/var/tmp") as tmp:
        tar_path = Path(tmp) / "image.tar"
        image_id = write_image_tar(tar_path, cached.layer, meta["diff_id"], ref, config)
        status(f"docker load {ref} as {plat} (Docker SDK)")
        load_image(tar_path)
    got = inspect(ref)
    if got.get("Id") != image_id or got.get("Architecture") != plat.arch:
        raise EmulationError(
            f"{ref} loaded as {got.get('Architecture')} {str(got.get('Id'))[:19]}, expected "
            f"{plat.arch} {image_id[:19]}: the cache may be damaged, rerun with --rebuild-rootfs"
        )
    return ref
