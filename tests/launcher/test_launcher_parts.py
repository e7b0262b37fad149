"""The launcher's steps in-process: ports on real sockets, host choice, private dirs, callback."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import firecrestspawner
from firecrestspawner.compute import launcher as singleuser
from firecrestspawner.compute.launcher import LaunchError
from tests.support.hubstub import HubStub
from tests.support.require import unavailable


def test_port_range_skips_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = None
        for candidate in (busy + 1, busy - 1):
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
                free = candidate
                break
            except OSError:
                continue
        if free is None:
            pytest.skip("no free neighbour port to build a two-port range")
        lo, hi = sorted((busy, free))
        for _ in range(10):  # random order: the taken one must never come back
            assert singleuser.pick_port("127.0.0.1", (lo, hi)) == free


def test_port_range_exhausted_is_exit_6() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(LaunchError) as info:
            singleuser.pick_port("127.0.0.1", (busy, busy))
    assert info.value.exit_code == singleuser.EXIT_NO_PORT
    assert "widen the range" in str(info.value)


@pytest.mark.parametrize("text", ["20000", "30000-20000", "0-10", "1-70000", "a-b", "1-2-3"])
def test_bad_port_range(text: str) -> None:
    with pytest.raises(LaunchError) as info:
        singleuser.parse_port_range(text)
    assert info.value.exit_code == singleuser.EXIT_BAD_ENV and "FIRECRESTSPAWNER_PORT_RANGE" in str(
        info.value
    )


def test_port_range_parses() -> None:
    assert singleuser.parse_port_range(" 20000 - 20010 ") == (20000, 20010)


def test_host_choice() -> None:
    assert (
        singleuser.report_host({"FIRECRESTSPAWNER_HOST": "nid001-hsn0"}, "0.0.0.0") == "nid001-hsn0"
    )
    assert singleuser.report_host({}, "10.1.2.3") == "10.1.2.3"
    default = singleuser.report_host({}, "0.0.0.0")
    assert default and not default.startswith("localhost")
    assert default in (socket.getfqdn(), socket.gethostname())
    with pytest.raises(LaunchError, match="FIRECRESTSPAWNER_HOST"):
        singleuser.report_host({"FIRECRESTSPAWNER_HOST": "bad host/x"}, "0.0.0.0")


def test_private_dirs_only_when_home_unwritable(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert singleuser.ensure_private_dirs(env) is None
    assert env == {"HOME": str(tmp_path)}

    missing = tmp_path / "does-not-exist"
    keep = tmp_path / "runtime-ok"
    keep.mkdir()
    env = {"HOME": str(missing), "JUPYTER_RUNTIME_DIR": str(keep)}
    base = singleuser.ensure_private_dirs(env)
    assert base is not None
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o700
    assert env["JUPYTER_RUNTIME_DIR"] == str(keep)  # an already usable setting is kept
    for name in ("JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "JUPYTERLAB_SETTINGS_DIR"):
        assert env[name].startswith(base + os.sep), name
    os.rmdir(base)


def test_encoded_env_is_merged_and_removed() -> None:
    from firecrestspawner.compute.envcodec import encode_env

    env = {"FIRECRESTSPAWNER_ENV": encode_env({"A": "1,2", "B": "it's"}), "C": "x"}
    assert singleuser.merge_encoded_env(env) == 2
    assert env == {"A": "1,2", "B": "it's", "C": "x"}


def test_callback_url_and_timeout_knobs() -> None:
    base = {"JUPYTERHUB_API_URL": "http://hub:8081/hub/api/", "JUPYTERHUB_API_TOKEN": "t"}
    cb = singleuser.callback_from_env(base)
    assert cb.url == "http://hub:8081/hub/api/firecrestspawner/callback"
    assert cb.deadline == singleuser.DEFAULT_CALLBACK_TIMEOUT
    cb = singleuser.callback_from_env(
        {
            **base,
            "FIRECRESTSPAWNER_CALLBACK_URL": "https://h/cb",
            "FIRECRESTSPAWNER_CALLBACK_TIMEOUT": "7",
        }
    )
    assert (cb.url, cb.deadline) == ("https://h/cb", 7.0) and cb.ssl_context is not None
    for bad in ("0", "-3", "soon"):
        with pytest.raises(LaunchError, match="FIRECRESTSPAWNER_CALLBACK_TIMEOUT"):
            singleuser.callback_from_env({**base, "FIRECRESTSPAWNER_CALLBACK_TIMEOUT": bad})
    with pytest.raises(LaunchError, match="not http"):
        singleuser.callback_from_env({**base, "FIRECRESTSPAWNER_CALLBACK_URL": "ftp://h/cb"})


def test_post_callback_against_the_stub() -> None:
    with HubStub(user="alice", api_token="secret-token", transient_failures=1) as stub:
        cb = singleuser.Callback(stub.api_url + "/firecrestspawner/callback", "secret-token", 20.0)
        singleuser.post_callback(cb, "nid000001", 4242)
        assert stub.callbacks == [("nid000001", 4242)]
        wrong = singleuser.Callback(cb.url, "not-the-token", 20.0)
        with pytest.raises(LaunchError) as info:
            singleuser.post_callback(wrong, "nid000001", 4242)
        assert info.value.exit_code == singleuser.EXIT_CALLBACK_REFUSED
        assert "HTTP 403" in str(info.value) and "not-the-token" not in str(info.value)


def test_post_callback_goes_on_when_the_hub_only_records_it(
        caplog: pytest.LogCaptureFixture) -> None:
    """202: the hub recorded the callback and verifies the host while JupyterLab starts;
    the launcher goes on at once (one request, no retry)."""
    with HubStub(user="alice", api_token="secret-token", accept_status=202) as stub:
        cb = singleuser.Callback(stub.api_url + "/firecrestspawner/callback", "secret-token", 20.0)
        with caplog.at_level(logging.INFO, logger="firecrestspawner-singleuser"):
            singleuser.post_callback(cb, "nid000001", 4242)
        assert stub.callbacks == [("nid000001", 4242)]
        assert "HTTP 202: recorded, the hub verifies the host) after 1 attempt(s)" in caplog.text


# ---------------------------------------------------------------------------
# Command line: --help and --version need no hub environment; exit codes
# ---------------------------------------------------------------------------
def _launcher_command() -> list[str]:
    script = Path(sys.executable).parent / "firecrestspawner-singleuser"
    return [str(script)] if script.exists() else [sys.executable, "-m", singleuser.__name__]


@pytest.mark.parametrize("option", ["--help", "-h", "--version", "-V"])
def test_help_and_version_without_any_environment(option: str) -> None:
    proc = subprocess.run([*_launcher_command(), option], env={}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    if option in ("--help", "-h"):
        assert proc.stdout.startswith("usage: firecrestspawner-singleuser")
        for code in singleuser.EXIT_CODES:
            assert f"  {code}  " in proc.stdout
    else:
        assert proc.stdout.startswith(f"firecrestspawner-singleuser {firecrestspawner.__version__}")


def test_help_wins_over_other_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert singleuser.main(["--notebook-dir=/x", "--help"]) == 0
    assert "FIRECRESTSPAWNER_PORT_RANGE" in capsys.readouterr().out


def test_missing_environment_is_the_launchers_own_code() -> None:
    proc = subprocess.run(_launcher_command(), env={}, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == singleuser.EXIT_BAD_ENV
    assert "missing environment variable(s)" in proc.stderr


def test_exit_codes_are_distinct_and_outside_singleusers() -> None:
    codes = list(singleuser.EXIT_CODES)
    assert len(set(codes)) == len(codes) == 5
    assert all(90 <= code <= 99 for code in codes)  # below 128+N (signals), above 0/1/2
    exe = Path(sys.executable).parent / "jupyterhub-singleuser"
    if not exe.exists():
        unavailable("tools", f"no jupyterhub-singleuser next to {sys.executable}: "
                             "pip install jupyterhub")
    # jupyterhub-singleuser's own failure for a bad option: 2, the launcher's old code
    # for a bad environment (without hub variables it exits 1: docs/launcher.md)
    proc = subprocess.run([str(exe), "--no-such-option"],
                          env={"PATH": os.defpath, "HOME": "/nonexistent"},
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode not in (0, *codes), proc.returncode
