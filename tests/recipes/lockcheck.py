"""What a hashed lock should have installed, for the interpreter that installed it.

A universal lock (``uv pip compile --universal``) lists some projects twice with
environment markers (``ipython==8.x ; python_full_version < '3.11'``). The markers
are evaluated by the target interpreter itself, so the expectation is exact even
when that interpreter lives in a container.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from f7tbuild.lock import normalise

#: Run by the target interpreter: JSON list of markers (argv[1]) -> JSON list of bools.
EVALUATE_MARKERS = (
    "import json, sys; from packaging.markers import Marker; "
    "print(json.dumps([not m or Marker(m).evaluate() for m in json.loads(sys.argv[1])]))"
)

#: Tools a venv may hold beside the lock.
INSTALLER_TOOLS = ("pip", "setuptools", "wheel")


def lock_requirements(lock: Path) -> list[str]:
    """The requirement of every lock entry (``name==version[ ; marker]``), hashes dropped."""
    entries: list[str] = []
    current = ""
    for raw in lock.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        entries.append(current + line)
        current = ""
    return [entry.split(" --hash", 1)[0].strip() for entry in entries]


def expected_pins(
    lock: Path,
    python_cmd: Sequence[str],
    run: Callable[[list[str]], str] | None = None,
) -> dict[str, str]:
    """``{name: version}`` the lock installs for the Python run by ``python_cmd``.

    ``python_cmd`` runs the target interpreter, e.g. ``[venv/bin/python]``; ``run``
    runs a command line somewhere else (e.g. in a container) and returns its stdout
    (default: here, as a subprocess).
    """
    requirements = lock_requirements(lock)
    markers = [r.partition(";")[2].strip() for r in requirements]
    argv = [*python_cmd, "-c", EVALUATE_MARKERS, json.dumps(markers)]
    if run is None:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"evaluating the lock's markers failed:\n{proc.stderr}"
        out = proc.stdout
    else:
        out = run(argv)
    holds = json.loads(out)
    pins: dict[str, str] = {}
    for requirement, applies in zip(requirements, holds, strict=True):
        if applies:
            name, version = requirement.partition(";")[0].strip().split("==", 1)
            pins[normalise(name)] = version
    return pins


def installed_pins(pip_freeze: str) -> dict[str, str]:
    """``{name: version}`` from ``pip list --format=freeze`` output, installer tools dropped."""
    pins = {
        normalise(line.split("==", 1)[0]): line.split("==", 1)[1]
        for line in pip_freeze.splitlines()
        if "==" in line
    }
    for tool in INSTALLER_TOOLS:
        pins.pop(tool, None)
    return pins
