"""testinfra checks of a singleuser image (run by ``python -m f7tbuild build singleuser``).

The image is started the way a Slurm job starts it: ``firecrestspawner-singleuser``
with only the spawner's environment (``FIRECRESTSPAWNER_ENV``), against the hub API
stub of tests/support/launch.py on loopback (``--network host``), as a non-root uid.
The base image's Python packages are compared with the final image's from outside.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import docker.types
import pytest

from f7tbuild import catalogue, engine
from tests.by_image.conftest import slowdown
from tests.by_image.layers import assert_no_build_secrets
from tests.support.launch import LaunchCheck

pytestmark = [pytest.mark.docker, pytest.mark.image("singleuser")]

LIST_PACKAGES = (
    "import importlib.metadata as m, json, re; seen = {}\n"
    "for d in m.distributions():\n"
    "    n = d.metadata['Name']\n"
    "    if n: seen.setdefault(re.sub(r'[-_.]+', '-', n).lower(), d.version)\n"
    "print(json.dumps(seen))"
)


def docker_run(image: str, *args: str, user: str | None = None, timeout: float = 120,
               **create: Any) -> str:
    """Run a command in a throw-away container (Docker SDK); its stdout (fails with stderr)."""
    try:
        return engine.run_output(image, list(args), timeout=timeout * slowdown(image),
                                 user=user or "", network_mode="host", **create)
    except engine.EngineError as exc:
        raise AssertionError(str(exc)) from None


def packages(image: str) -> dict[str, str]:
    """``{normalised name: version}`` of the Python packages importable in ``image``."""
    return dict(json.loads(docker_run(image, "python3", "-c", LIST_PACKAGES)))


def variant_stack(variant: str | None) -> dict[str, str]:
    """The pinned stack packages of the variant under test, from the catalogue."""
    targets = catalogue.load().select(["singleuser"])
    if variant:
        targets = [t for t in targets if t.variant == variant]
    if len(targets) != 1:
        pytest.fail(f"cannot tell which singleuser variant this is: pass --image-variant "
                    f"(known: {[t.variant for t in catalogue.load().select(['singleuser'])]})")
    reqs = targets[0].stack_requirements().split()
    return dict(r.split("==", 1) for r in reqs)


def launch(image: str, user: str | None) -> dict:
    """Run the launcher in ``image`` like a Slurm job; return JupyterLab's api/status."""
    with LaunchCheck(user="alice") as check:
        container = check.start_container(image, ["firecrestspawner-singleuser"],
                                          user=user or "")
        patience = slowdown(image)  # an emulated (foreign-architecture) image: qemu
        host, port = check.wait_callback(timeout=180 * patience)
        assert host == "127.0.0.1" and 0 < port < 65536
        status = check.assert_lab_serves(timeout=180 * patience)
        status["_uid"] = container.exec("id", "-u").strip()
        return status


def test_launcher_and_jupyter_on_path(image_ref: str) -> None:
    out = docker_run(image_ref, "sh", "-c",
                     "command -v firecrestspawner-singleuser jupyterhub-singleuser jupyter-lab")
    assert "firecrestspawner-singleuser" in out


def test_stack_versions_match_the_catalogue(image_ref: str, image_variant: str | None) -> None:
    have = packages(image_ref)
    for name, version in variant_stack(image_variant).items():
        assert have.get(name) == version, f"{name}: catalogue {version}, image {have.get(name)}"
    assert "firecrestspawner" in have


def test_launches_like_a_slurm_job(image_ref: str) -> None:
    """Default user of the image (non-root): callback, then /lab and /api/status serve."""
    status = launch(image_ref, user=None)
    assert status["_uid"] != "0"
    assert "started" in status


def test_launches_as_an_arbitrary_uid(image_ref: str) -> None:
    """An uid unknown to the image (no passwd entry, no HOME) still serves JupyterLab."""
    status = launch(image_ref, user="12345:12345")
    assert status["_uid"] == "12345"


def test_base_packages_untouched(image_ref: str, base_ref: str | None) -> None:
    """Nothing the base image had is removed or has another version."""
    if not base_ref:
        pytest.fail("pass --base-ref (the base this image was built on) to compare packages")
    before, after = packages(base_ref), packages(image_ref)
    assert before, f"no Python packages found in {base_ref}"
    removed = sorted(set(before) - set(after))
    changed = {n: (v, after[n]) for n, v in before.items() if n in after and after[n] != v}
    assert not removed, f"packages of the base removed: {removed}"
    assert not changed, f"packages of the base changed (base, image): {changed}"
    # The record taken during the build agrees with what the base really holds.
    record = docker_run(image_ref, "cat", "/usr/local/share/f7t4jhub/base-packages.txt")
    recorded = dict(ln.split("==", 1) for ln in record.splitlines() if ln and ln[0] != "#")
    assert recorded == before


def test_non_root_default_user_and_labels(image_ref: str, base_ref: str | None) -> None:
    config = engine.inspect(image_ref)["Config"]
    assert config["User"] not in ("", "0", "root", "0:0")
    assert config["Cmd"] == ["firecrestspawner-singleuser"]
    labels = config["Labels"]
    # source may be empty (no git remote), but the label is always set.
    assert "org.opencontainers.image.source" in labels
    for key in ("title", "version", "revision", "created"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label image.{key} missing"
    if base_ref and "standin" in base_ref:
        assert labels["org.f7t4jhub.standin"] == "true"


def test_no_build_secrets_in_any_layer(
    image_ref: str, base_ref: str | None, ca_bundle: Path | None
) -> None:
    assert assert_no_build_secrets(image_ref, ca_bundle, base_ref) > 0


@pytest.mark.gpu
def test_torch_sees_the_gpu(image_ref: str, base_ref: str | None) -> None:
    """On a real NGC base with an NVIDIA GPU: torch.cuda.is_available() in the image."""
    if base_ref and "standin" in base_ref:
        pytest.skip("stand-in base: no PyTorch/CUDA inside (only real NGC images have them)")
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU on this machine (nvidia-smi missing): GPU check not run")
    gpus = docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])  # docker run --gpus all
    out = docker_run(image_ref, "python3", "-c",
                     "import torch; print(torch.cuda.is_available(), torch.cuda.device_count())",
                     timeout=300, device_requests=[gpus])
    available, count = out.split()
    assert available == "True" and int(count) > 0
