"""FirecRESTSpawner's settings: every configurable value, checked when it is set.

:class:`FirecRESTSettings` is the base class of
:class:`~firecrestspawner.spawner.FirecRESTSpawner` that holds its traitlets. Each
setting that can be checked on its own has a ``@validate`` method (a wrong value
raises :class:`~firecrestspawner.config.ConfigError` naming the setting as soon as
the configuration is loaded: at hub start-up when ``jupyterhub_config.py`` ends with
``check_config(c)``, else when the first spawner is created); settings that depend on
each other are checked by :meth:`FirecRESTSettings.check_settings`. The site's
``environment`` (JupyterHub's ``Spawner.environment``) is checked too: each name must
be a shell variable name, each value a string.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Dict, Float, Int, List, Unicode, Union, default, validate
from traitlets.config import LoggingConfigurable

from . import liveform
from .compute.hosts import NodeAddressing
from .config import ConfigError
from .jobnames import DEFAULT_JOB_NAME, default_hub_id, hub_id_problem, job_name_problem
from .options import Limits
from .script import check_directive, check_template, packaged_template
from .tls import TLSSettingError, ssl_context
from .tokens import TokenEndpoint

_SYSTEM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# job_log_dir: relative or absolute, format fields allowed, never '..' or shell syntax
_LOG_DIR_RE = re.compile(r"(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_.+{}/-]{1,255}\Z")
# job_output: one file name; %j is the only pattern
_LOG_NAME_RE = re.compile(r"(?:[A-Za-z0-9_.+-]|%j){1,128}\Z")


class FirecRESTSettings(LoggingConfigurable):
    """The settings of FirecRESTSpawner (configure them as ``c.FirecRESTSpawner.<name>``);
    a base class of the spawner, next to JupyterHub's ``Spawner``."""

    if TYPE_CHECKING:  # provided by JupyterHub's Spawner, the other base class
        authenticator: Any

    # ---------------------------------------------------------------- FirecREST
    firecrest_url = Unicode(
        "", help="Base URL of the FirecREST v2 API, e.g. https://firecrest.example.org"
    ).tag(config=True)
    system = Unicode(
        "", help="FirecREST system (cluster) name the jobs run on, as in GET /status/systems"
    ).tag(config=True)
    workdir = Unicode(
        "",
        help="Working directory of the job on the cluster (absolute; {username} and other "
        "Spawner.format_string fields are expanded), e.g. /home/{username}",
    ).tag(config=True)
    verify_tls = Union(
        [Bool(), Unicode()], default_value=True,
        help="TLS verification for FirecREST and the token endpoints: True, False, or a CA "
        "bundle path",
    ).tag(config=True)
    firecrest_timeout = Float(
        15.0, help="Seconds one FirecREST request may take before it counts as failed"
    ).tag(config=True)

    # ---------------------------------------------------------------- script
    batch_script_template = Unicode(
        "",
        help="A site batch script template ({{directives}}, {{setup}}, {{launch}}, ... see "
        "firecrestspawner.script). Empty: the packaged template of the chosen environment.",
    ).tag(config=True)
    script_setup = Unicode(
        "", help="Shell lines inserted before the launch (e.g. module loads); trusted as is"
    ).tag(config=True)
    extra_directives = List(
        Unicode(), help="Extra sbatch options, one per item, e.g. ['--constraint=gpu']"
    ).tag(config=True)
    container_args = List(
        Unicode(), help="Extra srun arguments for container jobs, e.g. ['--container-mount-home']"
    ).tag(config=True)
    job_name = Unicode(
        DEFAULT_JOB_NAME,
        help="Slurm job name (format_string fields and {hub_id} expanded, then reduced to "
        "[A-Za-z0-9_.-], at most 64 characters); must contain {hub_id}, {username} and "
        "{servername}: the orphan sweep tells this hub's jobs apart by their names",
    ).tag(config=True)
    hub_id = Unicode(
        help="This hub's id in its job names (letters, digits, '_', '.'; at most 24). Two hubs "
        "sharing a FirecREST account must have different ids. Default: from JupyterHub's "
        "public_url host (e.g. 'jupyter.example.org'), else its base_url path, else 'hub'",
    ).tag(config=True)
    legacy_job_names = Bool(
        True, help="The orphan sweep also recognises the job names used before hub ids "
        "(jupyterhub-{username}-{servername}), so that an upgrade leaves no job behind. Set "
        "False when another hub (with the same user names) shares the FirecREST account",
    ).tag(config=True)
    job_output = Unicode(
        "jupyterhub-%j.log",
        help="File name of the job's output (stdout and stderr) in job_log_dir; %j is the "
        "job id (with an empty job_log_dir: sbatch --output, relative to workdir)",
    ).tag(config=True)
    job_log_dir = Unicode(
        ".jupyterhub-logs",
        help="Folder of the job's output, relative to workdir or absolute ({username} and "
        "other format_string fields expanded); the batch script creates it (mode 700) and "
        "sends its output there. Empty: sbatch writes job_output in workdir itself",
    ).tag(config=True)
    diagnostics_lines = Int(
        20, help="Last lines of the job's output shown when a start fails or a server ends "
        "unexpectedly (0: none; read through FirecREST's tail, secrets redacted)"
    ).tag(config=True)
    diagnostics_bytes = Int(
        8192, help="At most this many bytes of the job's output are read for diagnostics"
    ).tag(config=True)
    callback_url = Unicode(
        "",
        help="URL the job posts its host and port to. Empty: "
        "{JUPYTERHUB_API_URL}/firecrestspawner/callback (set hub_connect_url so that compute "
        "nodes can reach the hub)",
    ).tag(config=True)
    cancel_stale_jobs = Bool(
        True,
        help="When a server starts, cancel active jobs with its job name that the hub does not "
        "know (left by a hub that crashed while starting): one job list call, made beside the "
        "start once the new job's id is known",
    ).tag(config=True)
    port_range = Unicode(
        "", help="Port range 'lo-hi' the launcher picks its port from (empty: any free port)"
    ).tag(config=True)

    # ---------------------------------------------------------------- limits
    allowed_partitions = List(Unicode(), help="Partitions users may choose (empty: any)").tag(
        config=True)
    default_partition = Unicode("", help="Partition used when none is chosen").tag(config=True)
    allowed_accounts = List(Unicode(), help="Accounts users may choose (empty: any)").tag(
        config=True)
    default_account = Unicode("", help="Account used when none is chosen").tag(config=True)
    allowed_reservations = List(
        Unicode(), help="Reservations users may choose (empty: any)").tag(config=True)
    max_nodes = Int(1, help="Most nodes a user may request").tag(config=True)
    default_nodes = Int(1, help="Nodes requested by default").tag(config=True)
    max_time = Unicode("24:00:00", help="Longest time limit (HH:MM:SS or D-HH:MM:SS)").tag(
        config=True)
    default_time = Unicode("01:00:00", help="Default time limit").tag(config=True)
    max_gpus = Int(0, help="Most GPUs per node a user may request (0: no GPU field)").tag(
        config=True)
    default_gpus = Int(0, help="GPUs per node requested by default").tag(config=True)
    environments = List(
        Unicode(), default_value=["native"],
        help="Software environment kinds offered: native, uenv, container",
    ).tag(config=True)
    default_environment = Unicode("native", help="Environment kind selected by default").tag(
        config=True)
    allowed_venvs = List(
        Unicode(), help="Native Python environments (absolute venv paths) users may choose; "
        "empty: firecrestspawner-singleuser from PATH",
    ).tag(config=True)
    allowed_uenvs = Dict(
        help="uenv images users may choose, each with its allowed views, e.g. "
        "{'prgenv-gnu/24.11:v1': ['default']}"
    ).tag(config=True)
    allowed_container_images = List(
        Unicode(), help="Container images (EDF names/paths or image references) users may choose"
    ).tag(config=True)
    allow_custom_container_image = Bool(
        False, help="Let users type any container image matching the strict pattern"
    ).tag(config=True)
    container_engine = Unicode(
        "edf", help="Container engine: 'edf' (CSCS Container Engine), 'pyxis' (enroot/pyxis) "
        "or 'podman' (rootless Podman run by the job user)"
    ).tag(config=True)

    # ---------------------------------------------------------------- tokens
    token_url = Unicode(
        "", help="OAuth2 token endpoint for refresh_token grants (empty: the authenticator's "
        "token_url, e.g. GenericOAuthenticator's)",
    ).tag(config=True)
    token_client_id = Unicode(
        "", help="Client id for refresh grants (empty: the authenticator's client_id)"
    ).tag(config=True)
    token_client_secret = Unicode(
        "", help="Client secret for refresh grants (empty: the authenticator's client_secret)"
    ).tag(config=True)
    token_refresh_margin = Float(
        60.0, help="Refresh access tokens with fewer seconds left (FirecREST refuses < 30 s)"
    ).tag(config=True)
    service_client_id = Unicode(
        "", help="Service-account client id (client_credentials) used for polling; empty: "
        "poll with the user's token",
    ).tag(config=True)
    service_client_secret = Unicode("", help="Service-account client secret").tag(config=True)
    service_token_url = Unicode(
        "", help="Token endpoint of the service account (empty: token_url)"
    ).tag(config=True)
    batch_poll = Bool(
        True, help="With a service account: poll all the hub's servers with one job listing "
        "per poll_interval (GET /compute/{system}/jobs?allusers=true), shared by every "
        "spawner; jobs the listing does not show are polled one request each",
    ).tag(config=True)

    # ---------------------------------------------------------------- timing
    start_poll_interval = Float(
        2.0, help="Seconds between job state checks while a server starts"
    ).tag(config=True)
    poll_retries = Int(2, help="Immediate retries of a failed poll request (with backoff)").tag(
        config=True)
    poll_retry_backoff = Float(1.0, help="First retry delay in seconds; doubles each retry").tag(
        config=True)
    poll_cache_seconds = Float(
        -1.0, help="Reuse a job state this long (negative: half of poll_interval)"
    ).tag(config=True)
    not_found_grace = Float(
        60.0, help="Seconds after submission during which 'Job not found' is not final "
        "(FirecREST may not list a job at once)"
    ).tag(config=True)
    not_found_recheck = Float(
        2.0, help="Seconds before the second look that confirms a 'Job not found' answer "
        "(only two such answers in a row end a server)"
    ).tag(config=True)
    stop_timeout = Float(
        60.0, help="Seconds stop() waits for the cancelled job to reach a terminal state"
    ).tag(config=True)

    allow_requeue = Bool(
        False, help="Let Slurm requeue a job (node failure, preemption). False (default): "
        "jobs are submitted with --no-requeue, and a job seen requeued, preempted or back "
        "in PENDING after RUNNING ends its server (the job is cancelled if still alive)",
    ).tag(config=True)
    reconcile_backoff = Float(
        5.0, help="First delay in seconds before the reconciler retries ending a job whose "
        "end FirecREST did not confirm; doubles on each attempt"
    ).tag(config=True)
    reconcile_backoff_max = Float(
        300.0, help="Longest delay in seconds between two reconciler attempts"
    ).tag(config=True)
    reconcile_interval = Float(
        600.0, help="Seconds between sweeps of a user's job list for orphan jobs (jobs with "
        "this hub's job names that no server owns); 0: sweep only before a start"
    ).tag(config=True)
    node_addresses = Dict(
        help="How the hub reaches compute nodes, given their Slurm names, for the callback "
        "check: the host a job reports must be one of its allocated nodes as FirecREST "
        "reports them, in one of these forms. Keys: 'templates' (e.g. "
        "['{node}.cluster.example', '{node}-hsn0']), 'pattern' (a regular expression with a "
        "group 'node', e.g. '(?P<node>nid\\d+)\\.hsn\\.example'), 'accept_node_name' "
        "(default True). Empty: the node names only",
    ).tag(config=True)
    resolve_node_addresses = Bool(
        True, help="Also accept an IP address that one of the job's accepted node names "
        "resolves to (DNS lookup at callback time)"
    ).tag(config=True)
    callback_node_wait = Float(
        10.0, help="Seconds a callback may wait for FirecREST to report the job's nodes "
        "(its accounting reports RUNNING a little after the job started)"
    ).tag(config=True)
    token_timeout = Float(
        30.0, help="Seconds a token grant at the identity provider may take (separate from "
        "firecrest_timeout, long enough that a rotated refresh token is not lost)"
    ).tag(config=True)
    live_form = Bool(
        True, help="Fill the options form from FirecREST (partitions with their state and "
        "free nodes, reservations, the user's accounts), bounded by the allowed_* lists, and "
        "refuse choices the cluster does not offer right now"
    ).tag(config=True)
    live_form_ttl = Float(
        60.0, help="Seconds FirecREST's partitions, nodes and reservations (per system) and "
        "a user's accounts are reused by the live form and start-time checks"
    ).tag(config=True)
    live_form_timeout = Float(
        5.0, help="Seconds the live form waits for FirecREST before showing the site's "
        "defaults with a note"
    ).tag(config=True)
    health_check_ttl = Float(
        30.0, help="Before submitting, refuse the start when FirecREST's /status/systems "
        "reports the system's scheduler unhealthy; the answer is reused this many seconds "
        "by every start of the hub (0: no check)"
    ).tag(config=True)

    @default("env_keep")
    def _default_env_keep(self) -> list[str]:
        # The hub's PATH, VIRTUAL_ENV, ... would break the job's own environment.
        return []

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return 600

    @default("options_form")
    def _default_options_form(self) -> Callable[[Any], Awaitable[str]]:
        return liveform.options_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Callable[..., Awaitable[dict[str, Any]]]:
        return liveform.options_from_form

    @default("hub_id")
    def _default_hub_id(self) -> str:
        return default_hub_id(self.config.get("JupyterHub", {}))

    # ---------------------------------------------------------------- @validate
    @validate("hub_id")
    def _check_hub_id(self, proposal: Any) -> str:
        problem = hub_id_problem(proposal["value"])
        if problem:
            raise ConfigError(f"FirecRESTSpawner.hub_id: {problem}; e.g. 'jupyter.example.org'")
        return str(proposal["value"])

    @validate("job_name")
    def _check_job_name(self, proposal: Any) -> str:
        problem = job_name_problem(proposal["value"])
        if problem:
            raise ConfigError(f"FirecRESTSpawner.job_name: {problem}")
        return str(proposal["value"])

    @validate("firecrest_url")
    def _check_firecrest_url(self, proposal: Any) -> str:
        value = proposal["value"]
        if value and not re.match(r"https?://[^\s/?#]+[^\s?#]*\Z", value):
            raise ConfigError(f"FirecRESTSpawner.firecrest_url: {value!r} must be the http(s) "
                              "URL of the FirecREST v2 API, e.g. 'https://firecrest.example.org'")
        return str(value)

    @validate("system")
    def _check_system(self, proposal: Any) -> str:
        value = proposal["value"]
        if value and not _SYSTEM_RE.match(value):
            raise ConfigError(f"FirecRESTSpawner.system: {value!r} must name a FirecREST "
                              "system (see GET /status/systems), e.g. 'daint'")
        return str(value)

    @validate("workdir")
    def _check_workdir(self, proposal: Any) -> str:
        value = proposal["value"]
        if value and (not value.startswith("/") or any(c.isspace() for c in value)):
            raise ConfigError(f"FirecRESTSpawner.workdir: {value!r} must be an absolute path "
                              "without spaces, e.g. '/home/{username}'")
        return str(value)

    @validate("extra_directives")
    def _check_extra_directives(self, proposal: Any) -> list[str]:
        for directive in proposal["value"]:
            try:
                check_directive(directive, "FirecRESTSpawner.extra_directives")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        return list(proposal["value"])

    @validate("batch_script_template")
    def _check_batch_script_template(self, proposal: Any) -> str:
        if proposal["value"]:
            try:
                check_template(proposal["value"])
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        return str(proposal["value"])

    @validate("port_range")
    def _check_port_range(self, proposal: Any) -> str:
        value = proposal["value"]
        match = re.match(r"([0-9]{1,5})-([0-9]{1,5})\Z", value) if value else None
        if value and (match is None or not 1 <= int(match[1]) <= int(match[2]) <= 65535):
            raise ConfigError(f"FirecRESTSpawner.port_range: {value!r} must look like "
                              "'20000-30000' (low <= high, within 1-65535)")
        return str(value)

    @validate("token_refresh_margin")
    def _check_margin(self, proposal: Any) -> float:
        if proposal["value"] <= 30:
            raise ConfigError(f"FirecRESTSpawner.token_refresh_margin: {proposal['value']} "
                              "must exceed 30 s: FirecREST refuses tokens with less than 30 s left")
        return float(proposal["value"])

    @validate("firecrest_timeout", "start_poll_interval", "stop_timeout", "poll_retry_backoff",
              "callback_node_wait",
              "reconcile_backoff", "reconcile_backoff_max", "token_timeout")
    def _check_positive(self, proposal: Any) -> float:
        if proposal["value"] <= 0:
            raise ConfigError(f"FirecRESTSpawner.{proposal['trait'].name}: "
                              f"{proposal['value']} must be positive")
        return float(proposal["value"])

    @validate("job_log_dir")
    def _check_job_log_dir(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value and not _LOG_DIR_RE.match(value):
            raise ConfigError(f"FirecRESTSpawner.job_log_dir: {value!r} must be a path of "
                              "letters, digits and '_.+-/{}' (no spaces, quotes or '..'), "
                              "e.g. '.jupyterhub-logs' or '/scratch/{username}/logs'")
        return value

    @validate("job_output")
    def _check_job_output(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not _LOG_NAME_RE.match(value):
            raise ConfigError(f"FirecRESTSpawner.job_output: {value!r} must be a file name of "
                              "letters, digits, '_.+-' and %j (the job id), e.g. "
                              "'jupyterhub-%j.log'")
        return value

    @validate("live_form_timeout")
    def _check_live_timeout(self, proposal: Any) -> float:
        if proposal["value"] <= 0:
            raise ConfigError(f"FirecRESTSpawner.live_form_timeout: {proposal['value']} "
                              "must be positive")
        return float(proposal["value"])

    @validate("poll_retries", "not_found_recheck", "reconcile_interval", "not_found_grace",
              "live_form_ttl", "diagnostics_lines", "diagnostics_bytes")
    def _check_not_negative(self, proposal: Any) -> Any:
        if proposal["value"] < 0:
            raise ConfigError(f"FirecRESTSpawner.{proposal['trait'].name}: "
                              f"{proposal['value']} must not be negative")
        return proposal["value"]

    @validate("node_addresses")
    def _check_node_addresses(self, proposal: Any) -> dict[str, Any]:
        value = dict(proposal["value"])
        try:
            node_addressing(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"FirecRESTSpawner.node_addresses: {exc}") from None
        return value

    @validate("environment")
    def _check_environment(self, proposal: Any) -> dict[str, Any]:
        """JupyterHub's Spawner.environment: names must be shell variable names (the job
        gets them exported), values strings or callables."""
        env = proposal["value"]
        for name, value in env.items():
            if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
                raise ConfigError(
                    f"FirecRESTSpawner.environment: {str(name)[:40]!r} is not a variable name "
                    "(letters, digits and '_', not starting with a digit)")
            if not (isinstance(value, str) or callable(value)):
                raise ConfigError(
                    f"FirecRESTSpawner.environment: the value of {name} must be a string "
                    f"(or a callable returning one), got {type(value).__name__}")
        return dict(env)

    def limits(self) -> Limits:
        """The site limits from the configuration."""
        return Limits(
            allowed_partitions=list(self.allowed_partitions),
            default_partition=self.default_partition,
            allowed_accounts=list(self.allowed_accounts),
            default_account=self.default_account,
            allowed_reservations=list(self.allowed_reservations),
            max_nodes=self.max_nodes,
            default_nodes=self.default_nodes,
            max_time=self.max_time,
            default_time=self.default_time,
            max_gpus=self.max_gpus,
            default_gpus=self.default_gpus,
            environments=list(self.environments),
            default_environment=self.default_environment,
            allowed_venvs=list(self.allowed_venvs),
            allowed_uenvs={k: list(v) for k, v in self.allowed_uenvs.items()},
            allowed_container_images=list(self.allowed_container_images),
            allow_custom_container_image=self.allow_custom_container_image,
            container_engine=self.container_engine,
        )

    def _authenticator_setting(self, name: str) -> str:
        value = getattr(self.authenticator, name, "") if self.authenticator is not None else ""
        if not value:
            section = self.config.get("GenericOAuthenticator", {})
            value = section.get(name, "") if hasattr(section, "get") else ""
        return value if isinstance(value, str) else ""

    def token_endpoint(self) -> TokenEndpoint | None:
        """Where user tokens are refreshed (None when no token URL is known)."""
        url = self.token_url or self._authenticator_setting("token_url")
        if not url:
            return None
        return TokenEndpoint(
            url=url,
            client_id=self.token_client_id or self._authenticator_setting("client_id"),
            client_secret=self.token_client_secret or self._authenticator_setting("client_secret"),
            timeout=self.token_timeout,
            verify=self.verify_tls,
        )

    def check_settings(self) -> None:
        """Raise :class:`ConfigError` naming the first missing or wrong setting."""
        def fail(setting: str, message: str) -> None:
            raise ConfigError(f"FirecRESTSpawner.{setting}: {message}")

        if not self.firecrest_url:
            fail("firecrest_url", "is required: the http(s) URL of the FirecREST v2 API, "
                 "e.g. 'https://firecrest.example.org'")
        if not self.system:
            fail("system", "is required: a FirecREST system (see GET /status/systems), "
                 "e.g. 'daint'")
        if not self.workdir:
            fail("workdir", "is required: the job's working directory, e.g. '/home/{username}'")
        try:
            self.limits().check()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        engines = {"container": self.container_engine}
        try:
            if self.batch_script_template:
                check_template(self.batch_script_template)
            else:
                for env in self.environments:
                    check_template(packaged_template(env, engines.get(env, "edf")),
                                   f"packaged template for {env}")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        try:
            ssl_context(self.verify_tls)  # built once here, shared by every client
        except TLSSettingError as exc:
            raise ConfigError(str(exc)) from None
        if bool(self.service_client_id) != bool(self.service_client_secret):
            fail("service_client_secret" if self.service_client_id else "service_client_id",
                 "service_client_id and service_client_secret must be set together")
        if self.service_client_id and not (self.service_token_url or self.token_url
                                           or self._authenticator_setting("token_url")):
            fail("service_token_url", "is required for the service account")
        if self.authenticator is not None and self.token_endpoint() is None:
            fail("token_url", "no OAuth token endpoint is known for refreshing user tokens: "
                 "set FirecRESTSpawner.token_url or GenericOAuthenticator.token_url")


def node_addressing(value: dict[str, Any]) -> NodeAddressing:
    """The :class:`~.compute.hosts.NodeAddressing` of a ``node_addresses`` setting."""
    unknown = sorted(set(value) - {"templates", "pattern", "accept_node_name"})
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; use templates, pattern, accept_node_name")
    templates = value.get("templates", ())
    if isinstance(templates, str):
        templates = (templates,)
    return NodeAddressing(templates=tuple(str(t) for t in templates),
                          pattern=value.get("pattern"),
                          accept_node_name=bool(value.get("accept_node_name", True)))
