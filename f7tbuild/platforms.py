"""Platforms of image builds: the host's architecture, foreign ones, and their emulation.

An image is built for the host's own architecture (``nox -s build``) or, under
emulation, for a foreign one (``nox -s build-arm64``: qemu-user-static through the
kernel's binfmt_misc). Builds for a foreign architecture live in their own local
namespace, ``f7t4jhub/<arch>/<image>:<tag>`` (stand-in bases too), so that both
architectures of one commit sit side by side in one engine under the same tags.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from pathlib import Path

from f7tbuild.catalogue import LOCAL_NAMESPACE

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

#: ``uname -m`` / kernel names -> OCI architecture names.
_ARCH_NAMES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}
#: OCI architecture -> (``uname -m`` inside a container, qemu's binfmt entry name).
_MACHINES = {
    "amd64": ("x86_64", "qemu-x86_64"),
    "arm64": ("aarch64", "qemu-aarch64"),
    "ppc64le": ("ppc64le", "qemu-ppc64le"),
    "s390x": ("s390x", "qemu-s390x"),
}
#: The architectures f7tbuild knows (OCI names): the local namespaces of emulated builds.
ARCHITECTURES = tuple(_MACHINES)
#: OCI variant a platform gets by default (``linux/arm64`` is ``linux/arm64/v8``).
DEFAULT_VARIANTS = {"arm64": "v8"}


class PlatformError(RuntimeError):
    """A platform is unknown or cannot be built here; the message says what to do."""


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]`` as OCI writes it."""

    os: str
    arch: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64``, ``linux/arm64/v8`` or a bare ``arm64``/``aarch64``."""
        parts = [p for p in text.strip().split("/") if p]
        if len(parts) == 1:
            parts = ["linux", parts[0]]
        if len(parts) not in (2, 3):
            raise PlatformError(f"{text!r} is not a platform: write os/arch, e.g. linux/arm64")
        arch = normalise_arch(parts[1])
        variant = parts[2] if len(parts) == 3 else DEFAULT_VARIANTS.get(arch, "")
        return cls(parts[0], arch, variant)

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"

    @property
    def machine(self) -> str:
        """What ``uname -m`` prints in a container of this platform."""
        return _MACHINES[self.arch][0]

    @property
    def qemu(self) -> str:
        """The binfmt_misc entry that runs this architecture's programs under qemu."""
        return _MACHINES[self.arch][1]


def normalise_arch(name: str) -> str:
    """``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64`` (OCI names); unknown names fail."""
    try:
        return _ARCH_NAMES[name.strip().lower()]
    except KeyError:
        raise PlatformError(
            f"unknown architecture {name!r}: known are {', '.join(sorted(set(_ARCH_NAMES.values())))}"
        ) from None


def host_arch() -> str:
    """The OCI architecture of this machine."""
    return normalise_arch(_platform.machine())


def foreign_arch(platform: str | Platform | None, host: str | None = None) -> str | None:
    """The architecture of ``platform`` when it is not the host's, else None.

    None stands for "native": builds go to the usual local names.
    """
    if platform is None:
        return None
    plat = platform if isinstance(platform, Platform) else Platform.parse(platform)
    return None if plat.arch == (host or host_arch()) else plat.arch


def local_namespace(arch: str | None) -> str:
    """``f7t4jhub`` for native builds, ``f7t4jhub/<arch>`` for emulated ones."""
    return LOCAL_NAMESPACE if arch is None else f"{LOCAL_NAMESPACE}/{arch}"


def local_repository(name: str, arch: str | None) -> str:
    """Local repository of an image (``chp``, ``standin-node``) for ``arch``."""
    return f"{local_namespace(arch)}/{name}"


def binfmt_problem(plat: Platform, binfmt_dir: Path = BINFMT_DIR) -> str | None:
    """Why programs of ``plat`` cannot run on this host (cause and fix), or None if they can.

    Reads the kernel's binfmt_misc entries: the file system must be mounted and
    ``qemu-<machine>`` registered, enabled and with the F flag (the kernel opens the
    interpreter once, so containers and chroots need no copy of qemu).
    """
    install = "apt-get install qemu-user-static binfmt-support"
    mount = f"mount -t binfmt_misc binfmt_misc {binfmt_dir}"
    enable = f"update-binfmts --enable {plat.qemu}"
    if not (binfmt_dir / "register").exists():
        return (
            f"binfmt_misc is not mounted at {binfmt_dir}, so the kernel cannot hand {plat} "
            f"programs to qemu: run as root `{mount} && {enable}` (qemu from `{install}`), "
            "or `bash scripts/emulation-setup.sh`"
        )
    entry = binfmt_dir / plat.qemu
    if not entry.is_file():
        return (
            f"no binfmt_misc entry {plat.qemu}: qemu-user-static is not installed or not "
            f"registered; run as root `{install} && {enable}`, or "
            "`bash scripts/emulation-setup.sh`"
        )
    lines = entry.read_text(errors="replace").splitlines()
    if not lines or lines[0].strip() != "enabled":
        return f"the binfmt_misc entry {plat.qemu} is disabled: run as root `{enable}`"
    flags = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("flags:")), "")
    if "F" not in flags:
        return (
            f"the binfmt_misc entry {plat.qemu} lacks the F (fix binary) flag (has "
            f"{flags or 'none'}), so qemu is not found inside containers: install Debian's "
            f"qemu-user-static (it registers {plat.qemu} with flags PF), then "
            f"`update-binfmts --disable {plat.qemu} && {enable}`"
        )
    return None
