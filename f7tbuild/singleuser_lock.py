"""Hashed locks of the singleuser variants, resolved against each base's own packages.

For every ``[images.singleuser.variants.*]`` of the catalogue, ``nox -s lock`` writes:

- ``<locks>/<variant>.base.txt``: the base image's Python package set as pip constraints
  (``basepkgs.py freeze`` run in the base: every installed distribution pinned, plus
  the base's own ``PIP_CONSTRAINT`` lines), with a header naming the base, its digest (or
  ``standin``) and its Python version;
- ``<locks>/<variant>.lock``: the variant's stack packages (``stack_packages`` at the
  stack's versions) resolved under those constraints for that Python, every package
  pinned with hashes (``uv pip compile --universal``: amd64 and arm64), **minus the
  packages the base already has** at the constrained version: the Dockerfile installs the
  lock with ``pip install --require-hashes --no-deps`` and then verifies the base is
  untouched.

The base is the real one when the local engine has it, else its stand-in (``nox -s
standins``). A lock made on the stand-in is resolved against the stand-in's packages
(Debian trixie Python 3.13, numpy, packaging), not NGC's: on the real NGC base a build
from such a lock may need packages the stand-in lacked or clash with NGC's pins; the
build then fails at the install or verify step, and the fix is ``nox -s lock`` on a host
that has the real base (docs/images-hub-singleuser.md).
"""

from __future__ import annotations

import re
from pathlib import Path

from f7tbuild import engine
from f7tbuild.catalogue import REPO_ROOT, Catalogue, Target
from f7tbuild.lock import LockError, check_lock, compile_lock, normalise
from f7tbuild.output import status

BASEPKGS = REPO_ROOT / "images" / "singleuser" / "basepkgs.py"
HEADER_PREFIX = "# f7t4jhub:"

_COLLECT = """set -eu
python3 - freeze /tmp/f7t-record.txt /tmp/f7t-constraints.txt >/dev/null <<'PYEOF'
{script}
PYEOF
python3 -c 'import sys; print("python=%d.%d" % sys.version_info[:2])'
echo '--- record'
cat /tmp/f7t-record.txt
echo '--- constraints'
cat /tmp/f7t-constraints.txt
"""


def lock_path(target: Target, root: Path = REPO_ROOT) -> Path:
    """The variant's lock file (catalogue ``lock``: ``<locks>/<variant>.lock``)."""
    if target.variant is None or not target.lock:
        raise LockError(f"{target.name} has no per-variant lock in catalogue.toml (locks = ...)")
    return root / target.lock


def base_path(target: Target, root: Path = REPO_ROOT) -> Path:
    """The variant's base record: ``<locks>/<variant>.base.txt``."""
    return lock_path(target, root).with_suffix(".base.txt")


def stack_pins(target: Target) -> list[str]:
    """``name==version`` of the variant's stack packages (catalogue order)."""
    return target.stack_requirements().split()


def parse_collect(output: str) -> tuple[str, dict[str, str], list[str]]:
    """(python version, base record, constraint lines) from the collector's output."""
    python = ""
    record: dict[str, str] = {}
    constraints: list[str] = []
    section = ""
    for line in output.splitlines():
        if line.startswith("python="):
            python = line.split("=", 1)[1].strip()
        elif line.startswith("--- "):
            section = line[4:].strip()
        elif section == "record" and "==" in line and not line.startswith("#"):
            name, _, version = line.strip().partition("==")
            record[normalise(name)] = version
        elif section == "constraints" and line.strip():
            constraints.append(line.rstrip())
    if not re.fullmatch(r"3\.\d+", python) or not record:
        raise LockError(f"could not read the base's Python and packages:\n{output[-800:]}")
    return python, record, constraints


def collect_base(ref: str) -> tuple[str, dict[str, str], list[str]]:
    """Run ``basepkgs.py freeze`` in the base image ``ref`` (no network)."""
    script = BASEPKGS.read_text(encoding="utf-8")
    if "PYEOF" in script:
        raise LockError(f"{BASEPKGS} must not contain the heredoc marker PYEOF")
    out = engine.run_output(
        ref,
        [_COLLECT.format(script=script)],
        entrypoint=["/bin/sh", "-c"],
        network_disabled=True,
        user="0",
    )
    return parse_collect(out)


def strip_base(lock_text: str, base: dict[str, str]) -> tuple[str, list[str]]:
    """Drop the lock's entries the base already has at that version; return (text, dropped)."""
    out: list[str] = []
    dropped: list[str] = []
    skipping = False
    for line in lock_text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, rest = line.partition("==")
            version = rest.split(";")[0].split()[0].rstrip("\\").strip() if rest else ""
            skipping = base.get(normalise(name)) == version
            if skipping:
                dropped.append(f"{normalise(name)}=={version}")
                continue
        elif skipping and (line.startswith(" ") or not line):
            continue
        else:
            skipping = False
        out.append(line)
    return "\n".join(out) + "\n", dropped


def header(target: Target, base_ref: str, digest: str, python: str) -> list[str]:
    """The lines that record what a lock was made from (read by the drift test)."""
    pins = ",".join(stack_pins(target))
    what = f"variant={target.variant} stack={target.stack_name} pins={pins}"
    where = f"base={target.base} resolved-on={base_ref} digest={digest} python={python}"
    return [f"{HEADER_PREFIX} {what}", f"{HEADER_PREFIX} {where}"]


def read_header(path: Path) -> dict[str, str]:
    """``key=value`` pairs of a lock's ``# f7t4jhub:`` lines."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(HEADER_PREFIX):
            for part in line[len(HEADER_PREFIX) :].split():
                key, _, value = part.partition("=")
                out[key] = value
    return out


def write_lock(cat: Catalogue, target: Target, root: Path = REPO_ROOT) -> Path:
    """Resolve and write one variant's lock and base record."""
    if engine.image_exists(target.base):
        base_ref, digest = target.base, engine.repo_digest(target.base) or "unknown"
    else:
        base_ref, digest = cat.standin(target.standin).ref, "standin"
        if not engine.image_exists(base_ref):
            raise LockError(
                f"neither {target.base} nor its stand-in {base_ref} is in the local engine: "
                f"pull the base, or make the stand-in with `nox -s standins -- {target.standin}`"
            )
    status(f"[lock] {target.name}: reading the packages of {base_ref}")
    python, record, constraints = collect_base(base_ref)
    lines = header(target, base_ref, digest, python)
    base_file = base_path(target, root)
    base_file.parent.mkdir(parents=True, exist_ok=True)
    base_file.write_text(
        "\n".join(
            [*lines, "# The base's packages as pip constraints (regenerate: nox -s lock)", *constraints]
        )
        + "\n",
        encoding="utf-8",
    )
    out = lock_path(target, root)
    status(f"[lock] {target.name}: resolving {' '.join(stack_pins(target))} for Python {python}")
    compile_lock(stack_pins(target), python, out, constraints=base_file)
    text, dropped = strip_base(out.read_text(encoding="utf-8"), record)
    note = f"# left out, installed in the base: {' '.join(dropped) or '(none)'}"
    out.write_text("\n".join([*lines, note, text]), encoding="utf-8")
    pins = check_lock(out)
    status(f"[lock] wrote {out.relative_to(root)} ({len(pins)} pinned, hashed; {len(dropped)} from the base)")
    return out


def write_locks(cat: Catalogue, root: Path = REPO_ROOT) -> list[Path]:
    """Every singleuser variant's lock."""
    return [write_lock(cat, t, root) for t in cat.targets if t.variant is not None and t.lock]
