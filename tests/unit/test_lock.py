"""f7tbuild.lock: hashed locks resolved against a real package index on loopback."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import shutil
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from f7tbuild import lock
from tests.support.require import unavailable

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def uv_installed() -> None:
    """compile_lock's resolver, uv, is here; else skip (fail when CI requires ``tools``)."""
    if shutil.which("uv") is None and not (Path(sys.executable).parent / "uv").exists():
        unavailable("tools", "uv is not installed (pip install uv): compile_lock's resolver")


needs_uv = pytest.mark.usefixtures("uv_installed")


def _make_wheel(directory: Path, name: str, version: str, requires: list[str]) -> Path:
    """Write a minimal valid pure-Python wheel and return its path."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record_lines = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record_lines.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record_lines.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record_lines) + "\n"
    out = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return out


@pytest.fixture()
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A PEP 503 simple index on 127.0.0.1 with alpha (needs beta) and two betas."""
    files = tmp_path / "files"
    files.mkdir()
    wheels = {
        "alpha-1.0": _make_wheel(files, "alpha", "1.0", ["beta>=2"]),
        "beta-1.0": _make_wheel(files, "beta", "1.0", []),
        "beta-2.5": _make_wheel(files, "beta", "2.5", []),
    }
    simple = tmp_path / "simple"
    for project in ("alpha", "beta"):
        page = simple / project
        page.mkdir(parents=True)
        links = "".join(
            f'<a href="/files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
            f"{w.name}</a>\n"
            for w in wheels.values() if w.name.startswith(project + "-")
        )
        (page / "index.html").write_text(f"<html><body>{links}</body></html>")

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    monkeypatch.setenv("UV_INDEX_URL", url)
    monkeypatch.setenv("UV_DEFAULT_INDEX", url)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.delenv("UV_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    try:
        yield wheels
    finally:
        server.shutdown()
        server.server_close()


@needs_uv
def test_compile_lock_pins_and_hashes_transitive_deps(
    index: dict[str, Path], tmp_path: Path
) -> None:
    out = lock.compile_lock(["alpha==1.0"], "3.11", tmp_path / "out" / "req.lock")
    text = out.read_text()
    assert sorted(lock.check_lock(out)) == ["alpha==1.0", "beta==2.5"]
    for key in ("alpha-1.0", "beta-2.5"):
        digest = hashlib.sha256(index[key].read_bytes()).hexdigest()
        assert f"--hash=sha256:{digest}" in text
    # The header tells how to regenerate, and no temporary path leaks in.
    assert lock.REGENERATE_COMMAND in text
    assert "f7t-lock-" not in text


@needs_uv
def test_compile_lock_conflict_keeps_old_lock(index: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "req.lock"
    target.write_text("previous\n")
    with pytest.raises(lock.LockError, match="failed") as err:
        lock.compile_lock(["alpha==1.0", "beta==1.0"], "3.11", target)
    assert "catalogue.toml" in str(err.value)
    assert target.read_text() == "previous\n"


def test_compile_lock_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(lock.LockError, match="at least one"):
        lock.compile_lock([], "3.13", tmp_path / "x.lock")
    with pytest.raises(lock.LockError, match="3.13"):
        lock.compile_lock(["alpha"], "py313", tmp_path / "x.lock")
    other = "3.9" if sys.version_info[:2] != (3, 9) else "3.8"
    with pytest.raises(lock.LockError, match="install uv"):
        lock.compile_lock(["alpha"], other, tmp_path / "x.lock", tool="pip-compile")


def test_check_lock_refuses_unpinned_or_unhashed(tmp_path: Path) -> None:
    unpinned = tmp_path / "a.lock"
    unpinned.write_text("alpha>=1 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(lock.LockError, match="not pinned"):
        lock.check_lock(unpinned)
    unhashed = tmp_path / "b.lock"
    unhashed.write_text("alpha==1.0\n    # via nothing\n")
    with pytest.raises(lock.LockError, match="no sha256 hash"):
        lock.check_lock(unhashed)
    good = tmp_path / "c.lock"
    good.write_text(
        "# header\nFoo_Bar==1.0 ; sys_platform != 'win32' \\\n"
        "    --hash=sha256:" + "1" * 64 + "\n    # via x\n"
    )
    assert lock.check_lock(good) == ["foo-bar==1.0"]


def test_hub_requirements_come_from_catalogue_and_pyproject(tmp_path: Path) -> None:
    (tmp_path / "catalogue.toml").write_text(
        '[stacks.s]\ndescription = "x"\njupyterhub = "9.0"\nJupyterLab = "1.0"\n'
        'Oauth_Enticator = "2.0"\n[images.hub]\nstack = "s"\n'
        '[images.hub.versions]\nIdle_Culler = "3.1"\n'
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\ndependencies = ["jupyterhub>=4"]\n'
        '[project.optional-dependencies]\nhub = ["pyfirecrest<4"]\n'
    )
    reqs = lock.hub_requirements(tmp_path)
    assert reqs == ["jupyterhub==9.0", "oauth-enticator==2.0", "idle-culler==3.1",
                    "jupyterhub>=4", "pyfirecrest<4"]


def test_committed_hub_lock_matches_catalogue() -> None:
    """The committed lock is current: every hub stack pin is in it at the catalogue's version."""
    path = lock.hub_lock_path(REPO)
    pins = set(lock.check_lock(path))
    catalogue = lock._load_toml(REPO / "catalogue.toml")
    stack = lock.stack_pins(catalogue, catalogue["images"]["hub"]["stack"])
    for name, version in stack.items():
        if name in lock.COMPUTE_ONLY:
            assert not any(p.startswith(name + "==") for p in pins), f"{name} leaked into hub lock"
        else:
            assert f"{name}=={version}" in pins, f"{path} is stale for {name}: run `nox -s lock`"
    # Every requirement of the hub (pyproject's dependencies and hub extra included) is
    # pinned at a version inside its range: a dependency added without relocking fails.
    versions = dict(p.split("==", 1) for p in pins)
    for text in lock.hub_requirements(REPO):
        req = Requirement(text)
        name = lock.normalise(req.name)
        assert name in versions, f"{name} is not in {path}: run `nox -s lock`"
        assert req.specifier.contains(versions[name], prereleases=True), (
            f"{name}=={versions[name]} in {path} is outside {req}: run `nox -s lock`"
        )
    backend = set(lock.check_lock(REPO / "images" / "hub" / "build-requirements.lock"))
    for req in lock.build_backend_requirements(REPO):
        assert any(p.startswith(lock.requirement_name(req) + "==") for p in backend)
