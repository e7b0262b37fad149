"""The shared launch check: does a JupyterLab install start under firecrestspawner-singleuser?

Used by the singleuser image checks, the uenv/native recipe checks and the launcher's
own tests (docs/contracts.md section 4)::

    with LaunchCheck(user="alice") as lc:
        lc.start(["firecrestspawner-singleuser"])    # or lc.start_container(image, [...])
        host, port = lc.wait_callback(timeout=120)
        lc.assert_lab_serves()

:class:`LaunchCheck` starts a :class:`~tests.support.hubstub.HubStub` on loopback,
hands out the environment a spawner would give the job (:attr:`LaunchCheck.env`: only
``FIRECRESTSPAWNER_ENV`` plus the two loopback knobs), waits (bounded) for the
callback, then fetches ``/user/<name>/lab`` and ``/user/<name>/api/status`` from the
reported host and port with the server's token. Failures raise AssertionError carrying
the stub's request log and the output of every process started through :meth:`start`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

from firecrestspawner.compute.envcodec import ENV_VAR, encode_env

from .hubstub import HubStub
from .stacks import stack_versions

#: Markers of the JupyterLab page (its page config block and application name).
LAB_MARKERS = ('id="jupyter-config-data"', "JupyterLab")


def jupyterhub_env(
    user: str,
    api_url: str,
    api_token: str,
    server_name: str = "",
    public_url: str = "",
) -> dict[str, str]:
    """The ``JUPYTERHUB_*`` variables JupyterHub's ``Spawner.get_env`` gives a server.

    Same names and value shapes as JupyterHub 4.1-6.x (JSON scope lists contain commas,
    which is why they travel encoded). The port in ``JUPYTERHUB_SERVICE_URL`` is 0: the
    hub does not know it before the callback.
    """
    prefix = f"/user/{user}/" + (f"{server_name}/" if server_name else "")
    client_id = f"jupyterhub-user-{user}" + (f"-{server_name}" if server_name else "")
    access = [f"access:servers!server={user}/{server_name}", f"access:servers!user={user}"]
    hub_base = api_url.rsplit("/hub/api", 1)[0]
    return {
        "JUPYTERHUB_API_TOKEN": api_token,
        "JPY_API_TOKEN": api_token,
        "JUPYTERHUB_CLIENT_ID": client_id,
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": json.dumps(access),
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(access),
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": json.dumps([]),
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": server_name,
        "JUPYTERHUB_API_URL": api_url,
        "JUPYTERHUB_ACTIVITY_URL": f"{api_url}/users/{user}/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:0{prefix}",
        "JUPYTERHUB_PUBLIC_URL": f"{public_url or hub_base}{prefix}",
        "JUPYTERHUB_PUBLIC_HUB_URL": f"{public_url or hub_base}/hub/",
    }


def launch_env(
    user: str,
    api_url: str,
    api_token: str,
    server_name: str = "",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The job environment a FirecRESTSpawner submits: one encoded variable.

    ``extra`` variables are encoded along with the ``JUPYTERHUB_*`` ones (as the
    spawner's ``environment`` would be).
    """
    env = jupyterhub_env(user, api_url, api_token, server_name)
    env.update(extra or {})
    return {ENV_VAR: encode_env(env)}


class _Proc:
    """A process started by :meth:`LaunchCheck.start`, with its output in a file."""

    def __init__(self, cmd: Sequence[str], popen: subprocess.Popen[bytes], log: Path) -> None:
        self.cmd = list(cmd)
        self.popen = popen
        self.log = log

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int:
        """The exit code; raises subprocess.TimeoutExpired."""
        return self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        _terminate(self.popen)

    def output(self, limit: int = 6000) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no output file)"
        return text if len(text) <= limit else "...\n" + text[-limit:]


class _ContainerProc:
    """A container started by :meth:`LaunchCheck.start_container` (Docker SDK)."""

    def __init__(self, cmd: Sequence[str], container: Any) -> None:
        self.cmd = list(cmd)
        self.container = container

    def poll(self) -> int | None:
        import docker.errors

        try:
            self.container.reload()
        except docker.errors.NotFound:
            return -1
        state = self.container.attrs.get("State") or {}
        if state.get("Status") in ("exited", "dead"):
            return int(state.get("ExitCode", -1))
        return None

    def wait(self, timeout: float) -> int:
        """The exit code; raises subprocess.TimeoutExpired."""
        import requests

        try:
            return int(self.container.wait(timeout=timeout).get("StatusCode", -1))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            raise subprocess.TimeoutExpired(self.cmd, timeout) from None

    def exec(self, *command: str) -> str:
        """Run ``command`` in the running container; its output (fails on non-zero)."""
        code, out = self.container.exec_run(list(command))
        text = out.decode(errors="replace")
        if code != 0:
            raise AssertionError(f"{' '.join(command)} exited {code} in the container: {text}")
        return text

    def stop(self) -> None:
        import docker.errors

        try:
            self.container.remove(force=True)
        except docker.errors.DockerException:
            pass

    def output(self, limit: int = 6000) -> str:
        import docker.errors

        try:
            text = self.container.logs().decode(errors="replace")
        except docker.errors.DockerException as exc:
            return f"(no container logs: {exc})"
        return text if len(text) <= limit else "...\n" + text[-limit:]


class LaunchCheck:
    """Context manager: a hub stub, the job environment, bounded waits, diagnostics.

    Parameters:
        user: the JupyterHub user name.
        server_name: named server ('' for the default server).
        listen_ip: passed as ``FIRECRESTSPAWNER_IP`` (loopback by default: tests expose
            nothing); None leaves the launcher's default (0.0.0.0).
        report_host: passed as ``FIRECRESTSPAWNER_HOST``; None lets the launcher decide.
        refuse_callback: ``(status, message)`` to make the hub refuse the callback.
        transient_failures: answer the first n callbacks with 503.
        extra_env: more variables to encode into ``FIRECRESTSPAWNER_ENV``.
        hub_version: the version the stub claims (default: the current stack's).
    """

    def __init__(
        self,
        user: str = "alice",
        server_name: str = "",
        *,
        listen_ip: str | None = "127.0.0.1",
        report_host: str | None = "127.0.0.1",
        refuse_callback: tuple[int, str] | None = None,
        transient_failures: int = 0,
        extra_env: Mapping[str, str] | None = None,
        hub_version: str | None = None,
    ) -> None:
        self.user = user
        self.server_name = server_name
        self.listen_ip = listen_ip
        self.report_host = report_host
        self.extra_env = dict(extra_env or {})
        self.token = secrets.token_hex(24)
        self.stub = HubStub(
            user=user,
            api_token=self.token,
            server_name=server_name,
            version=hub_version or stack_versions("current")["jupyterhub"],
            refuse_callback=refuse_callback,
            transient_failures=transient_failures,
        )
        self.processes: list[_Proc | _ContainerProc] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.host: str | None = None
        self.port: int | None = None

    # -- life cycle ---------------------------------------------------------
    def __enter__(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="f7t-launchcheck-")
        self.stub.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.processes:
            proc.stop()
        self.stub.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- the job's environment ----------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """Exactly the variables the job gets from the spawner (plus loopback knobs)."""
        env = launch_env(self.user, self.stub.api_url, self.token, self.server_name, self.extra_env)
        if self.listen_ip is not None:
            env["FIRECRESTSPAWNER_IP"] = self.listen_ip
        if self.report_host is not None:
            env["FIRECRESTSPAWNER_HOST"] = self.report_host
        return env

    def process_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) plus :attr:`env`."""
        env = dict(os.environ if base is None else base)
        for name in list(env):
            if name.startswith(("JUPYTERHUB_", "FIRECRESTSPAWNER_", "JPY_")):
                del env[name]
        env.update(self.env)
        return env


    @property
    def workdir(self) -> Path:
        """A scratch directory removed on exit (process logs live here too)."""
        if self._tmp is None:
            raise RuntimeError("LaunchCheck is not entered; use it in a with statement")
        return Path(self._tmp.name)

    # -- processes ----------------------------------------------------------
    def start(
        self,
        cmd: Sequence[str],
        env: Mapping[str, str] | None = None,
        **popen_kwargs: Any,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in its own session with :meth:`process_env` (or ``env``).

        Its output goes to a log file shown in diagnostics; it is stopped on exit.
        """
        log = self.workdir / f"proc{len(self.processes)}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                list(cmd),
                env=dict(env) if env is not None else self.process_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen_kwargs,
            )
        self.processes.append(_Proc(cmd, popen, log))
        return popen

    def start_container(
        self,
        image: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        **run_kwargs: Any,
    ) -> _ContainerProc:
        """Start ``command`` in a container of ``image`` (Docker SDK, host network).

        Its environment is :attr:`env` plus ``env``; more ``containers.run`` options
        (``user``, ``volumes``, ``working_dir``...) pass through. Its logs are shown in
        diagnostics; it is removed on exit.
        """
        import docker.errors

        from f7tbuild import engine

        try:
            container = engine.client().containers.run(
                image,
                list(command),
                detach=True,
                network_mode="host",
                environment={**self.env, **(env or {})},
                name=f"f7t-launch-{secrets.token_hex(5)}",
                **run_kwargs,
            )
        except docker.errors.DockerException as exc:
            raise AssertionError(f"starting {' '.join(command)} in {image} failed: {exc}") from None
        proc = _ContainerProc([image, *command], container)
        self.processes.append(proc)
        return proc

    def wait_exit(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait (bounded) for the last started process to end; return (exit code, output)."""
        if not self.processes:
            raise RuntimeError("no process started: call start() first")
        proc = self.processes[-1]
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"process still running after {timeout:g} s\n" + self.diagnostics()
            ) from None
        return code, proc.output(limit=100_000)

    def diagnostics(self) -> str:
        """The stub's request log and every process's command, status and output."""
        parts = [self.stub.describe()]
        for proc in self.processes:
            code = proc.poll()
            state = "running" if code is None else f"exited {code}"
            parts.append(f"process {' '.join(proc.cmd)} ({state}); output:\n{proc.output()}")
        return "\n".join(parts)

    def _check_alive(self, what: str) -> None:
        for proc in self.processes:
            code = proc.poll()
            if code is not None:
                raise AssertionError(
                    f"{what}: process exited with code {code} before it was done\n"
                    + self.diagnostics()
                )

    # -- checks -------------------------------------------------------------
    def wait_callback(self, timeout: float = 120.0) -> tuple[str, int]:
        """Wait (at most ``timeout`` s) for the callback; return the reported (host, port)."""
        deadline = time.monotonic() + timeout
        while not self.stub.callback_event.wait(timeout=0.25):
            if self.processes and all(p.poll() is not None for p in self.processes):
                self._check_alive("waiting for the callback")
            if time.monotonic() > deadline:
                raise AssertionError(f"no callback within {timeout:g} s\n" + self.diagnostics())
        self.host, self.port = self.stub.callbacks[-1]
        return self.host, self.port

    def server_url(self, path: str = "") -> str:
        """URL under the server's prefix at the reported host and port."""
        if self.host is None or self.port is None:
            raise RuntimeError("no callback yet: call wait_callback() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.stub.server_path}{path.lstrip('/')}"

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str]:
        """GET ``path`` under the server prefix with the server's token; (status, text)."""
        request = urllib.request.Request(
            self.server_url(path), headers={"Authorization": f"token {self.token}"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def assert_lab_serves(self, timeout: float = 120.0) -> dict[str, Any]:
        """Assert ``lab`` serves the JupyterLab page and ``api/status`` answers JSON.

        Retries (bounded by ``timeout``) while the server is still coming up; returns
        the status JSON.
        """
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while True:
            self._check_alive("serving JupyterLab")
            try:
                status, text = self.get("lab")
                if status == 200 and all(m in text for m in LAB_MARKERS):
                    status, text = self.get("api/status")
                    if status == 200:
                        return dict(json.loads(text))
                    last = f"api/status -> {status}: {text[:300]}"
                else:
                    last = f"lab -> {status}: {text[:300]}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"JupyterLab not served at {self.server_url('lab')} within {timeout:g} s "
                    f"(last: {last})\n" + self.diagnostics()
                )
            time.sleep(1.0)


def _terminate(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group we created, then SIGKILL after ``grace`` seconds."""
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        popen.wait(timeout=grace)
