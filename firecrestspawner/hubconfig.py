"""The hub's configuration as data: a YAML/JSON file plus secret files (hub side only).

The hub image's fixed ``jupyterhub_config.py`` calls :func:`configure`. It applies the
image defaults, then, when a configuration file is present, the structured settings
of that file, validated against ``hubconfig.schema.json`` (the same schema the Helm
chart's ``hub.config`` value uses), and the secrets read from files. No Python source is
ever built from these values. The format is documented in docs/hub-config.md.

Paths (environment variables override them):

- ``F7T4JHUB_CONFIG`` — the file (default :data:`DEFAULT_CONFIG`). Absent at the default
  path: image defaults only. Named by the variable but absent: an error.
- ``F7T4JHUB_SECRETS_DIR`` — the directory of secret files (default
  :data:`DEFAULT_SECRETS_DIR`), one value per file, named as in :data:`SECRET_FILES`.
- ``F7T4JHUB_CONF_D`` — the escape hatch's directory of ``*.py`` files (default
  :data:`DEFAULT_CONF_D`).

After all of them the image's config calls :func:`check_spawner`: every
FirecRESTSpawner setting is checked, and a wrong one stops the hub at start-up.

Check a file without a hub: ``python -m firecrestspawner.hubconfig check FILE``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/f7t4jhub/config/hub.yaml"
DEFAULT_SECRETS_DIR = "/etc/f7t4jhub/secrets"
CONFIG_ENV = "F7T4JHUB_CONFIG"
SECRETS_ENV = "F7T4JHUB_SECRETS_DIR"
DEFAULT_CONF_D = "/etc/jupyterhub/conf.d"
CONF_D_ENV = "F7T4JHUB_CONF_D"
DATA_DIR = "/srv/jupyterhub"
SPAWNER_CLASS = "firecrestspawner.spawner.FirecRESTSpawner"
#: Page templates the hub uses before JupyterHub's own (firecrestspawner.walltime).
HUB_TEMPLATES = str(resources.files("firecrestspawner") / "hub_templates")

#: secret file name -> what it holds
SECRET_FILES = {
    "proxy-auth-token": "the proxy's API token (the chp container reads the same file)",
    "cookie-secret": "the hub's cookie secret, hex (absent: generated on the data volume)",
    "crypt-key": "key encrypting users' tokens in the database, 64 hex digits "
    "(needed with authenticator.enable_auth_state)",
    "oauth-client-id": "the OIDC client id (authenticator type generic-oauth)",
    "oauth-client-secret": "the OIDC client secret (authenticator type generic-oauth)",
    "service-client-id": "optional: FirecRESTSpawner service-account client id",
    "service-client-secret": "optional: FirecRESTSpawner service-account client secret",
}

# Spawner settings inherited from JupyterHub's Spawner (set on FirecRESTSpawner too).
_BASE_SPAWNER_KEYS = {"start_timeout", "http_timeout", "poll_interval", "default_url"}


class HubConfigError(ValueError):
    """The configuration file or a secret file is wrong; the message names the key or file."""


@dataclass
class Secrets:
    """Secret values read from the secrets directory (absent files are None)."""

    directory: Path
    values: dict[str, str | None] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def require(self, name: str, why: str) -> str:
        value = self.values.get(name)
        if not value:
            raise HubConfigError(
                f"secret file {self.directory / name} is missing or empty: {why}; mount "
                f"{SECRET_FILES[name]} there (or set {SECRETS_ENV} to the directory that has it)"
            )
        return value


def schema() -> dict[str, Any]:
    """The JSON schema of the configuration file."""
    text = resources.files("firecrestspawner").joinpath("hubconfig.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _key_path(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _schema_at(root: dict[str, Any], path: Any) -> dict[str, Any]:
    node = root
    for part in path:
        props = node.get("properties", {})
        if isinstance(part, str) and part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif isinstance(node.get("items"), dict):
            node = node["items"]
        else:
            return {}
    return node


def validate(data: Any, source: str = "configuration") -> None:
    """Raise :class:`HubConfigError` naming the first wrong key of ``data``."""
    import jsonschema

    root = schema()
    validator = jsonschema.Draft202012Validator(root)
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return
    error = errors[0]
    where = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(_schema_at(root, where).get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in allowed)
        key = _key_path([*where, unknown[0]])
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise HubConfigError(
            f"{source}: {key}: unknown key; {hint}allowed here: {', '.join(allowed)}"
        )
    raise HubConfigError(f"{source}: {_key_path(where)}: {error.message}")


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate the configuration file (YAML or JSON)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise HubConfigError(
            f"cannot read the hub configuration {path}: {exc.strerror}; mount it there or set "
            f"{CONFIG_ENV} to its path"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HubConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    validate(data, str(path))
    return data  # type: ignore[no-any-return]


def read_secrets(directory: str | Path) -> Secrets:
    """Read every known secret file of ``directory`` (surrounding whitespace stripped)."""
    directory = Path(directory)
    values: dict[str, str | None] = {}
    for name in SECRET_FILES:
        try:
            values[name] = (directory / name).read_text().strip() or None
        except FileNotFoundError:
            values[name] = None
        except OSError as exc:
            raise HubConfigError(
                f"secret file {directory / name}: cannot read it ({exc.strerror}); mount it "
                f"readable by uid {os.getuid()} (e.g. fsGroup/defaultMode)"
            ) from exc
    return Secrets(directory, values)


def _hex_secret(secrets: Secrets, name: str, why: str, length: int | None = None) -> bytes:
    text = secrets.require(name, why)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise HubConfigError(
            f"secret file {secrets.directory / name}: not hex digits; generate one with "
            "`openssl rand -hex 32`"
        ) from None
    if length is not None and len(value) != length:
        raise HubConfigError(
            f"secret file {secrets.directory / name}: {len(value)} bytes, must be {length} "
            f"({2 * length} hex digits); generate one with `openssl rand -hex {length}`"
        )
    return value


def apply_defaults(c: Any, environ: Mapping[str, str] = os.environ) -> None:
    """The image's defaults (used with or without a configuration file)."""
    c.JupyterHub.spawner_class = SPAWNER_CLASS
    c.JupyterHub.db_url = f"sqlite:///{DATA_DIR}/jupyterhub.sqlite"
    c.JupyterHub.cookie_secret_file = f"{DATA_DIR}/jupyterhub_cookie_secret"
    c.JupyterHub.hub_bind_url = environ.get("HUB_BIND_URL", "http://0.0.0.0:8081")
    # Users' servers are Slurm jobs that outlive the hub: a hub restart (a new
    # configuration, a roll-out) must never cancel them.
    c.JupyterHub.cleanup_servers = False
    # The home page shows when each running server's Slurm job ends (walltime.py).
    c.JupyterHub.template_paths = [HUB_TEMPLATES]
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = environ.get("CONFIGPROXY_API_URL", "http://127.0.0.1:8001")


def _apply_hub(c: Any, hub: dict[str, Any]) -> None:
    for key in ("base_url", "public_url", "hub_bind_url", "hub_connect_url", "db_url",
                "log_level", "concurrent_spawn_limit", "active_server_limit"):
        if key in hub:
            setattr(c.JupyterHub, key, hub[key])
    if "shutdown_on_logout" in hub:
        c.Authenticator.shutdown_on_logout = hub["shutdown_on_logout"]
    if "admin_users" in hub:
        c.Authenticator.admin_users = set(hub["admin_users"])
    banners = hub.get("announcements", {})
    if banners:
        c.JupyterHub.template_vars = {
            ("announcement" if page == "all" else f"announcement_{page}"): html
            for page, html in banners.items()
        }


_AUTH_KEYS = ("authorize_url", "token_url", "userdata_url", "oauth_callback_url",
              "logout_redirect_url", "username_claim", "scope", "allow_all",
              "auth_state_groups_key", "validate_server_cert")


def _apply_authenticator(c: Any, auth: dict[str, Any], secrets: Secrets) -> None:
    kind = auth.get("type", "generic-oauth")
    c.JupyterHub.authenticator_class = kind
    if kind == "dummy":
        c.Authenticator.allow_all = auth.get("allow_all", False)
        c.Authenticator.allowed_users = set(auth.get("allowed_users", []))
        return
    section = c.GenericOAuthenticator
    section.client_id = secrets.require("oauth-client-id", "the OIDC login needs its client id")
    section.client_secret = secrets.require(
        "oauth-client-secret", "the OIDC login needs its client secret")
    section.username_claim = "preferred_username"
    section.scope = ["openid", "profile", "offline_access"]
    for key in _AUTH_KEYS:
        if key in auth:
            setattr(section, key, auth[key])
    for key in ("allowed_users", "allowed_groups", "admin_groups"):
        if key in auth:
            setattr(section, key, set(auth[key]))
    # The spawner takes the users' tokens from auth_state and refreshes them.
    c.Authenticator.enable_auth_state = auth.get("enable_auth_state", True)
    c.Authenticator.refresh_pre_spawn = auth.get("refresh_pre_spawn", True)
    c.Authenticator.auth_refresh_age = auth.get("auth_refresh_age", 300)
    if c.Authenticator.enable_auth_state:
        crypt_key = _hex_secret(secrets, "crypt-key", "authenticator.enable_auth_state "
                                "encrypts the users' tokens with it", length=32)
        c.CryptKeeper["keys"] = [crypt_key]  # item, not attribute: Config has a keys() method


def _apply_spawner(c: Any, spawner: dict[str, Any], secrets: Secrets) -> None:
    from .spawner import FirecRESTSpawner

    known = set(FirecRESTSpawner.class_trait_names(config=True))
    section = c.FirecRESTSpawner
    for key, value in spawner.items():
        if key not in known:
            raise HubConfigError(
                f"spawner.{key}: FirecRESTSpawner has no such setting in this image; "
                "remove it or update the image"
            )
        setattr(section, key, value)
    for name, trait in (("service-client-id", "service_client_id"),
                        ("service-client-secret", "service_client_secret")):
        value = secrets.get(name)
        if value:
            setattr(section, trait, value)


#: The culler's service name and role (docs/spawner.md#idle-culling).
CULLER_SERVICE = "idle-culler"
#: What jupyterhub-idle-culler needs: list users, read their servers' activity, stop servers.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]

_CULLER_FLAGS = {"every": "cull-every", "max_age": "max-age", "concurrency": "concurrency",
                 "cull_admin_users": "cull-admin-users",
                 "cull_named_servers": "cull-named-servers",
                 "remove_named_servers": "remove-named-servers"}


def culler_command(culler: Mapping[str, Any], python: str = sys.executable) -> list[str]:
    """The command line of the ``jupyterhub-idle-culler`` service for a ``culler`` section."""
    command = [python, "-m", "jupyterhub_idle_culler", f"--timeout={culler.get('timeout', 3600)}"]
    for key, flag in _CULLER_FLAGS.items():
        if key in culler:
            value = culler[key]
            text = str(value).lower() if isinstance(value, bool) else str(value)
            command.append(f"--{flag}={text}")
    return command


def apply_culler(c: Any, culler: Mapping[str, Any]) -> None:
    """Register the idle culler as a hub-managed service with a role of its own."""
    if not culler.get("enabled", True):
        return
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    services.append({"name": CULLER_SERVICE, "command": culler_command(culler)})
    roles.append({"name": CULLER_SERVICE, "scopes": list(CULLER_SCOPES),
                  "services": [CULLER_SERVICE]})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


def configure(c: Any, environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """Apply the image defaults, then the configuration file if there is one.

    Returns the validated data (None when no file was found at the default path).
    """
    apply_defaults(c, environ)
    path = environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    if not environ.get(CONFIG_ENV) and not Path(path).exists():
        return None
    data = load(path)
    secrets = read_secrets(environ.get(SECRETS_ENV) or DEFAULT_SECRETS_DIR)
    apply(c, data, secrets)
    return data


def conf_d(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The escape hatch's files, in the order the image's config loads them."""
    directory = environ.get(CONF_D_ENV) or DEFAULT_CONF_D
    return sorted(str(p) for p in Path(directory).glob("*.py"))


def check_spawner(c: Any) -> None:
    """Check every FirecRESTSpawner setting of the finished configuration ``c`` (the
    escape hatch's included, e.g. the site's ``environment``): the image's config calls
    this last, so that a wrong setting stops the hub at start-up with a sentence naming
    it and the fix, instead of failing every user's start.

    Nothing is checked when another spawner class is configured, or when no
    FirecRESTSpawner setting is given at all (an image run without configuration).
    Raises :class:`HubConfigError`.
    """
    spawner_class = c.JupyterHub.get("spawner_class", SPAWNER_CLASS)
    name = spawner_class if isinstance(spawner_class, str) else (
        f"{getattr(spawner_class, '__module__', '')}.{getattr(spawner_class, '__name__', '')}")
    if name != SPAWNER_CLASS or not c.get("FirecRESTSpawner"):
        return
    from traitlets import TraitError

    from .config import ConfigError, check_config

    try:
        check_config(c)
    except (ConfigError, TraitError) as exc:
        raise HubConfigError(f"{exc} (the hub does not start with a wrong spawner "
                             "setting; fix it in hub.yaml or the conf.d file that sets it)"
                             ) from None


def apply(c: Any, data: dict[str, Any], secrets: Secrets) -> None:
    """Apply validated ``data`` and ``secrets`` to the traitlets config ``c``."""
    c.ConfigurableHTTPProxy.auth_token = secrets.require(
        "proxy-auth-token", "the hub registers routes with the external proxy with it")
    cookie = secrets.get("cookie-secret")
    if cookie:
        c.JupyterHub.cookie_secret = _hex_secret(secrets, "cookie-secret", "cookie signing")
    _apply_hub(c, data.get("hub", {}))
    if "api_url" in data.get("proxy", {}):
        c.ConfigurableHTTPProxy.api_url = data["proxy"]["api_url"]
    _apply_authenticator(c, data.get("authenticator", {}), secrets)
    if "culler" in data:
        apply_culler(c, data["culler"])
    spawner = data.get("spawner")
    if spawner is not None:
        _apply_spawner(c, spawner, secrets)
        from traitlets import TraitError

        from .config import ConfigError, check_config

        try:  # a wrong value fails here, at start-up, not at the first user's start
            check_config(c)
        except (ConfigError, TraitError) as exc:
            raise HubConfigError(f"spawner: {exc}") from None


_REDACT = {"auth_token", "client_secret", "cookie_secret", "keys", "client_id",
           "service_client_id", "service_client_secret", "token_client_secret"}


def show(config_file: str) -> dict[str, Any]:
    """Load ``config_file`` (a jupyterhub_config.py) as JupyterHub does; the resulting
    settings as JSON-able data, secrets replaced by ``"<set>"``."""
    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    app.load_config_file(config_file)

    def plain(value: Any) -> Any:
        if isinstance(value, (set, frozenset)):
            return sorted(plain(v) for v in value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return repr(value)

    out: dict[str, Any] = {}
    for section in sorted(app.config):
        out[section] = {
            key: ("<set>" if key in _REDACT and value else plain(value))
            for key, value in sorted(app.config[section].items())
        }
    out["JupyterHub"]["cleanup_servers"] = app.cleanup_servers
    return out


def main(argv: list[str] | None = None) -> int:
    """``check FILE [--secrets DIR]``: validate; ``schema``: print the JSON schema;
    ``show [CONFIG_PY]``: the settings a jupyterhub_config.py produces."""
    parser = argparse.ArgumentParser(prog="python -m firecrestspawner.hubconfig")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a configuration file (and secrets)")
    check.add_argument("file")
    check.add_argument("--secrets", help="also apply it with the secret files of this directory")
    sub.add_parser("schema", help="print the JSON schema of the file")
    shw = sub.add_parser("show", help="load a jupyterhub_config.py as JupyterHub does; print "
                         "the resulting settings as JSON (secrets redacted)")
    shw.add_argument("config_py", nargs="?", default="/etc/jupyterhub/jupyterhub_config.py")
    args = parser.parse_args(argv)
    # Under ``python -m`` this module is __main__; jupyterhub_config.py raises the
    # importable module's error class.
    from firecrestspawner.hubconfig import HubConfigError as Error

    if args.command == "schema":
        print(json.dumps(schema(), indent=2))
        return 0
    try:
        if args.command == "show":
            print(json.dumps(show(args.config_py), indent=2))
            return 0
        data = load(args.file)
        if args.secrets:
            from traitlets.config import Config

            apply(Config(), data, read_secrets(args.secrets))
    except Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
