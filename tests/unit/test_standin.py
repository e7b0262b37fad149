"""Pure parts of the stand-in machinery: apt mirror parsing, version args, CA serving,
step tracking of build output."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from f7tbuild import ca
from f7tbuild.mirror import (
    MirrorError,
    host_mirror,
    parse_deb822,
    parse_one_line,
    pick_mirror,
)
from f7tbuild.progress import StepTracker
from f7tbuild.standin import debootstrap_command, version_args
from tests.support.require import unavailable

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_stanzas() -> None:
    sources = parse_deb822(DEB822)
    assert [s.uri for s in sources] == [
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    ]
    assert sources[0].suites == ("bookworm", "bookworm-updates")
    assert pick_mirror(sources) == "http://mirror.example/debian"


def test_deb822_security_first_and_disabled_are_skipped() -> None:
    text = (
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: trixie-security\n"
        "Components: main\n\n"
        "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: trixie\n"
        "Components: main\n\n"
        "Types: deb deb-src\nURIs: https://on.example/debian\nSuites: trixie\n"
        "Components: main contrib\n"
    )
    assert pick_mirror(parse_deb822(text)) == "https://on.example/debian"


def test_one_line_sources_with_options_and_comments() -> None:
    text = (
        "# comment\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian/ bookworm main # tail\n"
    )
    sources = parse_one_line(text)
    assert [s.types for s in sources] == [("deb-src",), ("deb",), ("deb",)]
    assert pick_mirror(sources) == "http://one.example/debian"


def test_no_mirror_names_the_files_and_the_fix() -> None:
    with pytest.raises(MirrorError, match="--mirror"):
        pick_mirror(parse_one_line("deb cdrom:[Debian]/ bookworm main\n"))


def test_host_mirror_reads_an_apt_tree(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert host_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("deb http://first.example/debian trixie main\n")
    assert host_mirror(tmp_path) == "http://first.example/debian"


def test_this_host_has_a_mirror() -> None:
    assert host_mirror().startswith(("http://", "https://"))


def test_debootstrap_command_and_version_args() -> None:
    assert debootstrap_command("trixie", Path("/t/root"), "http://m/debian") == [
        "debootstrap",
        "--variant=minbase",
        "trixie",
        "/t/root",
        "http://m/debian",
    ]
    assert version_args({"npm": "11.6.2", "configurable-http-proxy": "5.3.0"}) == {
        "NPM_VERSION": "11.6.2",
        "CONFIGURABLE_HTTP_PROXY_VERSION": "5.3.0",
    }


def _pem(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return path


def test_choose_bundle_order(tmp_path: Path) -> None:
    pem = _pem(tmp_path)
    assert ca.choose_bundle(None, True, {"SSL_CERT_FILE": str(pem)}).path is None
    assert ca.choose_bundle(str(pem), False, {}).path == pem
    assert ca.choose_bundle(None, False, {"F7T_CA_BUNDLE": str(pem)}).reason == "from F7T_CA_BUNDLE"
    assert ca.choose_bundle(None, False, {"PIP_CERT": str(pem)}).path == pem
    assert ca.choose_bundle(None, False, {}).path is None
    with pytest.raises(ca.CAError, match="is not a file"):
        ca.choose_bundle(str(tmp_path / "missing.pem"), False, {})
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing")
    with pytest.raises(ca.CAError, match="no PEM certificate"):
        ca.choose_bundle(str(empty), False, {})


def test_configured_port() -> None:
    assert ca.configured_port({}) == 47291
    assert ca.configured_port({"F7T_CA_PORT": "50000"}) == 50000
    with pytest.raises(ca.CAError, match="not a port"):
        ca.configured_port({"F7T_CA_PORT": "x"})


def test_ca_is_served_on_loopback_only_while_building(tmp_path: Path) -> None:
    pem = _pem(tmp_path)
    port = 47291 + 400
    with ca.serve(pem, port=port) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/ca.pem")
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.read() == pem.read_bytes()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url.replace("/ca.pem", "/other"), timeout=5)
        # The same bundle asked again in this process (a stand-in built during an image
        # build) is the same server: the same CA_URL, so the same layer cache keys.
        with ca.serve(pem, port=port) as again:
            assert again == url
        # Another bundle on the same fixed port moves to the next one, visibly.
        other = tmp_path / "other.pem"
        other.write_bytes(pem.read_bytes() + b"\n")
        with ca.serve(other, port=port) as second:
            assert second != url
        with urllib.request.urlopen(url, timeout=5) as resp:  # the first still serves
            assert resp.read() == pem.read_bytes()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    with ca.serve(None) as none:
        assert none == ""


def test_step_tracker_classic_and_buildkit() -> None:
    lines: list[str] = []
    ticks = iter(range(100))
    tracker = StepTracker(emit=lines.append, clock=lambda: float(next(ticks)))
    for line in [
        "Step 1/2 : FROM x",
        " ---> abc",
        "Step 2/2 : RUN y",
        " ---> Using cache",
        "#5 [build 2/4] RUN npm install",
        "#5 DONE 3.5s",
        "#6 [stage-1 1/3] FROM z",
        "#6 CACHED",
    ]:
        tracker.feed(line)
    tracker.close()
    assert lines[0] == "step 1/2 started: FROM x"
    assert "step 1/2 done in" in lines[1]
    assert any(line.startswith("step [build 2/4] done") for line in lines)
    assert any(line.startswith("step [stage-1 1/3] cached") for line in lines)
    assert any(line.startswith("step 2/2 cached") for line in lines)


def test_no_engine_names_the_install_script(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil as _shutil

    from f7tbuild import engine

    if _shutil.which("docker") is None:
        unavailable("docker", "no docker CLI (scripts/install-docker.sh)")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/f7t-test.sock")
    with pytest.raises(engine.EngineError, match="scripts/install-docker.sh"):
        engine.require_engine(timeout=20)


def test_build_command_uses_host_network_and_passes_args() -> None:
    from f7tbuild.dockerbuild import BuildRequest, buildkit_enabled, command

    req = BuildRequest(
        name="chp",
        dockerfile=Path("/r/images/chp/Dockerfile"),
        context=Path("/r"),
        tags=["f7t4jhub/chp:5.3.0-standin"],
        build_args={"CA_URL": "http://127.0.0.1:47291/ca.pem"},
        labels={"org.f7t4jhub.standin": "true"},
        no_cache=True,
    )
    cmd = command(req, buildkit=True, cli="/usr/bin/docker")
    assert cmd[:5] == ["/usr/bin/docker", "build", "--network", "host", "-f"]
    assert ["--progress", "plain"] == cmd[6:8]
    assert "--no-cache" in cmd
    assert cmd[cmd.index("--build-arg") + 1] == "CA_URL=http://127.0.0.1:47291/ca.pem"
    assert cmd[cmd.index("--label") + 1] == "org.f7t4jhub.standin=true"
    assert cmd[-1] == "/r"
    assert "--progress" not in command(req, buildkit=False)
    assert buildkit_enabled({"DOCKER_BUILDKIT": "1"})
    assert not buildkit_enabled({})


def test_buildkit_is_used_where_the_dockerfile_needs_it(tmp_path: Path) -> None:
    from f7tbuild.dockerbuild import BuildRequest, command, needs_buildkit, use_buildkit

    mounts = tmp_path / "a.Dockerfile"
    mounts.write_text("FROM x\nRUN --mount=type=bind,source=a,target=/a \\\n    true\n")
    plain = tmp_path / "b.Dockerfile"
    plain.write_text("FROM x\n# RUN --mount=... only in a comment\nRUN echo --mount=no\n")
    assert needs_buildkit(mounts) and not needs_buildkit(plain)
    req = BuildRequest(name="a", dockerfile=mounts, context=tmp_path, tags=["t"])
    assert use_buildkit(req, env={})
    assert not use_buildkit(BuildRequest("b", plain, tmp_path, ["t"]), env={})
    assert use_buildkit(BuildRequest("b", plain, tmp_path, ["t"]), env={"DOCKER_BUILDKIT": "1"})
    forced = BuildRequest("b", plain, tmp_path, ["t"], buildkit=True, platform="linux/arm64")
    assert use_buildkit(forced, env={})
    cmd = command(forced, buildkit=True, cli="docker")
    assert cmd[cmd.index("--platform") + 1] == "linux/arm64"
