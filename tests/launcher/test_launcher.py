"""firecrestspawner-singleuser, run for real: a stack venv, the hub stub, JupyterLab served.

Each catalogue stack (seed: JupyterHub 4.1 + JupyterLab 4.1; current: 6.x + 4.6) gets a
cached venv with its pins and this repository (tests.support.stacks). The launcher runs
as a subprocess exactly as a batch script would start it; the launch check
(tests.support.launch) plays the hub. Failure paths check exit codes and messages.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from firecrestspawner.compute import launcher as singleuser
from firecrestspawner.compute.envcodec import ENV_VAR, encode_env
from tests.support.launch import LaunchCheck, jupyterhub_env
from tests.support.require import unavailable
from tests.support.stacks import stack_names, stack_venv

pytestmark = pytest.mark.timeout(900)

#: Extra arguments jupyterhub-singleuser needs when the test itself runs as root.
ROOT_ARGS = ["--allow-root"] if os.getuid() == 0 else []


@pytest.fixture(scope="module", params=stack_names())
def stack(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(stack name, venv) for every stack in catalogue.toml."""
    return request.param, stack_venv(request.param)


@pytest.fixture(scope="module")
def current_venv() -> Path:
    """The current stack's venv (failure paths need only one)."""
    return stack_venv("current")


def launcher(venv: Path) -> str:
    """The console script installed in ``venv``."""
    return str(venv / "bin" / "firecrestspawner-singleuser")


def plain_env(lc: LaunchCheck) -> dict[str, str]:
    """lc's job env on a minimal base: no venv on PATH (the launcher must find its own)."""
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    return lc.process_env(base)


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


# ---------------------------------------------------------------------------
# JupyterLab is served
# ---------------------------------------------------------------------------
def test_lab_is_served(stack: tuple[str, Path]) -> None:
    name, venv = stack
    with LaunchCheck(user="alice") as lc:
        proc = lc.start([launcher(venv), *ROOT_ARGS], env=plain_env(lc))
        host, port = lc.wait_callback(timeout=60)
        assert host == "127.0.0.1"
        status = lc.assert_lab_serves(timeout=120)
        assert "started" in status
        # the launcher exec'd the server in place: same pid, our port and ip
        cmd = _cmdline(proc.pid)
        assert any(part.endswith("jupyterhub-singleuser") for part in cmd), cmd
        assert f"--port={port}" in cmd and "--ip=127.0.0.1" in cmd, cmd
        # the server authorized our token by asking the hub, as with a real hub
        assert any(r.path == "/hub/api/user" and r.status == 200 for r in lc.stub.requests), (
            lc.diagnostics()
        )
        # the token never reaches the log
        lc.processes[-1].popen.terminate()
        lc.processes[-1].popen.wait(timeout=30)
        assert lc.token not in lc.processes[-1].output(limit=10**7), f"token leaked ({name})"


def test_named_server_port_range_and_transient_hub_errors(current_venv: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with LaunchCheck(
        user="bob",
        server_name="gpu",
        transient_failures=2,
        extra_env={"FIRECRESTSPAWNER_PORT_RANGE": f"{free}-{free}"},
    ) as lc:
        lc.start([launcher(current_venv), *ROOT_ARGS], env=plain_env(lc))
        _, port = lc.wait_callback(timeout=60)
        assert port == free
        lc.assert_lab_serves(timeout=120)
        statuses = [r.status for r in lc.stub.requests if r.path.endswith("/callback")]
        assert statuses == [503, 503, 200]


def _reachable_by_others(path: str) -> bool:
    """True if any uid can execute ``path`` (o+x on the file and every parent directory)."""
    real = Path(os.path.realpath(path))
    return all(os.stat(p).st_mode & 0o001 for p in [real, *real.parents])


def test_runs_as_arbitrary_uid_without_writable_home() -> None:
    if os.getuid() != 0:
        unavailable("root", "switching to another uid needs root (setpriv)")
    if not shutil.which("setpriv"):
        unavailable("tools", "setpriv (util-linux) is not installed")
    uid = 12345
    try:
        pwd.getpwuid(uid)
        pytest.skip(f"uid {uid} exists on this machine; the test needs an unknown uid")
    except KeyError:
        pass
    # The venv's base interpreter must be reachable by that uid, as on a cluster.
    candidates = [sys.executable, shutil.which("python3", path="/usr/bin:/bin") or ""]
    python = next((c for c in candidates if c and _reachable_by_others(c)), None)
    if python is None:
        pytest.skip(f"no Python interpreter that uid {uid} may run (tried {candidates})")
    venv = stack_venv("current", python=python)
    base = Path(tempfile.mkdtemp(prefix="f7t-uid-"))
    try:
        base.chmod(0o755)
        home = base / "home"  # root-owned 0755: not writable by uid 12345
        home.mkdir()
        work = base / "work"
        work.mkdir()
        os.chown(work, uid, uid)
        with LaunchCheck(user="carol") as lc:
            env = lc.process_env({"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(work)})
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", launcher(venv)]
            proc = lc.start(cmd, env=env, cwd=work)
            lc.wait_callback(timeout=60)
            lc.assert_lab_serves(timeout=120)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            assert re.search(rf"^Uid:\s+{uid}\s", status, re.MULTILINE), status
            out = lc.processes[-1].output()
            assert "is not a writable directory" in out, out
            private = [p for p in work.iterdir() if p.name.startswith(f"firecrestspawner-{uid}-")]
            assert private and (private[0].stat().st_mode & 0o777) == 0o700, private
            assert any(private[0].joinpath("runtime").iterdir()), "no runtime files written"
            assert not any(home.iterdir()), "something was written into the read-only HOME"
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------
# Failure paths: exit code and a message that names the cause
# ---------------------------------------------------------------------------
def test_malformed_encoded_env(current_venv: Path) -> None:
    with LaunchCheck() as lc:
        env = plain_env(lc)
        env[ENV_VAR] = env[ENV_VAR][:-5] + "*,x'"  # cut and altered on the way
        lc.start([launcher(current_venv)], env=env)
        code, out = lc.wait_exit(timeout=60)
        assert code == singleuser.EXIT_BAD_ENV, out
        assert ENV_VAR in out and "base64url" in out
        assert not lc.stub.requests


def test_missing_variables_are_named(current_venv: Path) -> None:
    with LaunchCheck() as lc:
        env = plain_env(lc)
        job = jupyterhub_env("alice", lc.stub.api_url, lc.token)
        del job["JUPYTERHUB_API_TOKEN"], job["JUPYTERHUB_SERVICE_PREFIX"]
        env[ENV_VAR] = encode_env(job)
        lc.start([launcher(current_venv)], env=env)
        code, out = lc.wait_exit(timeout=60)
        assert code == singleuser.EXIT_BAD_ENV, out
        assert "JUPYTERHUB_API_TOKEN" in out and "JUPYTERHUB_SERVICE_PREFIX" in out
        assert (
            "JUPYTERHUB_USER" not in out.split("missing environment variable(s):")[1].split(".")[0]
        )
        assert not lc.stub.requests


def test_plain_variables_work_without_encoded_env(current_venv: Path) -> None:
    """Contract section 1: plain JUPYTERHUB_* variables are used when FIRECRESTSPAWNER_ENV is absent."""
    with LaunchCheck(user="dave") as lc:
        env = plain_env(lc)
        del env[ENV_VAR]
        env.update(jupyterhub_env("dave", lc.stub.api_url, lc.token))
        lc.start([launcher(current_venv), *ROOT_ARGS], env=env)
        lc.wait_callback(timeout=60)
        lc.assert_lab_serves(timeout=120)


def test_hub_refuses_callback(current_venv: Path) -> None:
    reason = "server alice/ is not starting; start it from the hub"
    with LaunchCheck(refuse_callback=(403, reason)) as lc:
        lc.start([launcher(current_venv)], env=plain_env(lc))
        code, out = lc.wait_exit(timeout=60)
        assert code == singleuser.EXIT_CALLBACK_REFUSED, out
        assert "HTTP 403" in out and reason in out
        assert "exec" not in out  # jupyterhub-singleuser was never started
        assert [r.status for r in lc.stub.requests] == [403]


def test_hub_unreachable_gives_up_in_bounded_time(current_venv: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    with LaunchCheck() as lc:
        env = plain_env(lc)
        job = jupyterhub_env("alice", f"http://127.0.0.1:{dead}/hub/api", lc.token)
        job["FIRECRESTSPAWNER_CALLBACK_TIMEOUT"] = "4"
        env[ENV_VAR] = encode_env(job)
        started = time.monotonic()
        lc.start([launcher(current_venv)], env=env)
        code, out = lc.wait_exit(timeout=60)
        elapsed = time.monotonic() - started
        assert code == singleuser.EXIT_HUB_UNREACHABLE, out
        assert f"could not reach the hub at http://127.0.0.1:{dead}/hub/api" in out
        assert "retrying" in out  # it did retry before giving up
        assert elapsed < 30
        assert lc.token not in out


def test_missing_jupyterhub_singleuser_is_explained(tmp_path: Path) -> None:
    """A bare interpreter (stdlib only) runs the launcher; without jupyterhub it says what to install."""
    bare = Path(sys.base_prefix) / "bin" / "python3"
    if not bare.exists():
        pytest.skip(f"no base interpreter at {bare}")
    probe = subprocess.run([str(bare), "-c", "import jupyterhub"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip(f"{bare} has jupyterhub installed")
    repo = Path(__file__).resolve().parents[2]
    with LaunchCheck() as lc:
        env = lc.process_env({"PATH": str(tmp_path), "PYTHONPATH": str(repo), "HOME": "/root"})
        lc.start([str(bare), "-m", "firecrestspawner.compute.launcher"], env=env)
        code, out = lc.wait_exit(timeout=60)
        assert code == singleuser.EXIT_NO_SINGLEUSER, out
        assert "jupyterhub-singleuser not found" in out and "pip install jupyterhub" in out
        assert not lc.stub.requests  # nothing reported to the hub for a server that cannot start
