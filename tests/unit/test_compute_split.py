"""The hub/compute split: the hub never loads the launcher; the compute side is stdlib only.

Each check runs in a fresh interpreter, so modules other tests imported do not count.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import firecrestspawner
import firecrestspawner.compute

LAUNCHER = "firecrestspawner.compute.launcher"
COMPUTE = "firecrestspawner.compute"


def _loaded_after(imports: list[str]) -> set[str]:
    """Module names in sys.modules after importing ``imports`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          timeout=120, cwd=Path(firecrestspawner.__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def _hub_modules() -> list[str]:
    """Every module of the package outside the compute subpackage."""
    names = [m.name for m in pkgutil.walk_packages(firecrestspawner.__path__, "firecrestspawner.")]
    hub = [n for n in names if not n.startswith(COMPUTE)]
    assert "firecrestspawner.spawner" in hub and "firecrestspawner.api" in hub
    return hub


def test_hub_modules_do_not_import_the_launcher() -> None:
    loaded = _loaded_after(_hub_modules())
    assert "firecrestspawner.spawner" in loaded  # the imports really happened
    assert LAUNCHER not in loaded, "a hub-side module imports the compute-side launcher"


def test_hub_callback_uses_the_shared_validator() -> None:
    loaded = _loaded_after(["firecrestspawner.api"])
    assert "firecrestspawner.compute.hosts" in loaded and LAUNCHER not in loaded


def test_compute_side_imports_only_the_standard_library() -> None:
    compute = [m.name for m in pkgutil.walk_packages(firecrestspawner.compute.__path__,
                                                      COMPUTE + ".")]
    assert LAUNCHER in compute and f"{COMPUTE}.hosts" in compute
    baseline = _loaded_after([])
    loaded = _loaded_after(compute) - baseline
    foreign = sorted(
        name for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] != "firecrestspawner"
    )
    assert not foreign, f"compute-side modules import non-stdlib modules: {foreign}"
    ours = {n for n in loaded if n.startswith("firecrestspawner")}
    assert ours <= {"firecrestspawner", COMPUTE, *compute}, ours
