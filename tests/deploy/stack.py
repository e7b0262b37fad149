"""The deployment under test, brought up on this machine and torn down whatever happens.

Pieces (all on loopback; the containers use the host's network, as pods on a node with
``hostNetwork`` would):

* :class:`OIDCProvider` — the certified Node.js ``oidc-provider`` (npm), one confidential
  client for the hub, JWT access tokens with ``preferred_username`` (``node/oidc-server.mjs``);
* :class:`FirecrestService` — the FirecREST double as its own process
  (``python -m firecrest_double --slurm``): real ``sbatch``/``squeue``/``scancel``, tokens
  verified against the provider's JWKS; it can be restarted like a real service;
* :class:`ProxyContainer` — the chp image;
* :class:`HubContainer` — the hub image, configured only through its documented
  configuration files (:mod:`tests.deploy.hubconfig`);
* :func:`load_into_podman` — the singleuser image, from the local Docker engine into the job
  user's rootless Podman storage (``docker save`` | ``podman load`` as that user).

Everything started is registered on a :class:`contextlib.ExitStack` by the fixtures, so a
failure at any point still stops processes, removes containers and cancels the jobs the
test's users own.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container

from tests.e2e.e2e_procs import Proc, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
#: Screenshots and step reports of the run (build/ is gitignored).
ARTEFACTS = REPO / "build" / "e2e-deploy"
#: The job user of the deployment test, made when missing (``userdel -r f7tdeploy``
#: removes it and its cached Podman images).
DEPLOY_USER = os.environ.get("F7T_E2E_DEPLOY_USER", "f7tdeploy")
#: The FirecREST system name of the local cluster.
SYSTEM = "cluster"
#: Label on every container this test starts (teardown and leftovers find them by it).
LABEL = "org.f7t4jhub.e2e-deploy"


class StackError(RuntimeError):
    """A piece of the deployment could not be brought up (the message names the fix)."""


class Unavailable(Exception):
    """A host service the deployment needs is missing (``service`` as in F7T_REQUIRE)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(reason)
        self.service = service
        self.reason = reason


def node_modules_problem() -> str | None:
    """Why the test's npm packages are missing, or None."""
    for package in ("oidc-provider", "playwright-core"):
        if not (NODE_DIR / "node_modules" / package / "package.json").exists():
            return (
                f"npm package {package} missing in {NODE_DIR}/node_modules: run "
                f"scripts/host-setup.sh (or: npm ci --prefix {NODE_DIR})"
            )
    return None


def _wait_ready_line(proc: Proc, timeout: float) -> str:
    """Wait for the ``ready <url>`` line a process prints once it listens; return the URL."""
    found: list[str] = []

    def ready() -> bool:
        if not proc.alive:
            raise StackError(f"{proc.name} exited:\n{proc.tail()}")
        for line in proc.log.read_text(errors="replace").splitlines():
            if line.startswith("ready "):
                found.append(line.split(" ", 1)[1].strip())
        return bool(found)

    wait_until(ready, timeout, f"{proc.name} listening", interval=0.2, on_timeout=proc.tail)
    return found[-1]


class OIDCProvider(Proc):
    """``node oidc-server.mjs``: the identity provider users log in at."""

    def __init__(self, workdir: Path, redirect_uri: str, access_token_ttl: int = 300) -> None:
        self.port = free_port()
        # "localhost", not 127.0.0.1: the browser keeps the provider's cookies apart
        # from the hub's (cookies are per host name, not per port).
        self.host = "localhost"
        self.client_id = "f7t4jhub"
        self.client_secret = secrets.token_urlsafe(24)
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "public_host": self.host,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": [redirect_uri],
            "access_token_ttl": access_token_ttl,
        }
        config_file = workdir / "oidc-provider.json"
        config_file.write_text(json.dumps(config))
        config_file.chmod(0o600)
        super().__init__(
            "oidc-provider",
            ["node", str(NODE_DIR / "oidc-server.mjs"), str(config_file)],
            workdir / "oidc-provider.log",
            cwd=NODE_DIR,
        )
        self.issuer = ""

    def start_and_wait(self, timeout: float = 30.0) -> None:
        """Start; wait until its discovery document answers."""
        self.start()
        self.issuer = _wait_ready_line(self, timeout)

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"


class FirecrestService(Proc):
    """The FirecREST double (real-Slurm backend) as a service process on a fixed port."""

    def __init__(self, workdir: Path, jwks_url: str, system: str, home_root: str) -> None:
        self.port = free_port()
        super().__init__(
            "firecrest",
            [
                sys.executable, "-m", "firecrest_double", "--slurm", "--system", system,
                "--port", str(self.port), "--jwks-url", jwks_url, "--fs", home_root,
            ],
            workdir / "firecrest.log",
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=REPO,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def start_and_wait(self, timeout: float = 60.0) -> None:
        """Start; wait for its ``ready`` line."""
        self.start()
        _wait_ready_line(self, timeout)

    def restart(self) -> None:
        """Stop (SIGTERM: running jobs are left alone, as a real FirecREST leaves them) and
        start again on the same port."""
        self.stop()
        self.start_and_wait()


def docker_client() -> docker.DockerClient:
    """The local engine (raises ``docker.errors.DockerException`` when unreachable)."""
    client = docker.from_env(timeout=120)
    client.ping()
    return client


def image_ref(client: docker.DockerClient, family: str, variant: str | None = None) -> str:
    """The local reference ``nox -s build`` gave an image: the real build, else its stand-in."""
    from f7tbuild.catalogue import load
    from f7tbuild.tags import STANDIN_SUFFIX, component

    targets = [t for t in load().targets if t.family == family and t.variant == variant]
    if not targets:
        raise StackError(f"no image {family} {variant or ''} in catalogue.toml")
    target = targets[0]
    tag = component(target)  # the version tag every build moves: 6.1.1, pytorch-25.10-lab-4.6.6
    for ref in (f"{target.repository}:{tag}", f"{target.repository}:{tag}{STANDIN_SUFFIX}"):
        try:
            client.images.get(ref)
            return ref
        except docker.errors.ImageNotFound:
            continue
    raise StackError(
        f"image {target.repository}:{tag}[{STANDIN_SUFFIX}] not built: run "
        f"nox -s build (or nox -s build-{family})"
    )


class ContainerProc:
    """A container of ours, run with the host's network, logs kept for the report."""

    def __init__(self, client: docker.DockerClient, name: str, image: str, run_id: str) -> None:
        self.client = client
        self.name = f"f7t-e2e-{name}-{run_id}"
        self.image = image
        self.run_id = run_id
        self.container: Container | None = None

    def run(self, **kwargs: Any) -> None:
        labels = {LABEL: self.run_id}
        self.container = self.client.containers.run(
            self.image, name=self.name, detach=True, network_mode="host", labels=labels,
            **kwargs,
        )

    def logs(self, tail: int = 200) -> str:
        if self.container is None:
            return "(not started)"
        try:
            return self.container.logs(tail=tail).decode(errors="replace")
        except docker.errors.APIError as exc:
            return f"(no logs: {exc})"

    @property
    def running(self) -> bool:
        if self.container is None:
            return False
        try:
            self.container.reload()
        except docker.errors.NotFound:
            return False
        return self.container.status == "running"

    def remove(self) -> None:
        if self.container is None:
            return
        try:
            self.container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


class ProxyContainer(ContainerProc):
    """The chp image: public port for users, API port for the hub."""

    def __init__(self, client: docker.DockerClient, image: str, run_id: str, hub_port: int) -> None:
        super().__init__(client, "proxy", image, run_id)
        self.port = free_port()
        self.api_port = free_port()
        self.token = secrets.token_hex(32)
        self.hub_port = hub_port

    def start_and_wait(self, timeout: float = 60.0) -> None:
        self.run(
            environment={"CONFIGPROXY_AUTH_TOKEN": self.token},
            command=[
                "--ip=127.0.0.1", f"--port={self.port}",
                "--api-ip=127.0.0.1", f"--api-port={self.api_port}",
                f"--default-target=http://127.0.0.1:{self.hub_port}",
                f"--error-target=http://127.0.0.1:{self.hub_port}/hub/error",
            ],
        )

        def up() -> bool:
            if not self.running:
                raise StackError(f"the proxy container exited:\n{self.logs()}")
            try:
                self.routes()
                return True
            except requests.RequestException:
                return False

        wait_until(up, timeout, "proxy API answering", on_timeout=self.logs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def routes(self) -> dict[str, Any]:
        r = requests.get(
            f"{self.api_url}/api/routes", timeout=5,
            headers={"Authorization": f"token {self.token}"},
        )
        r.raise_for_status()
        return r.json()


class HubContainer(ContainerProc):
    """The hub image with its configuration directory mounted read-only."""

    def __init__(
        self, client: docker.DockerClient, image: str, run_id: str, port: int,
        mounts: dict[str, dict[str, str]], environment: dict[str, str],
    ) -> None:
        super().__init__(client, "hub", image, run_id)
        self.port = port
        self.mounts = mounts
        self.environment = environment
        self.volume = f"f7t-e2e-hubdata-{run_id}"

    def start_and_wait(self, timeout: float = 120.0) -> None:
        self.client.volumes.create(self.volume, labels={LABEL: self.run_id})
        self.run(
            volumes={**self.mounts, self.volume: {"bind": "/srv/jupyterhub", "mode": "rw"}},
            environment=self.environment,
        )
        self.wait_up(timeout)

    def wait_up(self, timeout: float = 120.0) -> None:
        def up() -> bool:
            if not self.running:
                raise StackError(f"the hub container exited:\n{self.logs()}")
            try:
                return requests.get(f"{self.api_url}/", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, timeout, "hub API answering", on_timeout=self.logs)

    def restart(self, timeout: float = 120.0) -> None:
        """``docker restart``: SIGTERM to the hub (tini passes it on), then start again."""
        assert self.container is not None
        self.container.restart(timeout=30)
        self.wait_up(timeout)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/api"

    def remove(self) -> None:
        super().remove()
        try:
            self.client.volumes.get(self.volume).remove(force=True)
        except docker.errors.NotFound:
            pass


def remove_leftovers(client: docker.DockerClient) -> list[str]:
    """Remove containers and volumes a previous, killed run of this test left behind."""
    gone = []
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        c.remove(force=True, v=True)
        gone.append(c.name)
    for v in client.volumes.list(filters={"label": LABEL}):
        v.remove(force=True)
        gone.append(v.name)
    return gone


# -- the job user's Podman ---------------------------------------------------------------
def as_user(user: str, command: str, timeout: float, stdin: Any = None) -> subprocess.CompletedProcess[str]:
    """Run a shell command as ``user`` in a login environment (root only)."""
    return subprocess.run(
        ["runuser", "-l", user, "-c", command], stdin=stdin, capture_output=True,
        text=True, timeout=timeout, check=False,
    )


def podman_problem() -> str | None:
    """Why rootless Podman cannot be used, or None."""
    for tool in ("podman", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            return (
                f"'{tool}' not found: run scripts/host-setup.sh (installs podman uidmap "
                f"slirp4netns fuse-overlayfs)"
            )
    return None


def prepare_podman(user: str) -> None:
    """Overlay storage for ``user``'s rootless Podman (the default, vfs, copies every layer)."""
    pw = pwd.getpwnam(user)
    # A previous run's teardown ended the user's processes, Podman's pause process among
    # them: let Podman forget it (otherwise: "invalid internal status").
    as_user(user, "podman system migrate", 120)
    # Containers an earlier, killed run of this test left (the user is the test's own).
    as_user(user, "podman rm --all --force", 120)
    conf = Path(pw.pw_dir, ".config", "containers", "storage.conf")
    if conf.exists():
        return
    for d in (conf.parent.parent, conf.parent):
        d.mkdir(exist_ok=True)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    conf.write_text('[storage]\ndriver = "overlay"\n')
    os.chown(conf, pw.pw_uid, pw.pw_gid)


def load_into_podman(client: docker.DockerClient, image: str, user: str, timeout: float = 600) -> str:
    """Put ``image`` into ``user``'s Podman storage unless the same image id is there.

    Returns the reference the job uses (``localhost/<image>``)."""
    prepare_podman(user)
    ref = f"localhost/{image}"
    want = client.images.get(image).id.split(":", 1)[1]
    have = as_user(user, f"podman image inspect --format '{{{{.Id}}}}' {ref}", 60)
    if have.returncode == 0 and have.stdout.strip() == want:
        return ref
    # The engine's image tar (Docker SDK) streamed through a pipe into podman load.
    read_end, write_end = os.pipe()
    save_error: list[BaseException] = []

    def feed() -> None:
        try:
            with os.fdopen(write_end, "wb") as pipe:
                for chunk in client.api.get_image(image, chunk_size=1 << 20):
                    pipe.write(chunk)
        except (OSError, docker.errors.DockerException) as exc:  # also podman gone early
            save_error.append(exc)

    feeder = threading.Thread(target=feed, name="docker-save", daemon=True)
    feeder.start()
    try:
        loaded = as_user(user, "podman load", timeout, stdin=read_end)
    finally:
        os.close(read_end)
        feeder.join(60)
    if loaded.returncode != 0 or save_error:
        raise StackError(
            f"podman load of {image} as {user} failed (exit {loaded.returncode}"
            f"{f'; saving from the engine: {save_error[0]}' if save_error else ''}):\n"
            f"{loaded.stdout[-2000:]}\n{loaded.stderr[-2000:]}"
        )
    as_user(user, "podman image prune -f", 300)  # earlier builds of the image, now untagged
    return ref


@contextlib.contextmanager
def user_directory(user: str, name: str) -> Iterator[Path]:
    """``~user/name``, owned by ``user``, removed on exit."""
    pw = pwd.getpwnam(user)
    path = Path(pw.pw_dir) / name
    path.mkdir(mode=0o700)
    try:
        os.chown(path, pw.pw_uid, pw.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- Slurm -------------------------------------------------------------------------------
def slurm_job(job_id: str) -> dict[str, Any] | None:
    """The job as Slurm reports it (``squeue --json``; finished jobs stay MinJobAge)."""
    out = subprocess.run(
        ["squeue", "--json"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for job in json.loads(out)["jobs"]:
        if str(job["job_id"]) == str(job_id):
            return job
    return None


def scontrol_job(job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict (Slurm's own StartTime, SubmitTime, ...)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True,
        timeout=30, check=False,
    ).stdout
    fields: dict[str, str] = {}
    for word in out.split():
        key, sep, value = word.partition("=")
        if sep:
            fields[key] = value
    return fields


def active_jobs(user: str) -> list[str]:
    """Ids of ``user``'s jobs that are not finished."""
    out = subprocess.run(
        ["squeue", "-h", "-u", user, "-o", "%i %T"], capture_output=True, text=True,
        timeout=30, check=False,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def lab_leftovers(user: str) -> list[str]:
    """What of ``user``'s JupyterLab jobs still runs or is stored on the node: Podman
    containers the spawner's jobs started (label ``org.f7t4jhub.job``, in any state) and
    launcher processes. Empty once every job ended and cleaned up after itself."""
    from firecrestspawner.podman import JOB_LABEL

    found = []
    ps = as_user(user, f"podman ps --all --filter label={JOB_LABEL} "
                       "--format '{{.Names}} {{.State}}'", 60)
    if ps.returncode != 0:
        found.append(f"podman ps failed (exit {ps.returncode}): {ps.stderr.strip()[-500:]}")
    found += [f"container {line}" for line in ps.stdout.splitlines() if line.strip()]
    procs = subprocess.run(["pgrep", "-a", "-u", user, "-f", "firecrestspawner-singleuser"],
                           capture_output=True, text=True, timeout=30, check=False)
    found += [f"process {line}" for line in procs.stdout.splitlines() if line.strip()]
    return found


def cancel_all(user: str, wait: float = 30.0) -> list[str]:
    """Cancel every job of ``user`` (teardown) and wait, bounded, until they are gone."""
    jobs = active_jobs(user)
    if jobs:
        subprocess.run(["scancel", "-u", user], timeout=30, check=False)
        deadline = time.monotonic() + wait
        while active_jobs(user) and time.monotonic() < deadline:
            time.sleep(0.5)
    return jobs


def until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5,
          on_timeout: Callable[[], str] | None = None) -> Any:
    """Call ``check`` until it returns a true value and return that value (bounded)."""
    found: list[Any] = []

    def probe() -> bool:
        value = check()
        if value:
            found.append(value)
            return True
        return False

    wait_until(probe, timeout, what, interval=interval, on_timeout=on_timeout)
    return found[0]


@dataclass
class Deployment:
    """Everything that runs, with what tests need to reach it."""

    workdir: Path
    user: str
    idp: OIDCProvider
    firecrest: FirecrestService
    proxy: ProxyContainer
    hub: HubContainer
    images: dict[str, str]  # singleuser variant -> reference in the user's Podman
    venv: str
    client: docker.DockerClient
    job_dir: str  # the jobs' working directory, relative to each user's home
    logs: dict[str, Callable[[], str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.proxy.url

    def report(self) -> str:
        """Every piece's log, for a failure report."""
        parts = []
        for name, source in self.logs.items():
            try:
                text = source()
            except Exception as exc:  # noqa: BLE001 - never hide the failure being reported
                text = f"(could not collect: {exc!r})"
            parts.append(f"\n========== {name} ==========\n{text}")
        return "".join(parts)


def check_host() -> None:
    """Raise :class:`Unavailable` naming the first missing host service."""
    from tests.support.slurm import cluster_problem

    problem = cluster_problem(root_only=True)
    if problem:
        raise Unavailable("slurm", problem)
    for check in (podman_problem, node_modules_problem):
        problem = check()
        if problem:
            raise Unavailable("tools", problem)
    if shutil.which("chromium") is None:
        raise Unavailable("tools", "chromium not found: run scripts/host-setup.sh (Debian's chromium)")
    try:
        docker_client()
    except Exception as exc:
        raise Unavailable("docker", f"no usable Docker engine: {exc}") from exc


def _job_files(user: str, job_dir: str) -> str:
    home = Path(pwd.getpwnam(user).pw_dir) / job_dir
    texts = []
    found = [*home.glob("jupyterhub-*.log"), *home.glob(".jupyterhub-logs/jupyterhub-*.log")]
    for path in sorted(found, key=lambda p: p.stat().st_mtime)[-3:]:
        texts.append(f"--- {path}\n{path.read_text(errors='replace')[-6000:]}")
    return "\n".join(texts) or "(no job output files)"


@contextlib.contextmanager
def bring_up(
    user: str | None = None, *, poll_interval: int = 10, script_setup: str = "",
    variants: list[str] | None = None, extra_users: list[str] | None = None,
) -> Iterator[Deployment]:
    """The whole deployment for ``user`` (default: the cluster's job user), torn down on
    exit whatever happens. ``variants``: singleuser variants loaded into the user's Podman
    (default: every variant in the catalogue); ``extra_users`` may log in too (their
    Linux accounts are the caller's)."""
    from f7tbuild.catalogue import load
    from tests.deploy import hubconfig
    from tests.deploy.users import create_user, end_processes
    from tests.e2e import e2e_provision

    user = user or DEPLOY_USER
    client = docker_client()
    # F7T_E2E_HUB_IMAGE: try a hub image of your own (e.g. a local patch) in this deployment.
    hub_image = os.environ.get("F7T_E2E_HUB_IMAGE") or image_ref(client, "hub")
    chp_image = image_ref(client, "chp")
    if variants is None and os.environ.get("F7T_E2E_VARIANTS") is not None:
        # F7T_E2E_VARIANTS=v1,v2: only these singleuser variants (a quicker local run).
        variants = [v for v in os.environ["F7T_E2E_VARIANTS"].split(",") if v]
    if variants is None:
        variants = [t.variant for t in load().targets if t.family == "singleuser" and t.variant]
    singleuser = {v: image_ref(client, "singleuser", v) for v in variants}
    remove_leftovers(client)
    run_id = secrets.token_hex(4)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="f7t-e2e-deploy-"))
    with contextlib.ExitStack() as teardown:
        teardown.callback(shutil.rmtree, workdir, True)
        # A job user of its own: no other test's jobs are ever counted or cancelled. The
        # account and its Podman image store stay as a cache between runs (removing ~1 GB
        # of image layers takes about a minute); its processes are ended.
        create_user(user)
        teardown.callback(end_processes, user)
        # The jobs' working directory (their output files, the notebooks made in Lab):
        # one per run in each user's home, removed afterwards (after the jobs ended).
        job_dir = f"f7t-e2e-deploy-{run_id}"
        for name in [user, *(extra_users or [])]:
            teardown.enter_context(user_directory(name, job_dir))
        teardown.callback(cancel_all, user)
        try:
            venv = e2e_provision.job_venv()
        except e2e_provision.ProvisionError as exc:
            raise StackError(f"could not provision the job venv: {exc}") from exc
        images = {v: load_into_podman(client, ref, user) for v, ref in singleuser.items()}
        hub_port = free_port()
        proxy = ProxyContainer(client, chp_image, run_id, hub_port)
        idp = OIDCProvider(workdir, f"{proxy.url}/hub/oauth_callback")
        teardown.callback(idp.stop)
        idp.start_and_wait()
        firecrest = FirecrestService(workdir, idp.jwks_url, SYSTEM, "/home")
        teardown.callback(firecrest.stop)
        firecrest.start_and_wait()
        teardown.callback(proxy.remove)
        proxy.start_and_wait()
        settings = hubconfig.HubSettings(
            hub_port=hub_port, proxy_url=proxy.url, proxy_api_url=proxy.api_url,
            proxy_token=proxy.token, issuer=idp.issuer, client_id=idp.client_id,
            client_secret=idp.client_secret, firecrest_url=firecrest.url, system=SYSTEM,
            users=[user, *(extra_users or [])], container_images=list(images.values()), venvs=[str(venv)],
            poll_interval=poll_interval, script_setup=script_setup,
            workdir=f"/home/{{username}}/{job_dir}",
        )
        mounts = hubconfig.write(workdir / "hub", settings)
        hub = HubContainer(client, hub_image, run_id, hub_port, mounts, {})
        teardown.callback(hub.remove)
        dep = Deployment(workdir, user, idp, firecrest, proxy, hub, images, str(venv), client,
                         job_dir)
        dep.logs = {
            "hub container": lambda: hub.logs(300),
            "proxy container": lambda: proxy.logs(60),
            "FirecREST (double, real Slurm)": lambda: firecrest.tail(60),
            "OIDC provider": lambda: idp.tail(40),
            "job output": lambda: _job_files(user, job_dir),
        }
        try:
            hub.start_and_wait()
        except Exception:
            print(dep.report())
            raise
        yield dep
