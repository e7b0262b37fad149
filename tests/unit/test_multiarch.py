"""The logic of emulated (arm64) builds without emulation: platforms, binfmt_misc
diagnosis, local names, the one-layer image written for ``docker load``, phase timing.

The emulated build itself is ``nox -s build-arm64`` (slow, not in CI).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from f7tbuild.catalogue import load
from f7tbuild.crossbuild import Phases, fmt, standin_kinds, wanted_platforms
from f7tbuild.emulation import (
    CachedRootfs,
    first_stage_command,
    image_config,
    mounts_below,
    rootfs_ref,
    second_stage_command,
    write_image_tar,
)
from f7tbuild.platforms import (
    Platform,
    PlatformError,
    binfmt_problem,
    foreign_arch,
    local_repository,
    normalise_arch,
)
from f7tbuild.publish import Policy, choose
from f7tbuild.standin import standin_ref
from f7tbuild.tags import Revision, local_refs

ARM64 = Platform.parse("linux/arm64")
REV = Revision(sha="abcdef1" + "0" * 33, created="2026-01-01T00:00:00Z", source="")


def test_platforms_parse_and_name_the_machine() -> None:
    assert ARM64 == Platform("linux", "arm64", "v8")
    assert Platform.parse("aarch64") == ARM64
    assert Platform.parse("linux/arm64/v8") == ARM64
    assert str(ARM64) == "linux/arm64"
    assert (ARM64.machine, ARM64.qemu) == ("aarch64", "qemu-aarch64")
    assert Platform.parse("linux/amd64").machine == "x86_64"
    assert normalise_arch("x86_64") == "amd64"
    with pytest.raises(PlatformError, match="unknown architecture 'mips'"):
        Platform.parse("linux/mips")
    with pytest.raises(PlatformError, match="os/arch"):
        Platform.parse("a/b/c/d")


def test_foreign_arch_is_none_for_the_host() -> None:
    assert foreign_arch("linux/arm64", host="amd64") == "arm64"
    assert foreign_arch("linux/amd64", host="amd64") is None
    assert foreign_arch("linux/arm64", host="arm64") is None
    assert foreign_arch(None, host="amd64") is None


def test_foreign_builds_have_their_own_local_names() -> None:
    cat = load()
    chp = cat.select(["chp"])[0]
    native = local_refs(chp, REV, standin=True)
    emulated = local_refs(chp, REV, standin=True, arch="arm64")
    assert native[0] == "f7t4jhub/chp:5.3.0-standin"
    assert [r.split(":", 1)[1] for r in emulated] == [r.split(":", 1)[1] for r in native]
    assert all(r.startswith("f7t4jhub/arm64/chp:") for r in emulated)
    node = cat.standin("node")
    assert standin_ref(node) == node.ref == "f7t4jhub/standin-node:latest"
    assert standin_ref(node, "arm64") == "f7t4jhub/arm64/standin-node:latest"
    assert rootfs_ref("trixie", "arm64") == "f7t4jhub/arm64/standin-rootfs:trixie"
    assert local_repository("hub", None) == "f7t4jhub/hub"


def test_publish_finds_the_emulated_build_by_its_architecture() -> None:
    chp = load().select(["chp"])[0]
    labels = {"org.f7t4jhub.standin": "true", "org.opencontainers.image.revision": REV.sha}
    present = set(local_refs(chp, REV, standin=True, arch="arm64"))
    cand = choose(
        chp, REV, lambda r: labels if r in present else None,
        Policy(allow_standin=True, allow_dirty=True), arch="arm64",
    )
    assert cand.standin and cand.refs[0].startswith("f7t4jhub/arm64/chp:")


def _binfmt(tmp_path: Path, entry: str | None) -> Path:
    (tmp_path / "register").write_text("")
    if entry is not None:
        (tmp_path / "qemu-aarch64").write_text(entry)
    return tmp_path


ENABLED_PF = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"


def test_binfmt_diagnosis_names_cause_and_command(tmp_path: Path) -> None:
    unmounted = binfmt_problem(ARM64, tmp_path / "nothing")
    assert unmounted is not None and "not mounted" in unmounted
    assert "mount -t binfmt_misc binfmt_misc" in unmounted
    assert "update-binfmts --enable qemu-aarch64" in unmounted

    (tmp_path / "a").mkdir()
    missing = binfmt_problem(ARM64, _binfmt(tmp_path / "a", None))
    assert missing is not None and "apt-get install qemu-user-static" in missing

    (tmp_path / "b").mkdir()
    disabled = binfmt_problem(ARM64, _binfmt(tmp_path / "b", ENABLED_PF.replace("enabled", "disabled")))
    assert disabled is not None and "is disabled" in disabled
    assert "update-binfmts --enable qemu-aarch64" in disabled

    (tmp_path / "c").mkdir()
    no_f = binfmt_problem(ARM64, _binfmt(tmp_path / "c", ENABLED_PF.replace("PF", "P")))
    assert no_f is not None and "F (fix binary) flag" in no_f

    (tmp_path / "d").mkdir()
    assert binfmt_problem(ARM64, _binfmt(tmp_path / "d", ENABLED_PF)) is None


def test_debootstrap_two_stages() -> None:
    first = first_stage_command("trixie", "arm64", Path("/t/root"), "http://mirror.example/debian")
    assert first == [
        "debootstrap", "--arch=arm64", "--variant=minbase", "--foreign",
        "trixie", "/t/root", "http://mirror.example/debian",
    ]
    assert second_stage_command(Path("/t/root")) == [
        "chroot", "/t/root", "/debootstrap/debootstrap", "--second-stage",
    ]


def test_mounts_left_in_the_tree_are_found_deepest_first() -> None:
    mounts = (
        "proc /proc proc rw 0 0\n"
        "proc /var/tmp/t/root/proc proc rw 0 0\n"
        "sysfs /var/tmp/t/root/sys sysfs rw 0 0\n"
        "none /var/tmp/t/root/proc/sys/fs/binfmt_misc binfmt_misc rw 0 0\n"
        "tmpfs /var/tmp/t/rootfs tmpfs rw 0 0\n"
    )
    assert mounts_below(Path("/var/tmp/t/root"), mounts) == [
        "/var/tmp/t/root/proc/sys/fs/binfmt_misc",
        "/var/tmp/t/root/proc",
        "/var/tmp/t/root/sys",
    ]


def test_cache_is_used_only_when_complete(tmp_path: Path) -> None:
    cached = CachedRootfs.at("trixie", "arm64", tmp_path)
    assert cached.layer == tmp_path / "trixie-arm64.tar"
    assert cached.read() is None
    cached.layer.write_bytes(b"x" * 10)
    assert cached.read() is None  # no metadata
    cached.meta.write_text(json.dumps({"size": 9, "diff_id": "sha256:00"}))
    assert cached.read() is None  # a truncated or replaced layer
    cached.meta.write_text(json.dumps({"size": 10, "diff_id": "sha256:00"}))
    assert cached.read() == {"size": 10, "diff_id": "sha256:00"}


def test_image_tar_declares_the_architecture(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        info = tarfile.TarInfo("./etc/hostname")
        data = b"arm\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest()
    config = image_config("arm64", "v8", diff_id, {"org.f7t4jhub.standin": "true"}, REV.created)
    out = tmp_path / "image.tar"
    image_id = write_image_tar(out, layer, diff_id, "f7t4jhub/arm64/standin-rootfs:trixie", config)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        (entry,) = manifest
        assert entry["RepoTags"] == ["f7t4jhub/arm64/standin-rootfs:trixie"]
        raw = tar.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        assert image_id == "sha256:" + hashlib.sha256(raw).hexdigest()
        written = json.loads(raw)
        assert (written["architecture"], written["variant"], written["os"]) == ("arm64", "v8", "linux")
        assert written["rootfs"]["diff_ids"] == [diff_id]
        (layer_name,) = entry["Layers"]
        assert tar.extractfile(layer_name).read() == layer.read_bytes()  # type: ignore[union-attr]


def test_catalogue_platforms_select_the_images() -> None:
    targets = load().select(["all"])
    assert wanted_platforms(targets, ARM64) == targets  # every image lists linux/arm64
    assert standin_kinds(targets) == ["node", "python", "ngc"]


def test_phases_time_each_step_and_mark_failures() -> None:
    ticks = iter([0.0, 5.0, 10.0, 200.0])
    lines: list[str] = []
    phases = Phases(clock=lambda: next(ticks), emit=lines.append)
    with phases.phase("rootfs"):
        pass
    with pytest.raises(RuntimeError), phases.phase("build chp arm64"):
        raise RuntimeError("boom")
    assert lines == [
        "phase rootfs: started",
        "phase rootfs: done in 5.0s",
        "phase build chp arm64: started",
        "phase build chp arm64: FAILED in 3m10s",
    ]
    assert phases.as_json() == [
        {"phase": "rootfs", "seconds": 5.0, "state": "ok"},
        {"phase": "build chp arm64", "seconds": 190.0, "state": "FAILED"},
    ]
    assert phases.summary()[-1].split() == ["total", "3m15s"]
    assert fmt(59.94) == "59.9s" and fmt(3600) == "60m00s"


class _StubFile:
    def __init__(self, content: str) -> None:
        self.content_string = content


class _StubHost:
    def __init__(self, cmdlines: dict[str, str]) -> None:
        self.cmdlines = cmdlines

    def file(self, path: str) -> _StubFile:
        return _StubFile(self.cmdlines[path])


def test_process_argv_drops_the_qemu_user_interpreter() -> None:
    from tests.by_image.conftest import process_argv

    host = _StubHost({
        "/proc/1/cmdline": "/usr/libexec/qemu-binfmt/aarch64-binfmt-P\0/usr/bin/tini\0"
                           "/usr/bin/tini\0--\0jupyterhub\0-f\0/etc/jupyterhub/jupyterhub_config.py\0",
        "/proc/7/cmdline": "/usr/bin/qemu-aarch64\0/opt/jupyterhub/bin/python\0python\0-m\0x\0",
        "/proc/8/cmdline": "/usr/bin/tini\0--\0jupyterhub\0",
    })
    assert process_argv(host, 1) == ["/usr/bin/tini", "--", "jupyterhub", "-f",
                                     "/etc/jupyterhub/jupyterhub_config.py"]
    assert process_argv(host, 7) == ["python", "-m", "x"]
    assert process_argv(host, 8) == ["/usr/bin/tini", "--", "jupyterhub"]  # native: unchanged
