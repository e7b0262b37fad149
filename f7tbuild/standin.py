"""Stand-in base images from Debian packages, for when a real base cannot be pulled.

debootstrap --variant=minbase <suite> (mirror from the host's apt sources) -> docker
import as ``f7t4jhub/standin-rootfs:<suite>`` -> images/standin/<kind>/Dockerfile adds
what the kind needs -> ``f7t4jhub/standin-<kind>:latest``, labelled
``org.f7t4jhub.standin=true``. Existing images are reused unless ``rebuild``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker.errors

from f7tbuild import ca, engine
from f7tbuild.catalogue import REPO_ROOT, Catalogue, Standin
from f7tbuild.dockerbuild import BuildRequest
from f7tbuild.dockerbuild import run as docker_build
from f7tbuild.mirror import host_mirror
from f7tbuild.output import prefixed, status
from f7tbuild.platforms import Platform, foreign_arch, local_repository

STANDIN_LABEL = "org.f7t4jhub.standin"
STANDIN_DIR = REPO_ROOT / "images" / "standin"


class StandinError(RuntimeError):
    """A stand-in could not be made; the message says why and what to do."""


def version_args(versions: dict[str, str]) -> dict[str, str]:
    """Build args for pinned versions: ``npm`` -> ``NPM_VERSION``."""
    return {f"{k.upper().replace('-', '_')}_VERSION": v for k, v in versions.items()}


def debootstrap_command(suite: str, target: Path, mirror: str) -> list[str]:
    """The debootstrap command line for a minimal tree."""
    return ["debootstrap", "--variant=minbase", suite, str(target), mirror]


def make_rootfs(suite: str, rebuild: bool = False, mirror: str | None = None) -> str:
    """Import a debootstrapped ``suite`` tree as ``f7t4jhub/standin-rootfs:<suite>``."""
    ref = f"f7t4jhub/standin-rootfs:{suite}"
    if not rebuild and engine.image_exists(ref):
        status(f"reusing {ref} (use --rebuild to remake it)")
        return ref
    if shutil.which("debootstrap") is None:
        raise StandinError("debootstrap is not installed: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise StandinError("debootstrap needs root: run the standins step as root")
    mirror = mirror or host_mirror()
    status(f"debootstrap {suite} from {mirror} (mirror read from the host's apt sources)")
    with tempfile.TemporaryDirectory(prefix=f"f7t-rootfs-{suite}-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        rc = engine.stream(
            debootstrap_command(suite, root, mirror),
            lambda line: prefixed(f"rootfs:{suite}", line),
        )
        if rc != 0:
            raise StandinError(
                f"debootstrap {suite} failed (exit {rc}); check the mirror {mirror} "
                "in the host's apt sources and the lines above"
            )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        status(f"docker import {ref} (Docker SDK)")
        changes = [
            f"LABEL {STANDIN_LABEL}=true",
            f"LABEL org.f7t4jhub.standin.suite={suite}",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["/bin/bash"]',
        ]
        repo, tag = engine.split_ref(ref)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            answer = engine.client(timeout=1800).api.import_image(
                src=iter(lambda: tar.stdout.read(1 << 20), b""),  # type: ignore[union-attr]
                repository=repo,
                tag=tag,
                changes=changes,
                stream_src=True,
            )
        except docker.errors.DockerException as exc:
            tar.kill()
            raise StandinError(f"docker import of {suite} failed: {exc}") from None
        finally:
            tar.stdout.close()
        tar_rc = tar.wait()
        if tar_rc != 0 or "error" in str(answer).lower() or not engine.image_exists(ref):
            raise StandinError(
                f"docker import of {suite} failed (tar exit {tar_rc}): {str(answer)[-500:]}"
            )
    return ref


def standin_ref(spec: Standin, arch: str | None = None) -> str:
    """Local name of a stand-in base; ``arch``: a foreign architecture (emulated build)."""
    return spec.ref if arch is None else f"{local_repository(f'standin-{spec.kind}', arch)}:latest"


def emulated_dockerfile(kind: str) -> Path | None:
    """``images/standin/<kind>/Dockerfile.emulated``, used instead of the Dockerfile for a
    foreign platform (under qemu) when present; None when absent."""
    path = STANDIN_DIR / kind / "Dockerfile.emulated"
    return path if path.is_file() else None


def build_standin(
    spec: Standin,
    rebuild: bool = False,
    ca_bundle: Path | None = None,
    rebuild_rootfs: bool = False,
    platform: Platform | None = None,
) -> str:
    """Make (or reuse) the stand-in base of one kind; return its reference.

    ``platform``: a foreign platform, built under emulation on a tree made by
    f7tbuild.emulation (None: the host's own).
    """
    arch = foreign_arch(platform)
    ref = standin_ref(spec, arch)
    if not rebuild and engine.image_exists(ref):
        status(f"reusing stand-in {ref} (use --rebuild to remake it)")
        return ref
    dockerfile = STANDIN_DIR / spec.kind / "Dockerfile"
    if not dockerfile.is_file():
        raise StandinError(f"no {dockerfile}: every [standins.{spec.kind}] needs a Dockerfile")
    extra_args: dict[str, str] = {}
    if platform is not None and arch is not None:
        from f7tbuild.emulation import make_rootfs as make_foreign_rootfs

        rootfs = make_foreign_rootfs(spec.suite, platform, rebuild=rebuild_rootfs)
        emulated = emulated_dockerfile(spec.kind)
        if emulated is not None:
            # It copies architecture-independent files from the host's own stand-in.
            dockerfile = emulated
            extra_args["HOST_STANDIN"] = build_standin(spec, ca_bundle=ca_bundle)
    else:
        rootfs = make_rootfs(spec.suite, rebuild=rebuild_rootfs)
    with ca.serve(ca_bundle) as ca_url:
        docker_build(
            BuildRequest(
                name=f"standin-{spec.kind}",
                dockerfile=dockerfile,
                context=dockerfile.parent,
                tags=[ref],
                build_args={
                    "ROOTFS": rootfs,
                    "CA_URL": ca_url,
                    **version_args(spec.versions),
                    **extra_args,
                },
                labels={
                    STANDIN_LABEL: "true",
                    "org.f7t4jhub.standin.kind": spec.kind,
                    "org.f7t4jhub.standin.suite": spec.suite,
                },
                no_cache=rebuild,
            )
        )
    if arch is not None:
        built_for = engine.inspect(ref).get("Architecture")
        if built_for != arch:
            raise StandinError(
                f"{ref} came out {built_for}, not {arch}: the engine did not keep the base's "
                "architecture; rerun with --rebuild-rootfs"
            )
    return ref


def make_standins(
    cat: Catalogue,
    kinds: list[str],
    rebuild: bool = False,
    ca_bundle: Path | None = None,
    rebuild_rootfs: bool = False,
    platform: Platform | None = None,
) -> list[str]:
    """Make the named stand-in kinds (all when none named), for ``platform`` if given."""
    chosen = [cat.standin(k) for k in kinds] if kinds else list(cat.standins.values())
    remade: set[str] = set()
    refs = []
    for spec in chosen:
        fresh = rebuild_rootfs and spec.suite not in remade
        refs.append(
            build_standin(spec, rebuild, ca_bundle, rebuild_rootfs=fresh, platform=platform)
        )
        remade.add(spec.suite)
    return refs
