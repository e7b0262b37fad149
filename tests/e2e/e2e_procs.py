"""Processes of the end-to-end test: configurable-http-proxy and JupyterHub.

Both run as real subprocesses on loopback ports, each with its own log file that the
test prints when something fails. The hub and the proxy are separate processes (as in
a deployment where they run in separate pods), so the hub can be stopped and started
again while the proxy keeps routing to running JupyterLab servers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import requests


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.5,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    """Call ``check`` until it returns true; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    detail = on_timeout() if on_timeout else ""
    raise TimeoutError(f"{what}: not within {timeout:.0f}s{(chr(10) + detail) if detail else ''}")


class Proc:
    """A subprocess whose stdout and stderr go to one log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (appending to its log, so restarts keep the history)."""
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.name}: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode

    def tail(self, lines: int = 80) -> str:
        """The end of the log."""
        if not self.log.exists():
            return f"({self.log} does not exist)"
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Proxy(Proc):
    """configurable-http-proxy on loopback, routing to the hub by default."""

    def __init__(self, exe: Path, workdir: Path, hub_port: int) -> None:
        self.port = free_port()
        self.api_port = free_port()
        self.token = os.urandom(16).hex()
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.token}
        super().__init__(
            "configurable-http-proxy",
            [
                str(exe),
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--api-ip",
                "127.0.0.1",
                "--api-port",
                str(self.api_port),
                "--default-target",
                f"http://127.0.0.1:{hub_port}",
                "--error-target",
                f"http://127.0.0.1:{hub_port}/hub/error",
                "--log-level",
                "info",
            ],
            workdir / "proxy.log",
            env=env,
            cwd=workdir,
        )

    @property
    def url(self) -> str:
        """The public URL users go through."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The proxy's REST API (the hub adds and removes routes there)."""
        return f"http://127.0.0.1:{self.api_port}"

    def routes(self) -> dict[str, dict]:
        """The routing table, straight from the proxy's API."""
        r = requests.get(
            f"{self.api_url}/api/routes",
            timeout=5,
            headers={"Authorization": f"token {self.token}"},
        )
        r.raise_for_status()
        return r.json()

    def start_and_wait(self, timeout: float = 30.0) -> None:
        """Start and wait until the API answers."""
        self.start()

        def up() -> bool:
            if not self.alive:
                raise RuntimeError(f"configurable-http-proxy exited:\n{self.tail()}")
            try:
                self.routes()
                return True
            except requests.RequestException:
                return False

        wait_until(up, timeout, "configurable-http-proxy API answering", on_timeout=self.tail)


class Hub(Proc):
    """``jupyterhub`` with a generated config file in ``workdir`` (database kept there)."""

    def __init__(
        self, jupyterhub: Path, workdir: Path, hub_port: int, config: str, env: Mapping[str, str]
    ) -> None:
        self.port = hub_port
        self.config_file = workdir / "jupyterhub_config.py"
        self.config_file.write_text(config)
        super().__init__(
            "jupyterhub",
            [str(jupyterhub), "-f", str(self.config_file), "--debug"],
            workdir / "hub.log",
            env={**os.environ, **env},
            cwd=workdir,
        )

    @property
    def api_url(self) -> str:
        """The hub's REST API, directly (not through the proxy)."""
        return f"http://127.0.0.1:{self.port}/hub/api"

    def start_and_wait(self, timeout: float = 90.0) -> None:
        """Start and wait until ``GET /hub/api/`` answers."""
        self.start()

        def up() -> bool:
            if not self.alive:
                raise RuntimeError(
                    f"jupyterhub exited ({self.popen.returncode if self.popen else '?'}):"
                    f"\n{self.tail()}"
                )
            try:
                return requests.get(f"{self.api_url}/", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, timeout, "JupyterHub API answering", on_timeout=self.tail)
