"""The package manifest of an image: every Python distribution and npm package, with versions.

Collected by running the image once (entrypoint replaced by ``/bin/sh``, no network):
each Python interpreter found (on PATH and ``/opt/*/bin``) lists its distributions with
``importlib.metadata``; ``node``, when present, walks the ``node_modules`` trees under
``/opt``, ``/usr/local/lib`` and ``/usr/lib``. Publish writes it next to the SBOM; the
image checks compare it with the version labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from f7tbuild import engine

PY_SNIPPET = r"""
import importlib.metadata as md, json, sys
for d in md.distributions():
    name = d.metadata["Name"]
    if name:
        print(json.dumps({"kind": "python", "name": name, "version": d.version,
                          "where": sys.prefix}))
"""

NODE_SNIPPET = r"""
const fs = require("fs"), path = require("path");
function pkg(dir) {
  try {
    const p = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    if (p.name && p.version)
      console.log(JSON.stringify({kind: "npm", name: p.name, version: p.version, where: dir}));
  } catch (e) {}
  modules(path.join(dir, "node_modules"));
}
function modules(nm) {
  let entries = [];
  try { entries = fs.readdirSync(nm); } catch (e) { return; }
  for (const e of entries) {
    if (e.startsWith(".")) continue;
    const full = path.join(nm, e);
    if (e.startsWith("@")) {
      let scoped = [];
      try { scoped = fs.readdirSync(full); } catch (err) {}
      for (const s of scoped) pkg(path.join(full, s));
    } else pkg(full);
  }
}
function find(dir, depth) {
  let entries = [];
  try { entries = fs.readdirSync(dir, {withFileTypes: true}); } catch (e) { return; }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const full = path.join(dir, e.name);
    if (e.name === "node_modules") modules(full);
    else if (depth > 0) find(full, depth - 1);
  }
}
for (const root of ["/opt", "/usr/local/lib", "/usr/lib"]) find(root, 3);
"""

SCRIPT = f"""
set -u
seen=""
for py in $(ls /opt/*/bin/python3 2>/dev/null) $(command -v python3 2>/dev/null); do
  real=$(readlink -f "$py")
  case " $seen " in *" $real "*) continue ;; esac
  seen="$seen $real"
  "$py" -I -c '{PY_SNIPPET}'
done
if command -v node >/dev/null 2>&1; then node -e '{NODE_SNIPPET}'; fi
"""


@dataclass(frozen=True, order=True)
class Package:
    """One installed package."""

    kind: str  # "python" or "npm"
    name: str
    version: str
    where: str


def parse(output: str) -> list[Package]:
    """Packages from the collector's JSON lines (deduplicated, sorted)."""
    found: set[Package] = set()
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        found.add(Package(entry["kind"], entry["name"], entry["version"], entry["where"]))
    return sorted(found)


def collect(ref: str, timeout: float = 300) -> list[Package]:
    """Run the collector in ``ref`` (no network, entrypoint replaced)."""
    out = engine.run_output(
        ref,
        [SCRIPT],
        timeout=timeout,
        entrypoint=["/bin/sh", "-c"],
        network_disabled=True,
    )
    packages = parse(out)
    if not packages:
        raise engine.EngineError(
            f"no Python or npm package found in {ref}: the collector needs /bin/sh and "
            "python3 or node in the image"
        )
    return packages


def versions(packages: list[Package]) -> dict[str, set[str]]:
    """Normalised package name -> the versions installed anywhere in the image."""
    out: dict[str, set[str]] = {}
    for p in packages:
        out.setdefault(normalise(p.name), set()).add(p.version)
    return out


def normalise(name: str) -> str:
    """PEP 503 style name (npm names are left lowercase as they are)."""
    return name.lower().replace("_", "-").replace(".", "-")


def to_json(ref: str, image_id: str, packages: list[Package]) -> dict[str, Any]:
    """The manifest document publish writes."""
    return {
        "image": ref,
        "image_id": image_id,
        "packages": [p.__dict__ for p in packages],
    }
