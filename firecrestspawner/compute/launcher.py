"""``firecrestspawner-singleuser``: the compute-side launcher run inside the Slurm job.

It bridges the gap between a batch job and JupyterHub: the hub cannot know in advance
on which node and port JupyterLab will listen, so the job tells it (docs/contracts.md
sections 1 and 2):

1. decode ``FIRECRESTSPAWNER_ENV`` (if set) and merge it into the environment;
2. check the ``JUPYTERHUB_*`` variables jupyterhub-singleuser needs are present;
3. pick a free port (``FIRECRESTSPAWNER_PORT_RANGE=lo-hi``, else any);
4. decide the host name the hub should connect to (``FIRECRESTSPAWNER_HOST``, else
   the node's fully qualified name);
5. ``POST`` ``{"host": ..., "port": ...}`` to the hub's callback URL with the server's
   API token, retrying connection errors and 5xx answers for a bounded time; the hub
   answers at once, 200 (host verified) or 202 (recorded: the hub checks that the host
   is one of the job's nodes while JupyterLab starts, and cancels the job if not);
6. exec ``jupyterhub-singleuser --port=<port> --ip=<ip>`` plus any extra arguments.

Only the standard library is used (plus :mod:`firecrestspawner.compute.envcodec` and
:mod:`firecrestspawner.compute.hosts`, themselves stdlib-only), so the launcher starts
fast and works next to any JupyterHub >= 4.1 installed on the node. Everything is logged
to stderr (the Slurm output file); the API token is never logged. See docs/launcher.md for the variables and exit codes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from firecrestspawner.compute.envcodec import ENV_VAR, decode_env
from firecrestspawner.compute.hosts import HostError, check_host

log = logging.getLogger("firecrestspawner-singleuser")

#: The launcher's own exit codes (docs/launcher.md), all in 90..95: jupyterhub-singleuser
#: (which replaces the launcher) exits 0, 1 on errors, 2 on bad command-line options, and
#: 128+N when killed by signal N, so a code in this range can only come from the launcher.
EXIT_BAD_ENV = 91
EXIT_CALLBACK_REFUSED = 92
EXIT_HUB_UNREACHABLE = 93
EXIT_NO_SINGLEUSER = 94
EXIT_NO_PORT = 95
EXIT_CODES = {
    EXIT_BAD_ENV: "the job environment is malformed or incomplete, or a knob is invalid",
    EXIT_CALLBACK_REFUSED: "the hub refused the callback",
    EXIT_HUB_UNREACHABLE: "the hub could not be reached in time",
    EXIT_NO_SINGLEUSER: "jupyterhub-singleuser is missing or cannot be executed",
    EXIT_NO_PORT: "no free port in FIRECRESTSPAWNER_PORT_RANGE",
}

HELP_OPTIONS = frozenset({"-h", "--help"})
VERSION_OPTIONS = frozenset({"-V", "--version"})

#: Variables jupyterhub-singleuser (and the callback) cannot do without.
REQUIRED_VARS = (
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_USER",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_SERVICE_PREFIX",
)

DEFAULT_CALLBACK_TIMEOUT = 120.0
ATTEMPT_TIMEOUT = 10.0
MAX_BACKOFF = 15.0
SINGLEUSER = "jupyterhub-singleuser"


class LaunchError(Exception):
    """A failure that ends the launcher with ``exit_code`` and a message naming the fix."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------
def merge_encoded_env(environ: MutableMapping[str, str]) -> int:
    """Decode ``FIRECRESTSPAWNER_ENV`` (if present) into ``environ``; return how many names.

    The encoded variable itself is removed afterwards, so it is not passed on to kernels.
    """
    encoded = environ.get(ENV_VAR)
    if encoded is None:
        return 0
    try:
        decoded = decode_env(encoded)
    except ValueError as exc:
        raise LaunchError(
            f"{exc}. The hub's spawner sets {ENV_VAR}; check that the batch script "
            "passes it on unchanged (do not quote, split or re-export it).",
            EXIT_BAD_ENV,
        ) from exc
    environ.update(decoded)
    del environ[ENV_VAR]
    return len(decoded)


def check_required(environ: Mapping[str, str]) -> None:
    """Raise LaunchError naming every missing or empty required variable."""
    missing = [name for name in REQUIRED_VARS if not environ.get(name)]
    if missing:
        raise LaunchError(
            "missing environment variable(s): " + ", ".join(missing) + ". They are set by "
            f"the hub's spawner (in {ENV_VAR} or directly); run this launcher only from a "
            "job submitted by JupyterHub, and make sure the batch script does not clear "
            "the environment (e.g. no 'env -i', no '--export=NONE').",
            EXIT_BAD_ENV,
        )


def _writable_dir(path: str | None) -> bool:
    """True if ``path`` is an existing directory this process can write into."""
    if not path:
        return False
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def ensure_private_dirs(environ: MutableMapping[str, str]) -> str | None:
    """Point Jupyter's runtime/data/settings dirs at a private temp dir if HOME is unusable.

    Jupyter writes runtime files (server info, kernel connection files), workspaces and
    settings under ``$HOME``. Jobs run under arbitrary uids in containers or with
    read-only home directories; then every such directory that is not already configured
    goes to a fresh 0700 directory under ``$TMPDIR`` (and so does the config directory,
    unless ``~/.jupyter`` exists). Returns that directory, or None.
    """
    home = environ.get("HOME") or os.path.expanduser("~")
    if _writable_dir(home):
        return None
    base = tempfile.mkdtemp(prefix=f"firecrestspawner-{os.getuid()}-")
    wanted = {
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTERLAB_SETTINGS_DIR": "lab/user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab/workspaces",
        "IPYTHONDIR": "ipython",
        "XDG_CACHE_HOME": "cache",
        "MPLCONFIGDIR": "matplotlib",
    }
    # Configuration is only read: keep a ~/.jupyter an administrator prepared.
    if not os.path.isdir(os.path.join(home, ".jupyter")):
        wanted["JUPYTER_CONFIG_DIR"] = "config"
    for name, sub in wanted.items():
        if not _writable_dir(environ.get(name)):
            # Not created here: the tools create them on first use, inside the 0700 base.
            # (An existing IPYTHONDIR would make Jupyter try to migrate it into ~/.jupyter.)
            environ[name] = os.path.join(base, sub)
    log.warning(
        "HOME (%s) is not a writable directory: Jupyter runtime, data and settings go to "
        "%s for this session (lost when the job ends). Give the job a writable HOME to "
        "keep them.",
        home or "unset",
        base,
    )
    return base


# ---------------------------------------------------------------------------
# Port and host
# ---------------------------------------------------------------------------
def parse_port_range(text: str) -> tuple[int, int]:
    """Parse ``lo-hi`` (inclusive, 1..65535, lo <= hi)."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", text)
    if not match:
        raise LaunchError(
            f"FIRECRESTSPAWNER_PORT_RANGE={text!r} is not 'lo-hi' (e.g. '20000-30000')",
            EXIT_BAD_ENV,
        )
    lo, hi = int(match.group(1)), int(match.group(2))
    if not (1 <= lo <= hi <= 65535):
        raise LaunchError(
            f"FIRECRESTSPAWNER_PORT_RANGE={text!r}: need 1 <= lo <= hi <= 65535",
            EXIT_BAD_ENV,
        )
    return lo, hi


def _bind_family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _try_bind(ip: str, port: int) -> int | None:
    """Bind (like the server will: SO_REUSEADDR) and return the bound port, or None if taken."""
    family = _bind_family(ip)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip.strip("[]"), port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None
            raise
        return int(sock.getsockname()[1])


def pick_port(ip: str, port_range: tuple[int, int] | None, max_tries: int = 2000) -> int:
    """Return a port free on ``ip``: any (kernel's choice), or one from ``port_range``."""
    if port_range is None:
        port = _try_bind(ip, 0)
        if port is None:  # pragma: no cover - the kernel always has an ephemeral port
            raise LaunchError(f"no free port on {ip}", EXIT_NO_PORT)
        return port
    lo, hi = port_range
    candidates = list(range(lo, hi + 1))
    random.shuffle(candidates)
    for port in candidates[:max_tries]:
        if _try_bind(ip, port) is not None:
            return port
    raise LaunchError(
        f"no free port in FIRECRESTSPAWNER_PORT_RANGE {lo}-{hi} on {ip} "
        f"(tried {min(len(candidates), max_tries)}); widen the range",
        EXIT_NO_PORT,
    )


def report_host(environ: Mapping[str, str], ip: str) -> str:
    """The host name the hub should connect to.

    ``FIRECRESTSPAWNER_HOST`` wins. Otherwise, if the server listens on one specific
    address (``FIRECRESTSPAWNER_IP``), that address; else the node's fully qualified
    domain name, falling back to the plain host name when the FQDN is only a
    loopback alias (``localhost...``), which the hub could never reach.
    """
    host = environ.get("FIRECRESTSPAWNER_HOST", "").strip()
    if not host and ip not in ("0.0.0.0", "::", ""):
        host = ip
    if not host:
        fqdn = socket.getfqdn()
        host = fqdn if fqdn and not fqdn.startswith("localhost") else socket.gethostname()
    try:
        return check_host(host)
    except HostError as exc:
        raise LaunchError(
            f"cannot report this host to the hub: {exc}. Set FIRECRESTSPAWNER_HOST to the "
            "node's name (or address) as the hub can reach it",
            EXIT_BAD_ENV,
        ) from None


# ---------------------------------------------------------------------------
# Callback
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Callback:
    """Where and how to tell the hub our host and port."""

    url: str
    token: str
    deadline: float
    ssl_context: ssl.SSLContext | None = None


def callback_from_env(environ: Mapping[str, str]) -> Callback:
    """Build the callback settings from the (merged) environment."""
    url = environ.get("FIRECRESTSPAWNER_CALLBACK_URL") or (
        environ["JUPYTERHUB_API_URL"].rstrip("/") + "/firecrestspawner/callback"
    )
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise LaunchError(
            f"callback URL {url!r} is not http(s); fix JUPYTERHUB_API_URL or "
            "FIRECRESTSPAWNER_CALLBACK_URL",
            EXIT_BAD_ENV,
        )
    raw_timeout = environ.get("FIRECRESTSPAWNER_CALLBACK_TIMEOUT", str(DEFAULT_CALLBACK_TIMEOUT))
    try:
        deadline = float(raw_timeout)
    except ValueError:
        deadline = -1.0
    if not deadline > 0:
        raise LaunchError(
            f"FIRECRESTSPAWNER_CALLBACK_TIMEOUT={raw_timeout!r} is not a positive number "
            "of seconds",
            EXIT_BAD_ENV,
        )
    context = None
    if url.startswith("https:"):
        cafile = environ.get("JUPYTERHUB_SSL_CLIENT_CA") or None
        context = ssl.create_default_context(cafile=cafile)
        certfile = environ.get("JUPYTERHUB_SSL_CERTFILE")
        if certfile:
            context.load_cert_chain(certfile, environ.get("JUPYTERHUB_SSL_KEYFILE") or None)
    return Callback(url, environ["JUPYTERHUB_API_TOKEN"], deadline, context)


def _reason(body: bytes) -> str:
    """The hub's error message from a JSON error body, else the raw text (shortened)."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:500]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return text.strip()[:500]


def post_callback(cb: Callback, host: str, port: int) -> None:
    """POST ``{"host", "port"}`` to the hub; retry connection errors and 5xx until the deadline.

    Any 2xx lets the launch go on (200: host verified; 202: recorded, verified by the hub
    while JupyterLab starts). 4xx answers are final: raise LaunchError with the hub's reason.
    """
    body = json.dumps({"host": host, "port": port}).encode()
    # Proxies from the environment are ignored on purpose: jupyterhub-singleuser talks to
    # the same hub API URL directly, so the callback must take the same route.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if cb.ssl_context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=cb.ssl_context))
    opener = urllib.request.build_opener(*handlers)
    start = time.monotonic()
    attempt = 0
    delay = 1.0
    while True:
        attempt += 1
        request = urllib.request.Request(
            cb.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"token {cb.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        remaining = cb.deadline - (time.monotonic() - start)
        try:
            with opener.open(request, timeout=max(1.0, min(ATTEMPT_TIMEOUT, remaining))) as resp:
                log.info(
                    "hub accepted the callback (HTTP %s%s) after %d attempt(s)", resp.status,
                    ": recorded, the hub verifies the host" if resp.status == 202 else "",
                    attempt,
                )
                return
        except urllib.error.HTTPError as exc:
            reason = _reason(exc.read())
            if exc.code < 500 and exc.code not in (408, 429):
                raise LaunchError(
                    f"the hub refused the callback to {cb.url}: HTTP {exc.code}: {reason}",
                    EXIT_CALLBACK_REFUSED,
                ) from exc
            problem = f"HTTP {exc.code}: {reason}"
        except (urllib.error.URLError, OSError) as exc:
            cause = getattr(exc, "reason", exc)
            problem = f"{type(cause).__name__}: {cause}"
        elapsed = time.monotonic() - start
        if elapsed + delay > cb.deadline:
            raise LaunchError(
                f"could not reach the hub at {cb.url} within {cb.deadline:g} s "
                f"({attempt} attempts; last: {problem}). Check that the compute node can "
                "connect to the hub's API URL (c.JupyterHub.hub_connect_url / hub_bind_url, "
                "firewalls between the cluster and the hub).",
                EXIT_HUB_UNREACHABLE,
            )
        log.warning("callback attempt %d failed (%s); retrying in %.0f s", attempt, problem, delay)
        time.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)


# ---------------------------------------------------------------------------
# Exec
# ---------------------------------------------------------------------------
def find_singleuser(environ: Mapping[str, str]) -> str:
    """Path of ``jupyterhub-singleuser``: next to this Python first, then on PATH."""
    sibling = os.path.join(os.path.dirname(sys.executable), SINGLEUSER)
    if os.path.isfile(sibling) and os.access(sibling, os.X_OK):
        return sibling
    found = shutil.which(SINGLEUSER, path=environ.get("PATH"))
    if found:
        return found
    raise LaunchError(
        f"{SINGLEUSER} not found next to {sys.executable} nor on PATH. Install the "
        "'jupyterhub' package (same major version as the hub) and 'jupyterlab' in the "
        "environment the job uses, e.g. pip install jupyterhub jupyterlab",
        EXIT_NO_SINGLEUSER,
    )


def _service_url(environ: Mapping[str, str], host: str, port: int) -> str | None:
    """``JUPYTERHUB_SERVICE_URL`` rewritten with the real host and port (None if unset)."""
    current = environ.get("JUPYTERHUB_SERVICE_URL")
    if not current:
        return None
    parts = urllib.parse.urlsplit(current)
    netloc_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return urllib.parse.urlunsplit(
        (parts.scheme or "http", f"{netloc_host}:{port}", parts.path or "/", "", "")
    )


def prepare(environ: MutableMapping[str, str], argv: Sequence[str]) -> list[str]:
    """Do everything up to the exec; return the jupyterhub-singleuser command line."""
    merged = merge_encoded_env(environ)
    if merged:
        log.info("decoded %d variable(s) from %s", merged, ENV_VAR)
    check_required(environ)
    ensure_private_dirs(environ)
    ip = environ.get("FIRECRESTSPAWNER_IP", "").strip() or "0.0.0.0"
    raw_range = environ.get("FIRECRESTSPAWNER_PORT_RANGE", "").strip()
    port = pick_port(ip, parse_port_range(raw_range) if raw_range else None)
    host = report_host(environ, ip)
    executable = find_singleuser(environ)
    cb = callback_from_env(environ)
    log.info("user %s: reporting %s:%d to %s", environ["JUPYTERHUB_USER"], host, port, cb.url)
    post_callback(cb, host, port)
    service_url = _service_url(environ, host, port)
    if service_url:
        environ["JUPYTERHUB_SERVICE_URL"] = service_url
    return [executable, f"--port={port}", f"--ip={ip}", *argv]


def version() -> str:
    """``firecrestspawner-singleuser <version> (Python <version>)``."""
    from firecrestspawner import __version__

    return f"firecrestspawner-singleuser {__version__} (Python {sys.version.split()[0]})"


def usage() -> str:
    """The ``--help`` text: what the launcher does, its variables and its exit codes."""
    codes = "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
    return f"""usage: firecrestspawner-singleuser [ARGUMENTS FOR jupyterhub-singleuser ...]
       firecrestspawner-singleuser --help | --version

Run as the last command of a Slurm job submitted by JupyterHub's FirecRESTSpawner:
pick a free port, report host and port to the hub (the callback), then exec
jupyterhub-singleuser --port=PORT --ip=IP ARGUMENTS. The hub's environment
({ENV_VAR} or the JUPYTERHUB_* variables) must be set; --help and --version
need none. For jupyterhub-singleuser's own options run 'jupyterhub-singleuser --help'.

environment (set by the spawner or the batch script):
  {ENV_VAR}              the encoded JupyterHub environment
  {", ".join(REQUIRED_VARS[:3])},
  {", ".join(REQUIRED_VARS[3:])}   required (directly or encoded)
  FIRECRESTSPAWNER_HOST             host name or IP the hub should connect to
  FIRECRESTSPAWNER_IP               address to listen on (default 0.0.0.0)
  FIRECRESTSPAWNER_PORT_RANGE       lo-hi: choose the port in this range
  FIRECRESTSPAWNER_CALLBACK_URL     callback URL (default $JUPYTERHUB_API_URL/firecrestspawner/callback)
  FIRECRESTSPAWNER_CALLBACK_TIMEOUT seconds to keep retrying the hub (default {DEFAULT_CALLBACK_TIMEOUT:g})

exit codes of the launcher itself (any other code is jupyterhub-singleuser's):
{codes}

Details: docs/launcher.md of the f7t4jhub project.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: prepare, then replace this process with jupyterhub-singleuser.

    ``--help``/``-h`` and ``--version``/``-V`` anywhere on the command line print to
    stdout and return 0 without reading the environment.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if HELP_OPTIONS.intersection(args):
        sys.stdout.write(usage())
        return 0
    if VERSION_OPTIONS.intersection(args):
        print(version())
        return 0
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="[%(asctime)s firecrestspawner-singleuser %(levelname)s] %(message)s",
    )
    try:
        command = prepare(os.environ, args)
    except LaunchError as exc:
        log.error("%s", exc)
        return exc.exit_code
    log.info("exec %s", " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(command[0], command)
    except OSError as exc:
        log.error("cannot execute %s: %s", command[0], exc)
        return EXIT_NO_SINGLEUSER
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
