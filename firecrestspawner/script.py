"""Render the batch script of a JupyterLab job.

Templates use ``{{name}}`` placeholders (so that shell ``$VARS`` and ``${VARS}`` in
a site's template need no escaping). Values that come from users were validated by
:mod:`firecrestspawner.options` *and* are inserted shell-quoted with
:func:`shlex.quote`; ``#SBATCH`` lines are built only from validated values.
``{{setup}}``, ``{{extra_directives}}`` and ``{{container_args}}`` come from the
site's configuration (trusted).

Placeholders:

``directives``
    The ``#SBATCH`` lines: job name, output, partition, account, reservation,
    nodes, time, GPUs, ``--no-requeue`` (unless the site allows requeueing), then
    the site's extra directives.

The job's environment (``FIRECRESTSPAWNER_ENV`` with the server's API token) is
exported by lines inserted after the leading comments and directives: it travels in
the script body, which FirecREST hands to sbatch on stdin, never in ``--export``.
``output``
    The lines that create the job's log folder (``job_log_dir``, mode 700: Slurm does not
    create folders) and send the script's stdout and stderr to ``job_output`` in it
    (``#SBATCH --output`` is then ``/dev/null``). Empty without a log folder. A site
    template without this placeholder gets them right after the job's environment.
``setup``
    The site's setup lines (``FirecRESTSpawner.script_setup``), verbatim.
``venv``, ``uenv``, ``uenv_view``, ``container_image``
    The chosen software environment, shell-quoted (``''`` when not used).
``container_args``
    The site's extra ``srun`` arguments for containers, each shell-quoted and
    followed by a space (empty when there are none).
``args``
    The arguments for ``firecrestspawner-singleuser``, each shell-quoted.
``launch``
    A complete launch command for the chosen environment (handy for a site's
    own single template). For rootless Podman these are several lines that also stop
    and remove the container when the job ends (:mod:`firecrestspawner.podman`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from importlib import resources

from .options import JobOptions
from .podman import podman_launch

PLACEHOLDERS = frozenset(
    {
        "directives",
        "output",
        "setup",
        "venv",
        "uenv",
        "uenv_view",
        "container_image",
        "container_args",
        "args",
        "launch",
    }
)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DIRECTIVE = re.compile(r"--[a-z][a-z0-9-]*(?:=[A-Za-z0-9_.,:/%@+-]+)?\Z")
LAUNCHER = "firecrestspawner-singleuser"


def packaged_template(environment: str, container_engine: str = "edf") -> str:
    """Return the template shipped for ``environment`` (native, uenv or container)."""
    name = f"container-{container_engine}" if environment == "container" else environment
    path = resources.files("firecrestspawner") / "templates" / f"{name}.sh"
    if not path.is_file():
        raise ValueError(
            f"no packaged batch script template for environment {environment!r} "
            f"(container engine {container_engine!r}); choose native, uenv or container"
        )
    return path.read_text(encoding="utf-8")


def check_template(template: str, setting: str = "FirecRESTSpawner.batch_script_template") -> None:
    """Raise ValueError naming ``setting`` when ``template`` cannot produce a valid script."""
    if not template.startswith("#!"):
        raise ValueError(
            f"{setting}: the script must start with a shebang line such as '#!/bin/bash' "
            "(sbatch refuses scripts without one)"
        )
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - PLACEHOLDERS)
    if unknown:
        raise ValueError(
            f"{setting}: unknown placeholder(s) {unknown}; available: {sorted(PLACEHOLDERS)}"
        )
    if "{{launch}}" not in template.replace(" ", "") and LAUNCHER not in template:
        raise ValueError(
            f"{setting}: the template never runs {LAUNCHER}; add a line with "
            "{{launch}} or call the launcher yourself"
        )


def check_directive(directive: str, setting: str = "FirecRESTSpawner.extra_directives") -> None:
    """Raise ValueError unless ``directive`` is one ``--name[=value]`` sbatch option."""
    if not _DIRECTIVE.match(directive):
        raise ValueError(
            f"{setting}: {directive!r} is not a single sbatch option of the form "
            "--name or --name=value (value: letters, digits and _.,:/%@+-)"
        )


def safe_job_name(text: str) -> str:
    """Reduce ``text`` to characters sbatch and shells take literally (max 64)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "jupyterhub"
    return cleaned[:64]


@dataclass(frozen=True)
class ScriptContext:
    """Site-side inputs of a script besides the user's :class:`JobOptions`."""

    job_name: str = "jupyterhub"
    output: str = "jupyterhub-%j.log"
    args: list[str] = field(default_factory=list)
    setup: str = ""
    extra_directives: list[str] = field(default_factory=list)
    container_engine: str = "edf"
    container_args: list[str] = field(default_factory=list)
    #: Folder of the job's output (relative to the working directory, or absolute); the
    #: script creates it. Empty: sbatch writes ``output`` itself (relative to workdir).
    log_dir: str = ""
    #: Let Slurm requeue the job (False: ``--no-requeue``, the default).
    requeue: bool = False
    #: ``NAME=value`` lines exported at the top of the script body (the job's
    #: environment with its secrets: the body reaches sbatch on stdin, never on a
    #: command line). Values must be shell-safe words (see :func:`env_block`).
    env: dict[str, str] = field(default_factory=dict)


_SAFE_VALUE = re.compile(r"[A-Za-z0-9_./:@%+,=-]*\Z")


def env_block(env: dict[str, str]) -> str:
    """``export NAME=value`` lines for ``env`` (values shell-quoted)."""
    lines = []
    for name, value in env.items():
        if not re.match(r"[A-Za-z_][A-Za-z0-9_]*\Z", name):
            raise ValueError(f"environment variable name {name[:40]!r} is not a shell name")
        lines.append(f"export {name}={value if _SAFE_VALUE.match(value) else shlex.quote(value)}")
    return "\n".join(lines)


def insert_env(script: str, env: dict[str, str], after: str = "") -> str:
    """Put :func:`env_block` (then the lines ``after``) after the script's leading
    comment and ``#SBATCH`` lines (sbatch reads directives only up to the first command)."""
    if not env and not after:
        return script
    lines = script.split("\n")
    index = 1 if lines and lines[0].startswith("#!") else 0
    while index < len(lines) and (not lines[index].strip()
                                  or lines[index].lstrip().startswith("#")):
        index += 1
    block = [b for b in (env_block(env) if env else "", after) if b]
    return "\n".join(lines[:index] + block + lines[index:])


def output_lines(context: ScriptContext) -> str:
    """The ``{{output}}`` lines: create the log folder, send the script's output there."""
    if not context.log_dir:
        return ""
    if not re.fullmatch(r"(?:[A-Za-z0-9_.+-]|%j)+", context.output):
        raise ValueError(f"job output file name {context.output[:60]!r} must be letters, "
                         "digits, '_.+-' and %j")
    folder = shlex.quote(context.log_dir)
    name = '"' + context.output.replace("%j", "${SLURM_JOB_ID}") + '"'
    return ("# the job's output goes to its log folder, created here (Slurm creates none)\n"
            f"mkdir -p -m 700 -- {folder} && exec >{folder}/{name} 2>&1")


def directives(options: JobOptions, context: ScriptContext) -> str:
    """The ``#SBATCH`` block for validated ``options``."""
    lines = [
        f"--job-name={safe_job_name(context.job_name)}",
        f"--output={'/dev/null' if context.log_dir else context.output}",
    ]
    if options.partition:
        lines.append(f"--partition={options.partition}")
    if options.account:
        lines.append(f"--account={options.account}")
    if options.reservation:
        lines.append(f"--reservation={options.reservation}")
    lines.append(f"--nodes={options.nodes}")
    lines.append(f"--time={options.time}")
    if options.gpus:
        lines.append(f"--gpus-per-node={options.gpus}")
    if not context.requeue:
        lines.append("--no-requeue")
    lines.extend(context.extra_directives)
    for line in lines:
        check_directive(line, "batch script directive")
    return "\n".join(f"#SBATCH {line}" for line in lines)


def launch_command(options: JobOptions, context: ScriptContext) -> str:
    """The shell command that starts the launcher in the chosen environment.

    One line, except for rootless Podman: its lines also stop and remove the container
    when the job ends (:mod:`firecrestspawner.podman`)."""
    args = shlex.join(context.args)
    tail = f"{LAUNCHER} {args}".rstrip()
    if options.environment == "uenv":
        return (
            f"uenv run {shlex.quote(options.uenv)} --view={shlex.quote(options.uenv_view)}"
            f" -- {tail}"
        )
    if options.environment == "container" and context.container_engine == "podman":
        return podman_launch(options.container_image, context.container_args, tail)
    if options.environment == "container":
        flag = "--environment" if context.container_engine == "edf" else "--container-image"
        extra = shlex.join(context.container_args)
        return (
            f"srun --nodes=1 --ntasks=1 {flag}={shlex.quote(options.container_image)} "
            f"{extra + ' ' if extra else ''}{tail}"
        )
    if options.venv:
        return f"{shlex.quote(options.venv + '/bin/' + LAUNCHER)} {args}".rstrip()
    return tail


def render(template: str, options: JobOptions, context: ScriptContext) -> str:
    """Fill ``template`` for ``options``; raises ValueError on unknown placeholders."""
    check_template(template)
    output = output_lines(context)
    values = {
        "directives": directives(options, context),
        "output": output,
        "setup": context.setup.strip("\n"),
        "venv": shlex.quote(options.venv),
        "uenv": shlex.quote(options.uenv),
        "uenv_view": shlex.quote(options.uenv_view),
        "container_image": shlex.quote(options.container_image),
        "container_args": "".join(f"{shlex.quote(a)} " for a in context.container_args),
        "args": shlex.join(context.args),
        "launch": launch_command(options, context),
    }
    script = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    if output and "output" not in {m.group(1) for m in _PLACEHOLDER.finditer(template)}:
        return insert_env(script, context.env, output)
    return insert_env(script, context.env)
