"""The hub image's jupyterhub_config.py and the data file it reads (firecrestspawner.hubconfig).

The image's own config file is loaded the way JupyterHub loads it (its Application's
config loader), with the data file and secret files at paths given by the environment.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from firecrestspawner import hubconfig
from firecrestspawner.spawner import FirecRESTSpawner

REPO = Path(__file__).resolve().parents[2]
IMAGE_CONFIG = REPO / "images" / "hub" / "jupyterhub_config.py"

VALID: dict[str, Any] = {
    "hub": {
        "hub_connect_url": "http://f7t-hub:8081",
        "admin_users": ["alice"],
        "announcements": {"all": "maintenance on Friday", "login": "<b>welcome</b>"},
        "concurrent_spawn_limit": 20,
    },
    "proxy": {"api_url": "http://f7t-proxy-api:8001"},
    "authenticator": {
        "authorize_url": "https://idp.example.org/realms/hpc/protocol/openid-connect/auth",
        "token_url": "https://idp.example.org/realms/hpc/protocol/openid-connect/token",
        "userdata_url": "https://idp.example.org/realms/hpc/protocol/openid-connect/userinfo",
        "oauth_callback_url": "https://jupyter.example.org/hub/oauth_callback",
        "scope": ["openid", "profile", "offline_access", "firecrest-v2"],
        "allowed_groups": ["hpc-users"],
        "auth_state_groups_key": "oauth_user.groups",
    },
    "spawner": {
        "firecrest_url": "https://firecrest.example.org",
        "system": "daint",
        "workdir": "/users/{username}",
        "max_nodes": 4,
        "allowed_partitions": ["normal", "debug"],
        "default_partition": "normal",
        "allowed_uenvs": {"prgenv-gnu/24.11:v1": ["default"]},
        "environments": ["uenv", "native"],
        "default_environment": "uenv",
        "batch_script_template": "#!/bin/bash\n{{directives}}\n{{setup}}\n{{launch}}\n",
        "start_timeout": 900,
    },
}


def write_secrets(directory: Path, **override: str | None) -> dict[str, str]:
    values = {
        "proxy-auth-token": secrets.token_hex(32),
        "cookie-secret": secrets.token_hex(32),
        "crypt-key": secrets.token_hex(32),
        "oauth-client-id": "jupyterhub",
        "oauth-client-secret": secrets.token_urlsafe(24),
    }
    values.update({k: v for k, v in override.items() if v is not None})
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        if override.get(name, "") is None:
            continue
        (directory / name).write_text(value + "\n")
    return values


def load_image_config(monkeypatch: pytest.MonkeyPatch, data: Any, tmp_path: Path,
                      **secret_override: str | None) -> tuple[Any, dict[str, str]]:
    """Load images/hub/jupyterhub_config.py as JupyterHub does; (app, secrets written)."""
    from jupyterhub.app import JupyterHub

    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump(data))
    written = write_secrets(tmp_path / "secrets", **secret_override)
    monkeypatch.setenv(hubconfig.CONFIG_ENV, str(config))
    monkeypatch.setenv(hubconfig.SECRETS_ENV, str(tmp_path / "secrets"))
    app = JupyterHub()
    app.load_config_file(str(IMAGE_CONFIG))
    return app, written


def test_image_defaults_without_a_file_keep_servers_on_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyterhub.app import JupyterHub

    monkeypatch.delenv(hubconfig.CONFIG_ENV, raising=False)
    assert not Path(hubconfig.DEFAULT_CONFIG).exists()
    app = JupyterHub()
    app.load_config_file(str(IMAGE_CONFIG))
    assert app.cleanup_servers is False
    assert app.config.JupyterHub.spawner_class == hubconfig.SPAWNER_CLASS
    assert app.config.ConfigurableHTTPProxy.should_start is False
    # the home page template that shows each running job's end
    assert app.template_paths[0] == hubconfig.HUB_TEMPLATES
    assert (Path(app.template_paths[0]) / "home.html").is_file()


def test_the_file_and_secret_files_configure_hub_proxy_login_and_spawner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app, written = load_image_config(monkeypatch, VALID, tmp_path)
    cfg = app.config
    assert app.cleanup_servers is False
    assert cfg.JupyterHub.hub_connect_url == "http://f7t-hub:8081"
    assert cfg.JupyterHub.concurrent_spawn_limit == 20
    assert cfg.JupyterHub.cookie_secret == bytes.fromhex(written["cookie-secret"])
    assert cfg.JupyterHub.template_vars == {
        "announcement": "maintenance on Friday", "announcement_login": "<b>welcome</b>"}
    assert cfg.Authenticator.admin_users == {"alice"}
    assert cfg.ConfigurableHTTPProxy.should_start is False
    assert cfg.ConfigurableHTTPProxy.api_url == "http://f7t-proxy-api:8001"
    assert cfg.ConfigurableHTTPProxy.auth_token == written["proxy-auth-token"]
    assert cfg.JupyterHub.authenticator_class == "generic-oauth"
    oauth = cfg.GenericOAuthenticator
    assert oauth.client_id == "jupyterhub"
    assert oauth.client_secret == written["oauth-client-secret"]
    assert oauth.allowed_groups == {"hpc-users"}
    assert oauth.scope[-1] == "firecrest-v2"
    assert cfg.Authenticator.enable_auth_state is True
    assert cfg.CryptKeeper["keys"] == [bytes.fromhex(written["crypt-key"])]
    # The spawner built from this config carries the file's settings.
    spawner = FirecRESTSpawner(config=cfg)
    assert spawner.firecrest_url == "https://firecrest.example.org"
    assert spawner.system == "daint"
    assert spawner.max_nodes == 4
    assert spawner.allowed_uenvs == {"prgenv-gnu/24.11:v1": ["default"]}
    assert spawner.start_timeout == 900
    assert spawner.batch_script_template.startswith("#!/bin/bash")
    endpoint = spawner.token_endpoint()
    assert endpoint is not None and endpoint.url.endswith("/token")
    assert endpoint.client_secret == written["oauth-client-secret"]


def test_the_escape_hatch_runs_after_the_file(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """conf.d files are loaded after the structured settings (they win), and the
    spawner check comes after both."""
    text = IMAGE_CONFIG.read_text()
    configure_at = text.index("\nconfigure(c)")
    hatch_at = text.index("for _path in conf_d():")
    check_at = text.index("\ncheck_spawner(c)")
    assert configure_at < hatch_at < check_at


def test_a_real_hub_with_a_wrong_escape_hatch_setting_does_not_start(tmp_path: Path) -> None:
    """`jupyterhub` with the image's config, a valid file, and a conf.d file setting
    the site's environment wrongly: the process exits non-zero, naming the setting."""
    data = json.loads(json.dumps(VALID))
    (tmp_path / "hub.yaml").write_text(yaml.safe_dump(data))
    write_secrets(tmp_path / "secrets")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "50-site.py").write_text(
        'c.FirecRESTSpawner.environment = {"BAD-NAME": "x"}\n')
    env = {**os.environ, hubconfig.CONFIG_ENV: str(tmp_path / "hub.yaml"),
           hubconfig.SECRETS_ENV: str(tmp_path / "secrets"),
           hubconfig.CONF_D_ENV: str(tmp_path / "conf.d")}
    jupyterhub = Path(sys.executable).with_name("jupyterhub")

    proc = subprocess.run([str(jupyterhub), "-f", str(IMAGE_CONFIG)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)

    assert proc.returncode != 0
    assert ("FirecRESTSpawner.environment: 'BAD-NAME' is not a variable name"
            in proc.stderr), proc.stderr[-3000:]
    assert "fix it in hub.yaml or the conf.d file" in proc.stderr


def test_the_spawner_check_skips_other_spawners_and_bare_images() -> None:
    from traitlets.config import Config

    c = Config()
    c.JupyterHub.spawner_class = hubconfig.SPAWNER_CLASS
    hubconfig.check_spawner(c)  # no FirecRESTSpawner setting at all: the bare image
    c.FirecRESTSpawner.environment = {"BAD-NAME": "x"}
    with pytest.raises(hubconfig.HubConfigError, match="FirecRESTSpawner.environment"):
        hubconfig.check_spawner(c)
    c.JupyterHub.spawner_class = "simple"
    hubconfig.check_spawner(c)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["spawner"].update(max_nodez=4),
         "spawner.max_nodez: unknown key; did you mean 'max_nodes'?"),
        (lambda d: d["spawner"].update(max_nodes="four"),
         "spawner.max_nodes: 'four' is not of type 'integer'"),
        (lambda d: d["authenticator"].update(client_secret="in-the-file"),
         "authenticator.client_secret: unknown key"),
        (lambda d: d.update(extraConfig="import os"), "extraConfig: unknown key"),
        (lambda d: d["spawner"].update(firecrest_url="firecrest.example.org"),
         "spawner.firecrest_url: 'firecrest.example.org' does not match"),
        (lambda d: d["hub"]["announcements"].update(hom="x"),
         "hub.announcements.hom: unknown key; did you mean 'home'?"),
    ],
)
def test_a_bad_key_is_named(mutate: Any, message: str) -> None:
    data = json.loads(json.dumps(VALID))
    mutate(data)
    with pytest.raises(hubconfig.HubConfigError) as info:
        hubconfig.validate(data, "hub.yaml")
    assert str(info.value).startswith("hub.yaml: "), info.value
    assert message in str(info.value)


def test_the_hub_refuses_a_bad_file_at_start_up(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    data = json.loads(json.dumps(VALID))
    data["spawner"]["default_partition"] = "gpu"  # not among allowed_partitions
    with pytest.raises(hubconfig.HubConfigError, match="spawner: FirecRESTSpawner"):
        load_image_config(monkeypatch, data, tmp_path)


@pytest.mark.parametrize(
    ("secret", "value", "message"),
    [
        ("proxy-auth-token", None, "proxy-auth-token is missing or empty"),
        ("oauth-client-secret", "", "oauth-client-secret is missing or empty"),
        ("crypt-key", "abcd", "crypt-key: 2 bytes, must be 32"),
        ("cookie-secret", "not hex", "cookie-secret: not hex digits"),
    ],
)
def test_a_bad_secret_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    secret: str, value: str | None, message: str) -> None:
    with pytest.raises(hubconfig.HubConfigError, match=message):
        load_image_config(monkeypatch, VALID, tmp_path, **{secret: value})


def test_a_named_file_that_is_absent_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    from traitlets.config import Config

    monkeypatch.setenv(hubconfig.CONFIG_ENV, str(tmp_path / "absent.yaml"))
    with pytest.raises(hubconfig.HubConfigError, match="cannot read the hub configuration"):
        hubconfig.configure(Config())


def test_dummy_login_needs_no_oauth_secrets(tmp_path: Path) -> None:
    from traitlets.config import Config

    data = {"authenticator": {"type": "dummy", "allowed_users": ["alice"]}}
    hubconfig.validate(data)
    write_secrets(tmp_path, **{"oauth-client-id": None, "oauth-client-secret": None,
                               "crypt-key": None})
    c = Config()
    hubconfig.apply(c, data, hubconfig.read_secrets(tmp_path))
    assert c.JupyterHub.authenticator_class == "dummy"
    assert c.Authenticator.allowed_users == {"alice"}


def test_schema_spawner_keys_are_firecrestspawner_settings() -> None:
    """Every spawner key of the schema is a configurable trait with a matching type."""
    from traitlets import Bool, Dict, Float, Int, List, Unicode, Union

    kinds = {Bool: "boolean", Int: "integer", Float: "number", Unicode: "string",
             List: "array", Dict: "object"}
    traits = FirecRESTSpawner.class_traits(config=True)
    for key, spec in hubconfig.schema()["properties"]["spawner"]["properties"].items():
        assert key in traits, f"schema key spawner.{key} is not a FirecRESTSpawner setting"
        trait = traits[key]
        if isinstance(trait, Union):
            continue
        want = next(v for k, v in kinds.items() if isinstance(trait, k))
        assert spec["type"] == want, f"spawner.{key}: schema {spec['type']}, trait {want}"
    assert "token_client_secret" not in hubconfig.schema()["properties"]["spawner"]["properties"]


def test_cli_check_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(VALID))
    bad.write_text("spawner: {max_nodez: 1}\n")
    write_secrets(tmp_path / "s")
    assert hubconfig.main(["check", str(good), "--secrets", str(tmp_path / "s")]) == 0
    assert hubconfig.main(["check", str(bad)]) == 1
    assert "spawner.max_nodez: unknown key" in capsys.readouterr().err
    monkeypatch.setenv(hubconfig.CONFIG_ENV, str(good))
    monkeypatch.setenv(hubconfig.SECRETS_ENV, str(tmp_path / "s"))
    assert hubconfig.main(["show", str(IMAGE_CONFIG)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["JupyterHub"]["cleanup_servers"] is False
    assert shown["ConfigurableHTTPProxy"]["auth_token"] == "<set>"
    assert shown["FirecRESTSpawner"]["system"] == "daint"


def test_the_culler_section_registers_a_service_with_its_own_role(tmp_path: Path) -> None:
    import sys

    from traitlets.config import Config

    data = {"authenticator": {"type": "dummy", "allowed_users": ["alice"]},
            "culler": {"timeout": 7200, "every": 300, "cull_admin_users": False}}
    hubconfig.validate(data)
    write_secrets(tmp_path)
    c = Config()
    hubconfig.apply(c, data, hubconfig.read_secrets(tmp_path))
    assert c.JupyterHub.services == [{"name": "idle-culler", "command": [
        sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=7200", "--cull-every=300",
        "--cull-admin-users=false"]}]
    assert c.JupyterHub.load_roles == [{
        "name": "idle-culler", "services": ["idle-culler"],
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}]

    c = Config()
    hubconfig.apply(c, {"culler": {"enabled": False}}, hubconfig.read_secrets(tmp_path))
    assert "services" not in c.JupyterHub and "load_roles" not in c.JupyterHub
    with pytest.raises(hubconfig.HubConfigError, match="culler.timeout: 0 is less than"):
        hubconfig.validate({"culler": {"timeout": 0}}, "hub.yaml")


def test_image_config_freezes_the_heap_once_the_hub_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image's config arranges firecrestspawner.gcfreeze for the running hub's start."""
    import asyncio

    from jupyterhub.app import JupyterHub

    from firecrestspawner import gcfreeze

    monkeypatch.delenv(hubconfig.CONFIG_ENV, raising=False)
    monkeypatch.delenv(gcfreeze.ENV, raising=False)
    loop = asyncio.new_event_loop()
    app = JupyterHub.instance()
    try:
        app._start_future = loop.create_future()
        app.load_config_file(str(IMAGE_CONFIG))
        assert gcfreeze._armed is app._start_future
    finally:
        JupyterHub.clear_instance()
        loop.close()
        gcfreeze._armed = None
