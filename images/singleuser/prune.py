"""Remove from the Jupyter stack's own files what a singleuser server never uses.

Run inside the image by the singleuser Dockerfile with the image's ``python3``
(standard library only, any Python >= 3.8), right after the stack is installed:

``prune.py BASE_RECORD``
    BASE_RECORD is the base's package list written by ``basepkgs.py freeze``. Only
    distributions that are NOT in it (installed by the stack) are touched, and only the
    files their own RECORD lists, so the base image's files never change. The rules:

    ``source maps``
        ``*.js.map``, ``*.mjs.map``, ``*.css.map``: read only by a browser's developer
        tools; the pages reference them in comments and work without them.
    ``test suites``
        directories named ``tests`` or ``test`` inside a package that hold Python files,
        no type stubs (``*.pyi``: jedi's typeshed has stubs for modules named ``test``),
        and that no other module of the same distribution imports or names in code
        (docstrings aside): ``jupyterlab.tests`` (imported by ``browser_check``) and
        ``jupyterhub.tests`` (its test extension is named by the singleuser mixins) stay.
    ``compiled sources``
        ``*.c``, ``*.cpp``, ``*.pyx`` next to the extension module compiled from them
        (same stem + ``.*.so``), e.g. debugpy's pydevd Cython sources.
    ``UI test extension``
        ``jupyterlab/galata``: the Galata UI-test helper extension, loaded only in dev
        mode when a test run puts it on ``labextensions_path``.
    ``hub web UI``
        ``share/jupyterhub/static/components`` of the jupyterhub package: the hub's
        JavaScript/CSS components, served by the hub, never by jupyterhub-singleuser.
    ``duplicate lab assets``
        ``jupyterlab/static`` when it is byte-identical to ``<app dir>/static`` (the
        wheel ships both; a server serves the app dir's copy, ``--core-mode`` the
        package's): replaced by a symlink to the app dir's copy.

    Removed files are dropped from their distribution's RECORD. Prints what each rule
    freed; exits 1 (naming the file) if something cannot be removed.
"""

from __future__ import annotations

import ast
import csv
import filecmp
import io
import os
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

MAP_SUFFIXES = (".js.map", ".mjs.map", ".css.map")
TEST_DIRS = {"tests", "test"}
SOURCE_SUFFIXES = {".c", ".cpp", ".pyx"}


def normalise(name: str) -> str:
    """PEP 503 normalised project name (as basepkgs.py records it)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def base_names(record: str) -> set[str]:
    """Normalised names listed in the base record."""
    with open(record, encoding="utf-8") as fh:
        return {
            line.partition("==")[0].strip()
            for line in fh
            if line.strip() and not line.startswith("#")
        }


def size_of(path: Path) -> int:
    """Bytes under ``path`` (a file or a directory; symlinks count as 0)."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(
        (Path(root) / name).stat().st_size
        for root, _dirs, files in os.walk(path)
        for name in files
        if not (Path(root) / name).is_symlink()
    )


class Dist:
    """One installed distribution: its location and the files its RECORD lists."""

    def __init__(self, dist: metadata.Distribution) -> None:
        self.dist = dist
        self.name = normalise(dist.metadata["Name"])
        self.root = self.path("")
        self.files = [self.path(str(f)) for f in (dist.files or [])]
        self.removed: set[Path] = set()
        self._removed_text: set[str] = set()

    def path(self, name: str) -> Path:
        """Absolute, normalised (``..`` folded, symlinks kept) path of a RECORD entry."""
        return Path(os.path.normpath(str(self.dist.locate_file(name))))

    def live_files(self) -> list[Path]:
        """Files of the RECORD not removed yet."""
        return [f for f in self.files if not self._is_removed(f)]

    def _is_removed(self, path: Path) -> bool:
        # A set lookup per ancestor (strings: pathlib's parents are slow): checking every
        # removed path against every file was quadratic (jupyterlab: thousands of files
        # and of removed source maps).
        if not self.removed:
            return False
        removed = self._removed_text
        text = str(path)
        while True:
            if text in removed:
                return True
            parent = os.path.dirname(text)
            if parent == text:
                return False
            text = parent

    def remove(self, path: Path) -> int:
        """Delete a file or directory of this distribution; return the bytes freed."""
        freed = size_of(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        self.removed.add(path)
        self._removed_text.add(str(path))
        return freed

    def rewrite_record(self) -> None:
        """Drop the removed files' lines from RECORD."""
        if not self.removed:
            return
        record = next((f for f in self.files if f.name == "RECORD"), None)
        if record is None or not record.is_file():
            return
        rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
        kept = [r for r in rows if r and not self._is_removed(self.path(r[0]))]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(kept)
        record.write_text(out.getvalue(), encoding="utf-8")


def source_maps(dist: Dist) -> int:
    """Rule ``source maps``."""
    return sum(
        dist.remove(f) for f in dist.live_files() if f.name.endswith(MAP_SUFFIXES) and f.is_file()
    )


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are module, class or function docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _module_names(dist: Dist, path: Path) -> set[str]:
    """Modules a file imports or names in a string (not in a docstring), absolute."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return set()
    package = list(path.relative_to(dist.root).parent.parts)
    docstrings = _docstrings(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            names.add(node.value)
    return names


def _imported_elsewhere(
    dist: Dist, test_dir: Path, py_files: list[Path], names: dict[Path, set[str]]
) -> bool:
    """Whether a module outside ``test_dir`` imports it or names it in code.

    ``names``: each file's module names, parsed once per distribution (filled here).
    """
    dotted = ".".join(test_dir.relative_to(dist.root).parts)
    prefix = str(test_dir) + os.sep
    # A file that does not contain the directory's name cannot import or name it
    # (absolute, relative or in a string): skip parsing it.
    needle = test_dir.name.encode()
    for f in py_files:
        if str(f).startswith(prefix):
            continue
        if f not in names:
            try:
                if needle not in f.read_bytes():
                    continue
            except OSError:
                continue
            names[f] = _module_names(dist, f)
        for name in names[f]:
            if name == dotted or name.startswith(dotted + "."):
                return True
    return False


def test_suites(dist: Dist) -> int:
    """Rule ``test suites``."""
    files = dist.live_files()
    candidates = sorted(
        {
            p
            for f in files
            for p in f.parents
            if p.name in TEST_DIRS and dist.root in p.parents and p.parent != dist.root
        },
        key=lambda p: len(p.parts),
    )
    py_files = [f for f in files if f.suffix == ".py"]
    names: dict[Path, set[str]] = {}
    freed = 0
    for test_dir in candidates:
        if dist._is_removed(test_dir) or not test_dir.is_dir():
            continue
        prefix = str(test_dir) + os.sep
        inside = [f for f in files if str(f).startswith(prefix)]
        if not any(f.suffix == ".py" for f in inside) or any(f.suffix == ".pyi" for f in inside):
            continue
        if _imported_elsewhere(dist, test_dir, py_files, names):
            print(f"prune: keeping {test_dir} (imported by another module of {dist.name})")
            continue
        freed += dist.remove(test_dir)
    return freed


def compiled_sources(dist: Dist) -> int:
    """Rule ``compiled sources``."""
    freed = 0
    for f in dist.live_files():
        if f.suffix not in SOURCE_SUFFIXES or not f.is_file():
            continue
        if any(f.parent.glob(f"{f.stem}.*.so")) or (f.parent / f"{f.stem}.so").is_file():
            freed += dist.remove(f)
    return freed


def ui_test_extension(dist: Dist) -> int:
    """Rule ``UI test extension``."""
    galata = dist.root / "jupyterlab" / "galata"
    if dist.name != "jupyterlab" or not galata.is_dir():
        return 0
    return dist.remove(galata)


def hub_web_ui(dist: Dist) -> int:
    """Rule ``hub web UI``."""
    if dist.name != "jupyterhub":
        return 0
    freed = 0
    for f in dist.live_files():
        parts = f.parts
        for i in range(len(parts) - 3):
            if parts[i : i + 4] == ("share", "jupyterhub", "static", "components"):
                components = Path(*parts[: i + 4])
                if components.is_dir() and not dist._is_removed(components):
                    freed += dist.remove(components)
                break
    return freed


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _match, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def duplicate_lab_assets(dist: Dist) -> int:
    """Rule ``duplicate lab assets``."""
    package_static = dist.root / "jupyterlab" / "static"
    if dist.name != "jupyterlab" or package_static.is_symlink() or not package_static.is_dir():
        return 0
    # The app dir is where the wheel put its data files (<prefix>/share/jupyter/lab,
    # which jupyterlab.commands.get_app_dir returns for such an install); read from the
    # distribution's RECORD: importing jupyterlab.commands to ask took ~6 s (it loads the
    # whole server stack), more than the rest of this script.
    app_static = next(
        (
            Path(*f.parts[: i + 4])
            for f in dist.files
            for i in range(len(f.parts) - 3)
            if f.parts[i : i + 4] == ("share", "jupyter", "lab", "static")
        ),
        None,
    )
    if app_static is None or os.environ.get("JUPYTERLAB_DIR"):
        print(f"prune: keeping {package_static} (no app dir in the wheel, or JUPYTERLAB_DIR set)")
        return 0
    if not app_static.is_dir() or not _same_tree(package_static, app_static):
        print(f"prune: keeping {package_static} (differs from {app_static})")
        return 0
    freed = size_of(package_static)
    shutil.rmtree(package_static)
    package_static.symlink_to(app_static, target_is_directory=True)
    return freed


RULES = {
    "source maps": source_maps,
    "test suites": test_suites,
    "compiled sources": compiled_sources,
    "UI test extension": ui_test_extension,
    "hub web UI": hub_web_ui,
    "duplicate lab assets": duplicate_lab_assets,
}


def prune(base_record: str) -> dict[str, int]:
    """Apply every rule to the stack's distributions; bytes freed per rule."""
    base = base_names(base_record)
    freed = dict.fromkeys(RULES, 0)
    seen: set[str] = set()
    for found in metadata.distributions():
        if not found.metadata["Name"]:
            continue
        dist = Dist(found)
        if dist.name in base or dist.name in seen:
            continue
        seen.add(dist.name)
        for label, rule in RULES.items():
            freed[label] += rule(dist)
        dist.rewrite_record()
    return freed


def main(argv: list[str]) -> int:
    """Command line entry (see the module docstring)."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        freed = prune(argv[0])
    except OSError as err:
        print(
            f"prune: cannot remove {err.filename}: {err.strerror}; run as root in the build",
            file=sys.stderr,
        )
        return 1
    for label, size in freed.items():
        print(f"prune: {label}: {size / 1e6:.1f} MB")
    print(f"prune: total {sum(freed.values()) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
