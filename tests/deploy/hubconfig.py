"""The hub container's configuration, given the way the Helm chart gives it: data, not code.

The hub image reads one configuration file (``/etc/f7t4jhub/config/hub.yaml``) and one
secret per file (``/etc/f7t4jhub/secrets/<name>``); see docs/hub-config.md. This
module writes both into a directory on the host that the test mounts read-only into
the hub container — no ``jupyterhub_config.py`` and no ``conf.d`` of the test's own.
Everything not set here is the image's default (a hub restart keeps servers, the proxy
is external, ...), which is what a deployment gets.

The file is written as JSON (a YAML file, since YAML is a superset of JSON).
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where the hub image looks for them (docs/hub-config.md).
CONFIG_DIR_IN_IMAGE = "/etc/f7t4jhub/config"
SECRETS_DIR_IN_IMAGE = "/etc/f7t4jhub/secrets"
#: The hub image's user (uid 1000, group 0): mounted files must be readable by it.
HUB_UID, HUB_GID = 1000, 0


@dataclass
class HubSettings:
    """What differs between runs: addresses, the users, the offered environments."""

    hub_port: int
    proxy_url: str
    proxy_api_url: str
    proxy_token: str
    issuer: str
    client_id: str
    client_secret: str
    firecrest_url: str
    system: str
    users: list[str]
    container_images: list[str] = field(default_factory=list)
    venvs: list[str] = field(default_factory=list)
    workdir: str = "/home/{username}"
    poll_interval: int = 10
    script_setup: str = ""


def values(s: HubSettings) -> dict[str, Any]:
    """The configuration file's content (schema: firecrestspawner/hubconfig.schema.json)."""
    hub_url = f"http://127.0.0.1:{s.hub_port}"
    environments = (["container"] if s.container_images else []) + (["native"] if s.venvs else [])
    spawner: dict[str, Any] = {
        "firecrest_url": s.firecrest_url,
        "system": s.system,
        "workdir": s.workdir,
        "environments": environments,
        "default_environment": environments[0],
        "allowed_partitions": ["debug", "normal"],
        "default_partition": "debug",
        "default_time": "00:30:00",
        "max_time": "02:00:00",
        "start_timeout": 300,
        "start_poll_interval": 1.0,
        "http_timeout": 120,
        "poll_interval": s.poll_interval,
        "stop_timeout": 60,
        "default_url": "/lab",
    }
    if s.script_setup:
        spawner["script_setup"] = s.script_setup
    if s.container_images:
        spawner["container_engine"] = "podman"
        spawner["allowed_container_images"] = s.container_images
    if s.venvs:
        spawner["allowed_venvs"] = s.venvs
    return {
        "hub": {
            "public_url": s.proxy_url,
            "hub_bind_url": hub_url,
            "hub_connect_url": hub_url,
            "log_level": "DEBUG",
        },
        "proxy": {"api_url": s.proxy_api_url},
        "authenticator": {
            "type": "generic-oauth",
            "authorize_url": f"{s.issuer}/auth",
            "token_url": f"{s.issuer}/token",
            "userdata_url": f"{s.issuer}/userinfo/jwt",
            "oauth_callback_url": f"{s.proxy_url}/hub/oauth_callback",
            "scope": ["openid", "profile", "email", "offline_access"],
            "allowed_users": s.users,
            "enable_auth_state": True,
        },
        "spawner": spawner,
    }


def secret_files(s: HubSettings) -> dict[str, str]:
    """The secret files' contents."""
    return {
        "proxy-auth-token": s.proxy_token,
        "cookie-secret": _secrets.token_hex(32),
        "crypt-key": _secrets.token_hex(32),
        "oauth-client-id": s.client_id,
        "oauth-client-secret": s.client_secret,
    }


def _write(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    os.chown(path, HUB_UID, HUB_GID)
    path.chmod(mode)


def write(directory: Path, s: HubSettings) -> dict[str, dict[str, str]]:
    """Write the file and the secrets under ``directory``; return docker volume mounts."""
    config_dir, secrets_dir = directory / "config", directory / "secrets"
    for d in (config_dir, secrets_dir):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, HUB_UID, HUB_GID)
        d.chmod(0o750)
    _write(config_dir / "hub.yaml", json.dumps(values(s), indent=2) + "\n", 0o440)
    for name, value in secret_files(s).items():
        _write(secrets_dir / name, value + "\n", 0o400)
    return {
        str(config_dir): {"bind": CONFIG_DIR_IN_IMAGE, "mode": "ro"},
        str(secrets_dir): {"bind": SECRETS_DIR_IN_IMAGE, "mode": "ro"},
    }
