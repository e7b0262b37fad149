"""Keep a base image's Python packages untouched while installing the Jupyter stack.

Run inside the image by the singleuser Dockerfile with the image's ``python3``
(standard library only, any Python >= 3.8):

``basepkgs.py freeze RECORD CONSTRAINTS``
    Write every installed distribution as ``name==version`` to RECORD (the base's
    package set, kept in the image for later checks), and a pip constraint file to
    CONSTRAINTS: the same pins (PEP 440 versions only) plus the lines of the base's
    own constraint files named in ``PIP_CONSTRAINT`` (NGC images set one).

``basepkgs.py verify RECORD``
    Exit 1, naming each package, if any package of RECORD is now missing or has
    another version. New packages are fine.

``basepkgs.py list``
    Print the current ``name==version`` set (what ``freeze`` records).
"""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata

# PEP 440 public + local versions (what a pip constraint line can pin exactly).
_PEP440 = re.compile(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"
    r"((a|b|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?"
    r"(\+[a-z0-9]+(\.[a-z0-9]+)*)?$",
    re.IGNORECASE,
)


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """``{normalised name: version}`` of the distributions Python would import.

    When a name is installed twice (e.g. a Debian package in /usr/lib/python3 and a pip
    one in /usr/local), the one earlier on sys.path wins, as for imports.
    """
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        found.setdefault(normalise(name), dist.version)
    return found


def _read_record(path: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, version = line.partition("==")
                pins[name] = version
    return pins


def freeze(record: str, constraints: str) -> int:
    """Write the base's package set and the install constraints; return the count."""
    pins = installed()
    with open(record, "w", encoding="utf-8") as fh:
        fh.write("# Python packages of the base image, recorded before the Jupyter stack\n")
        fh.writelines(f"{n}=={v}\n" for n, v in sorted(pins.items()))
    lines = [f"{n}=={v}" for n, v in sorted(pins.items()) if _PEP440.match(v)]
    for extra in os.environ.get("PIP_CONSTRAINT", "").split():
        if os.path.isfile(extra):
            with open(extra, encoding="utf-8") as fh:
                lines += [f"# from {extra}"] + [ln.rstrip("\n") for ln in fh]
    with open(constraints, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return len(pins)


def verify(record: str) -> list[str]:
    """Problems (removed or changed base packages); empty if the base is untouched."""
    before = _read_record(record)
    now = installed()
    problems = []
    for name, version in sorted(before.items()):
        if name not in now:
            problems.append(f"{name}=={version} was removed")
        elif now[name] != version:
            problems.append(f"{name} changed {version} -> {now[name]}")
    return problems


def main(argv: list[str]) -> int:
    """Command line entry (see the module docstring)."""
    if len(argv) == 3 and argv[0] == "freeze":
        count = freeze(argv[1], argv[2])
        print(f"basepkgs: recorded {count} base packages in {argv[1]}")
        return 0
    if len(argv) == 2 and argv[0] == "verify":
        problems = verify(argv[1])
        if problems:
            print(
                "basepkgs: installing the Jupyter stack changed the base image's packages:\n  "
                + "\n  ".join(problems)
                + "\nPick stack versions compatible with this base (catalogue.toml stacks) "
                "so pip needs no up/downgrade.",
                file=sys.stderr,
            )
            return 1
        print(f"basepkgs: base packages untouched ({len(_read_record(argv[1]))} checked)")
        return 0
    if argv == ["list"]:
        sys.stdout.writelines(f"{n}=={v}\n" for n, v in sorted(installed().items()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
