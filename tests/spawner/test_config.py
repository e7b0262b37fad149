"""Settings: wrong or missing ones fail with a message naming them; the documented
example configuration is valid; Slurm states are classified as FirecREST reports them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from firecrestspawner.config import ConfigError, check_config
from firecrestspawner.slurm import JobStatus, Phase, classify
from firecrestspawner.spawner import FirecRESTSpawner, validate_host, validate_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "spawner.md"


def config(**settings: Any) -> Config:
    c = Config()
    base = {"firecrest_url": "https://firecrest.example.org", "system": "daint",
            "workdir": "/users/{username}", "token_url": "https://auth.example.org/token"}
    for key, value in {**base, **settings}.items():
        setattr(c.FirecRESTSpawner, key, value)
    return c


@pytest.mark.parametrize("settings, setting", [
    ({"firecrest_url": ""}, "firecrest_url"),
    ({"firecrest_url": "firecrest.example.org"}, "firecrest_url"),
    ({"system": ""}, "system"),
    ({"system": "daint alps"}, "system"),
    ({"workdir": ""}, "workdir"),
    ({"workdir": "users/{username}"}, "workdir"),
    ({"allowed_partitions": ["normal"], "default_partition": "debug"}, "default_partition"),
    ({"max_nodes": 0}, "max_nodes"),
    ({"environments": ["docker"]}, "environments"),
    ({"environments": ["uenv"], "default_environment": "uenv"}, "allowed_uenvs"),
    ({"batch_script_template": "echo hi"}, "batch_script_template"),
    ({"batch_script_template": "#!/bin/bash\n{{partition}}\n{{launch}}"},
     "batch_script_template"),
    ({"extra_directives": ["--constraint=gpu\n#SBATCH --x"]}, "extra_directives"),
    ({"token_refresh_margin": 10.0}, "token_refresh_margin"),
    ({"port_range": "high"}, "port_range"),
    ({"service_client_id": "poller"}, "service_client_secret"),
    ({"stop_timeout": 0.0}, "stop_timeout"),
    ({"token_url": ""}, "token_url"),
])
def test_wrong_settings_are_named(settings: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError, match=rf"FirecRESTSpawner\.{setting}"):
        check_config(config(**settings))


def test_good_settings_pass() -> None:
    check_config(config(environments=["native", "uenv", "container"],
                        allowed_uenvs={"prgenv-gnu/24.11:v1": ["default"]},
                        allowed_container_images=["/capstor/edf/lab.toml"]))


def test_token_endpoint_defaults_to_generic_oauthenticator() -> None:
    pytest.importorskip("oauthenticator")
    from oauthenticator.generic import GenericOAuthenticator

    c = config(token_url="")
    c.GenericOAuthenticator.token_url = "https://auth.example.org/token"
    c.GenericOAuthenticator.client_id = "jupyterhub"
    c.GenericOAuthenticator.client_secret = "s3cret"
    authenticator = GenericOAuthenticator(config=c)
    spawner = FirecRESTSpawner(config=c, authenticator=authenticator)
    endpoint = spawner.token_endpoint()
    assert endpoint is not None
    assert (endpoint.url, endpoint.client_id, endpoint.client_secret) == (
        "https://auth.example.org/token", "jupyterhub", "s3cret")
    c.FirecRESTSpawner.token_url = "https://other.example.org/token"
    c.FirecRESTSpawner.token_client_id = "hub-refresher"
    endpoint = FirecRESTSpawner(config=c, authenticator=authenticator).token_endpoint()
    assert endpoint is not None
    assert (endpoint.url, endpoint.client_id) == ("https://other.example.org/token",
                                                  "hub-refresher")


def test_documented_example_configuration_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("oauthenticator")
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    monkeypatch.setenv("KEYCLOAK_CLIENT_SECRET", "from-the-environment")
    c = Config()
    exec(compile(code, str(DOC), "exec"), {"get_config": lambda: c})  # noqa: S102
    assert c.FirecRESTSpawner.system == "daint"
    spawner = FirecRESTSpawner(config=c)
    assert spawner.token_endpoint() is not None
    assert spawner.token_endpoint().client_secret == "from-the-environment"


@pytest.mark.parametrize("state, phase", [
    ("PENDING", Phase.QUEUED), ("RUNNING", Phase.RUNNING), ("COMPLETING", Phase.ENDING),
    ("COMPLETED", Phase.TERMINAL), ("FAILED", Phase.TERMINAL),
    ("CANCELLED by 1000", Phase.TERMINAL), ("CANCELLED+", Phase.TERMINAL),
    ("TIMEOUT", Phase.TERMINAL), ("NODE_FAIL", Phase.TERMINAL),
    ("OUT_OF_MEMORY", Phase.TERMINAL), ("PREEMPTED", Phase.TERMINAL),
    ("BOOT_FAIL", Phase.TERMINAL), ("DEADLINE", Phase.TERMINAL),
    ("SUSPENDED", Phase.QUEUED), ("REQUEUED", Phase.QUEUED), ("SOMETHING_NEW", Phase.UNKNOWN),
])
def test_slurm_states(state: str, phase: Phase) -> None:
    assert classify(state) is phase


def test_job_status_from_firecrest() -> None:
    pending = JobStatus.from_firecrest({"jobId": "4", "nodes": "", "status": {
        "state": "PENDING", "stateReason": "None", "exitCode": None}})
    assert pending.describe() == "PENDING" and not pending.over
    failed = JobStatus.from_firecrest({"jobId": 5, "nodes": "nid001", "status": {
        "state": "FAILED", "stateReason": "NonZeroExitCode", "exitCode": 2}})
    assert failed.job_id == "5" and failed.over
    assert failed.describe() == "FAILED (NonZeroExitCode), exit code 2"
    with pytest.raises(ValueError, match="status.state"):
        JobStatus.from_firecrest({"jobId": "6"})


@pytest.mark.parametrize("host", ["nid001234", "nid001.cluster.example.org", "10.1.2.3",
                                  "fe80::1", "[::1]", "node-1."])
def test_callback_hosts_accepted(host: str) -> None:
    assert validate_host(host)


@pytest.mark.parametrize("host", ["", "a b", "nid001;id", "-nid", "a..b", "x" * 300, 5,
                                  "host\n"])
def test_callback_hosts_refused(host: Any) -> None:
    with pytest.raises(ValueError, match="host"):
        validate_host(host)


@pytest.mark.parametrize("port", [0, 65536, -1, "8888", 8888.0, True])
def test_callback_ports_refused(port: Any) -> None:
    with pytest.raises(ValueError, match="port"):
        validate_port(port)


@pytest.mark.parametrize(("setting", "value", "needle"), [
    ("environment", {"BAD-NAME": "x"}, "not a variable name"),
    ("environment", {"OK": 3}, "must be a string"),
    ("node_addresses", {"pattern": "(nid"}, "not a regular expression"),
    ("node_addresses", {"templates": ["{host}.x"]}, "does not contain '{node}'"),
    ("node_addresses", {"suffix": ".x"}, "unknown key"),
    ("reconcile_backoff", 0.0, "must be positive"),
    ("port_range", "30000-20000", "low <= high"),
    ("hub_id", "hub-a", "contains '-': only letters, digits"),
    ("hub_id", "x" * 25, "at most 24"),
    ("job_name", "jupyterhub-{username}", "lacks {hub_id}, {servername}"),
])
def test_settings_are_checked_when_loaded(setting: str, value: Any, needle: str) -> None:
    """Settings (JupyterHub's environment included) fail when the configuration is
    loaded — at hub start-up with check_config(c) — naming the setting."""

    c = Config()
    setattr(c.FirecRESTSpawner, setting, value)
    with pytest.raises(ConfigError, match=rf"FirecRESTSpawner\.{setting}.*{re.escape(needle)}"):
        FirecRESTSpawner(config=c)
