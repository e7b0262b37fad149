"""testinfra checks of the hub image "f7t4jhub" (run by ``python -m f7tbuild build hub``).

The hub is started from outside with ``--network host`` on free loopback ports, the
image's own default config plus a check config in /etc/jupyterhub/conf.d/ (dummy
authenticator, FirecRESTSpawner with valid settings, a service token), and asked over
HTTP: its API version, its users, and our callback route. With the chp image present
the request also goes through the real proxy.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from packaging.markers import Marker

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

from f7tbuild import catalogue, engine, lock
from tests.by_image.conftest import container_logs, free_port, process_argv, slowdown
from tests.by_image.layers import assert_no_build_secrets
from tests.support.require import unavailable

pytestmark = [pytest.mark.docker, pytest.mark.image("hub")]

REPO = Path(__file__).resolve().parents[2]
SPAWNER = "firecrestspawner.spawner.FirecRESTSpawner"
CHECK_CONFIG = '''\
"""Check settings mounted by tests/by_image/test_hub.py (loaded after the image's defaults)."""
import firecrestspawner.api  # noqa: F401 - registers the callback route
from firecrestspawner.config import check_config
from jupyterhub.proxy import Proxy
from traitlets import Bool


class RoutesInMemory(Proxy):
    """A proxy that only keeps the routing table (the hub API is asked directly)."""

    should_start = Bool(False)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.routes = {{}}

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {{"routespec": routespec, "target": target, "data": data}}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)


if {in_memory!r}:
    c.JupyterHub.proxy_class = RoutesInMemory
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"alice"}}
c.JupyterHub.services = [{{"name": "f7t-check", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [
    {{"name": "f7t-check", "scopes": ["list:users", "read:users"], "services": ["f7t-check"]}}
]
c.FirecRESTSpawner.firecrest_url = "https://firecrest.example.org"
c.FirecRESTSpawner.system = "cluster"
c.FirecRESTSpawner.workdir = "/home/{{username}}"
c.FirecRESTSpawner.token_url = "https://idp.example.org/realms/hpc/protocol/openid-connect/token"
check_config(c)
'''


def http_get(url: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """GET without env proxies; (status, lower-cased headers, body) even on 4xx/5xx."""
    headers = {"Authorization": f"token {token}"} if token else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def http_post(url: str, body: bytes, token: str | None = None) -> int:
    """POST JSON; the status code."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_api(url: str, name: str, timeout: float = 90.0) -> tuple[int, dict, bytes]:
    """Poll ``url`` until it answers 200 (bounded); fail with the container's logs."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, headers, body = http_get(url)
            if status == 200:
                return status, headers, body
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        try:
            running = engine.client().containers.get(name).attrs["State"]["Running"]
        except docker.errors.NotFound:
            running = False
        if not running:
            break
        time.sleep(0.5)
    raise AssertionError(f"hub API {url} not answering ({last}); logs:\n{container_logs(name)}")


def hub_stack() -> dict[str, str]:
    """The hub's stack pins, read through f7tbuild's catalogue loader."""
    (target,) = catalogue.load().select(["hub"])
    return dict(target.stack)


class RunningHub:
    """A hub container with its ports, token and testinfra host."""

    def __init__(self, name: str, host: Any, hub_port: int, public_port: int, token: str):
        self.name, self.host = name, host
        self.hub_port, self.public_port, self.token = hub_port, public_port, token

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}/hub/api"


def start_hub(
    run_container: Callable[..., tuple[str, Any]],
    image: str,
    tmp_path: Path,
    *,
    in_memory: bool = True,
    public_port: int | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> RunningHub:
    """Run the image's default command with the check config mounted in conf.d."""
    hub_port, token = free_port(), secrets.token_hex(24)
    public_port = public_port or free_port()
    conf = tmp_path / "50-check.py"
    conf.write_text(
        CHECK_CONFIG.format(
            in_memory=in_memory, public_port=public_port, hub_port=hub_port, token=token
        )
    )
    conf.chmod(0o644)
    tmp_path.chmod(0o755)
    name, host = run_container(
        image, env=env, volumes={str(conf): "/etc/jupyterhub/conf.d/50-check.py"}, user=user
    )
    hub = RunningHub(name, host, hub_port, public_port, token)
    wait_api(hub.api + "/", name, timeout=90 * slowdown(image))
    return hub


@pytest.fixture(scope="module")
def hub(
    image_ref: str, module_containers, tmp_path_factory: pytest.TempPathFactory
) -> RunningHub:
    """The hub under test, running with its in-memory routing table.

    One hub for the module: the checks using it only read (HTTP GETs, rejected POSTs, files,
    processes). Checks that need another configuration start their own hub.
    """
    return start_hub(module_containers, image_ref, tmp_path_factory.mktemp("hub"))


def test_api_answers_with_the_catalogue_version(hub: RunningHub) -> None:
    status, headers, body = http_get(hub.api + "/")
    assert status == 200
    want = hub_stack()["jupyterhub"]
    assert json.loads(body)["version"] == want
    assert headers.get("x-jupyterhub-version") == want


def test_hub_uses_the_firecrest_spawner_and_its_callback_route(hub: RunningHub) -> None:
    logs = container_logs(hub.name)
    assert f"Using Spawner: {SPAWNER}" in logs, logs[-3000:]
    # Our API handler is live in the running hub: no token -> 403, never 404.
    url = hub.api + "/firecrestspawner/callback"
    assert http_post(url, b'{"host": "node1", "port": 8888}') == 403
    assert http_post(url, b'{"host": "node1", "port": 8888}', token="not-a-server-token") == 403


def test_api_serves_users_to_a_service_token(hub: RunningHub) -> None:
    status, _, body = http_get(hub.api + "/users", token=hub.token)
    assert status == 200, body[:300]
    assert [u["name"] for u in json.loads(body)] == ["alice"]
    assert http_get(hub.api + "/users")[0] == 403


def test_runs_as_non_root_under_tini(image_ref: str, hub: RunningHub) -> None:
    host = hub.host
    assert host.check_output("id -u") == "1000"
    cmdline = process_argv(host, 1)
    assert cmdline[0] == "/usr/bin/tini", cmdline
    assert "jupyterhub" in " ".join(cmdline)
    children = host.check_output("cat /proc/1/task/1/children").split()
    assert children, "tini has no child"
    assert "jupyterhub" in " ".join(process_argv(host, children[0]))
    config = engine.inspect(image_ref)["Config"]
    assert config["User"] not in ("", "0", "root", "0:0")
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["Cmd"] == ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]


def test_data_dir_holds_the_database_and_secret(hub: RunningHub) -> None:
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret"):
        f = hub.host.file(f"/srv/jupyterhub/{name}")
        assert f.is_file, f"{name} not written to /srv/jupyterhub"
        assert f.uid == 1000
    assert hub.host.file("/srv/jupyterhub/jupyterhub_cookie_secret").mode & 0o077 == 0


def test_default_config_keeps_servers_on_hub_restart(hub: RunningHub) -> None:
    """The image's fixed jupyterhub_config.py, loaded as JupyterHub loads it, sets
    cleanup_servers = False (a restarted hub must not cancel users' Slurm jobs) and the
    external proxy; the running hub reads the same file."""
    shown = json.loads(hub.host.check_output("python -m firecrestspawner.hubconfig show"))
    assert shown["JupyterHub"]["cleanup_servers"] is False, shown["JupyterHub"]
    assert shown["JupyterHub"]["spawner_class"] == SPAWNER
    assert shown["ConfigurableHTTPProxy"]["should_start"] is False
    assert "/etc/jupyterhub/jupyterhub_config.py" in process_argv(hub.host, 1)


def test_locked_versions_are_installed(hub: RunningHub) -> None:
    """Every lock entry for this platform is installed at exactly the locked version."""
    host = hub.host
    py = host.check_output("python -c 'import platform; print(platform.python_version())'")
    env = {
        "python_version": ".".join(py.split(".")[:2]),
        "python_full_version": py,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": host.check_output("uname -m"),
    }
    wanted: dict[str, str] = {}
    text = lock.hub_lock_path(REPO).read_text()
    for line in text.splitlines():
        if not line or line[0] in " #":
            continue
        req, _, marker = line.rstrip(" \\").partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(env):
            continue
        name, version = req.strip().split("==")
        wanted[lock.normalise(name)] = version
    script = (
        "import importlib.metadata as m, json, re; "
        "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version "
        "for d in m.distributions()}))"
    )
    have = json.loads(host.check_output(f'python -c "{script}"'))
    wrong = {n: (v, have.get(n)) for n, v in wanted.items() if have.get(n) != v}
    assert not wrong, f"installed versions differ from the lock (want, have): {wrong}"
    for name, version in hub_stack().items():
        if name in lock.COMPUTE_ONLY:
            assert name not in have, f"{name} is compute-side only and must not be in the hub"
        else:
            assert have.get(name) == version, f"{name}: catalogue {version}, image {have.get(name)}"
    # the image's own pins (hub services such as jupyterhub-idle-culler)
    image_pins = tomllib.loads((REPO / "catalogue.toml").read_text())["images"]["hub"]
    for name, version in image_pins.get("versions", {}).items():
        name = lock.normalise(name)
        assert have.get(name) == version, f"{name}: catalogue {version}, image {have.get(name)}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert have.get("firecrestspawner") == project["version"]


def test_idle_culler_runs_from_the_hub_python(hub: RunningHub) -> None:
    """The service command the hub configuration registers (hubconfig culler) can start."""
    from firecrestspawner.hubconfig import culler_command

    command = culler_command({"timeout": 3600}, python="python")
    out = hub.host.check_output(" ".join([*command, "--help-all"]))
    assert "IdleCuller.timeout" in out
    pins = tomllib.loads((REPO / "catalogue.toml").read_text())["images"]["hub"]["versions"]
    version = hub.host.check_output(
        "python -c 'import jupyterhub_idle_culler as m; print(m.__version__)'")
    assert version == pins["jupyterhub-idle-culler"]


def test_no_compiler_node_or_proxy(hub: RunningHub) -> None:
    for tool in ("gcc", "cc", "c++", "make", "node", "npm", "npx", "configurable-http-proxy"):
        assert not hub.host.exists(tool), f"{tool} must not be in the hub image"


BYTECODE_CHECK = """\
import importlib.util, json, pathlib, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
sources = [p for p in site.rglob("*.py")]
missing = [str(p) for p in sources if not pathlib.Path(importlib.util.cache_from_source(p)).exists()]
print(json.dumps({"sources": len(sources), "missing": missing[:20], "n_missing": len(missing)}))
"""


def test_venv_is_byte_compiled(hub: RunningHub) -> None:
    """The venv is read-only for the hub's uid: byte code it lacks is compiled at every start."""
    out = json.loads(hub.host.check_output(f"python -c '{BYTECODE_CHECK}'"))
    assert out["sources"] > 1000, out
    # A file Python cannot compile (a package's Python-2-only test data) has no .pyc.
    assert out["n_missing"] <= out["sources"] // 100, out


def test_hub_runs_under_an_arbitrary_uid(image_ref: str, run_container, tmp_path: Path) -> None:
    """OpenShift/Kubernetes style: random uid, group 0."""
    hub = start_hub(run_container, image_ref, tmp_path, user="12345:0")
    assert hub.host.check_output("id -u") == "12345"
    status, _, body = http_get(hub.api + "/")
    assert status == 200 and json.loads(body)["version"] == hub_stack()["jupyterhub"]


def _chp_image() -> str | None:
    images = sorted(
        engine.client().images.list("f7t4jhub/chp"), key=lambda i: i.attrs["Created"], reverse=True
    )
    refs = [tag for image in images for tag in image.tags]
    return refs[0] if refs else None


def test_hub_behind_the_chp_proxy(image_ref: str, run_container, tmp_path: Path) -> None:
    """The image's default proxy settings (external chp) with the real chp image."""
    chp = _chp_image()
    if chp is None:
        unavailable(
            "docker", "no f7t4jhub/chp image here: build it first (python -m f7tbuild build chp)"
        )
    public, api, token = free_port(), free_port(), secrets.token_hex(24)
    run_container(
        chp,
        "--ip=127.0.0.1",
        f"--port={public}",
        "--api-ip=127.0.0.1",
        f"--api-port={api}",
        env={"CONFIGPROXY_AUTH_TOKEN": token},
    )
    hub = start_hub(
        run_container,
        image_ref,
        tmp_path,
        in_memory=False,
        public_port=public,
        env={"CONFIGPROXY_AUTH_TOKEN": token, "CONFIGPROXY_API_URL": f"http://127.0.0.1:{api}"},
    )
    _status, headers, body = wait_api(
        f"http://127.0.0.1:{public}/hub/api/", hub.name, timeout=90 * slowdown(image_ref)
    )
    assert json.loads(body)["version"] == hub_stack()["jupyterhub"]
    assert headers.get("x-jupyterhub-version") == hub_stack()["jupyterhub"]


def test_oci_labels_and_layer_order(image_ref: str, base_ref: str | None) -> None:
    labels = engine.labels(image_ref)
    # source may be empty (no git remote), but the label is always set.
    assert "org.opencontainers.image.source" in labels
    for key in ("title", "version", "revision", "created", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label image.{key} missing"
    assert labels["org.f7t4jhub.standin"] in ("true", "false")
    if base_ref and "standin" in base_ref:
        assert labels["org.f7t4jhub.standin"] == "true"
    # Our wheel is installed by the last non-empty layer (bind-mounted from the context,
    # BuildKit), and by no other: code changes rebuild only that one.
    history = engine.client().images.get(image_ref).history()
    non_empty = [str(layer["CreatedBy"]) for layer in history if layer.get("Size")]
    assert "/tmp/wheels" in non_empty[0], non_empty[:3]
    assert not any("/tmp/wheels" in step for step in non_empty[1:]), non_empty[:3]


def test_no_build_secrets_in_any_layer(
    image_ref: str, base_ref: str | None, ca_bundle: Path | None
) -> None:
    assert assert_no_build_secrets(image_ref, ca_bundle, base_ref) > 0
