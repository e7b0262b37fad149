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


def size_of(path: str) -> int:
    """Bytes under ``path`` (a file or a directory; symlinks count as 0)."""
    if os.path.islink(path):
        return 0
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def _segment(*names: str) -> str:
    """``/a/b/`` for a match of consecutive directory names inside an absolute path."""
    return os.sep + os.sep.join(names) + os.sep


class Dist:
    """One installed distribution: its location and the files its RECORD lists.

    Paths are absolute, normalised strings (``..`` folded, symlinks kept): the stack has
    thousands of files, and pathlib objects and importlib.metadata's ``files`` (which
    stats every entry) made this script take seconds of the image build.
    """

    def __init__(self, dist: metadata.Distribution) -> None:
        self.dist = dist
        self.name = normalise(dist.metadata["Name"])
        self.root = os.path.normpath(str(dist.locate_file("")))
        record = dist.read_text("RECORD")
        if record is not None:
            entries = [row[0] for row in csv.reader(io.StringIO(record)) if row]
        else:  # no RECORD (legacy installs): importlib.metadata's own list
            entries = [str(f) for f in (dist.files or [])]
        self.files = [self.path(name) for name in entries]
        self.removed: set[str] = set()

    def path(self, name: str) -> str:
        """Absolute, normalised path of a RECORD entry."""
        return os.path.normpath(os.path.join(self.root, name))

    def live_files(self) -> list[str]:
        """Files of the RECORD not removed yet."""
        if not self.removed:
            return list(self.files)
        return [f for f in self.files if not self._is_removed(f)]

    def _is_removed(self, path: str) -> bool:
        # A set lookup per ancestor: checking every removed path against every file was
        # quadratic (jupyterlab: thousands of files and of removed source maps).
        if not self.removed:
            return False
        text = path
        while True:
            if text in self.removed:
                return True
            parent = os.path.dirname(text)
            if parent == text:
                return False
            text = parent

    def remove(self, path: str) -> int:
        """Delete a file or directory of this distribution; return the bytes freed."""
        freed = size_of(path)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        self.removed.add(path)
        return freed

    def rewrite_record(self) -> None:
        """Drop the removed files' lines from RECORD."""
        if not self.removed:
            return
        record = next((f for f in self.files if os.path.basename(f) == "RECORD"), None)
        if record is None or not os.path.isfile(record):
            return
        with open(record, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        kept = [r for r in rows if r and not self._is_removed(self.path(r[0]))]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(kept)
        with open(record, "w", encoding="utf-8", newline="") as fh:
            fh.write(out.getvalue())


def source_maps(dist: Dist) -> int:
    """Rule ``source maps``."""
    return sum(
        dist.remove(f)
        for f in dist.live_files()
        if f.endswith(MAP_SUFFIXES) and os.path.isfile(f)
    )


def _relative_parts(dist: Dist, path: str) -> list[str]:
    """``path``'s components below the distribution's root (``[]`` for the root)."""
    rel = os.path.relpath(path, dist.root)
    return [] if rel == os.curdir else rel.split(os.sep)


def _module_names(dist: Dist, path: str, source: bytes) -> set[str]:
    """Modules a file imports or names in a string (not in a docstring), absolute."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    package = _relative_parts(dist, os.path.dirname(path))
    docstrings: set[int] = set()  # ids of module, class and function docstrings
    names: set[str] = set()
    # One breadth-first walk: a docstring's owner is visited before the string itself.
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
        elif isinstance(node, ast.Import):
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
    dist: Dist, test_dir: str, py_files: list[str], names: dict[str, set[str]]
) -> bool:
    """Whether a module outside ``test_dir`` imports it or names it in code.

    ``names``: each file's module names, parsed once per distribution (filled here).
    """
    dotted = ".".join(_relative_parts(dist, test_dir))
    prefix = test_dir + os.sep
    # A file that does not contain the directory's name cannot import or name it
    # (absolute, relative or in a string): skip parsing it.
    needle = os.path.basename(test_dir).encode()
    for f in py_files:
        if f.startswith(prefix):
            continue
        if f not in names:
            try:
                with open(f, "rb") as fh:
                    source = fh.read()
            except OSError:
                continue
            if needle not in source:
                continue
            names[f] = _module_names(dist, f, source)
        for name in names[f]:
            if name == dotted or name.startswith(dotted + "."):
                return True
    return False


def test_suites(dist: Dist) -> int:
    """Rule ``test suites``."""
    files = dist.live_files()
    root = dist.root + os.sep
    candidates: set[str] = set()
    for f in files:
        if not f.startswith(root):
            continue
        parts = f[len(root) :].split(os.sep)
        # directories of the path, not top-level ones (a package's own tests/)
        for i in range(1, len(parts) - 1):
            if parts[i] in TEST_DIRS:
                candidates.add(root + os.sep.join(parts[: i + 1]))
    py_files = [f for f in files if f.endswith(".py")]
    names: dict[str, set[str]] = {}
    freed = 0
    for test_dir in sorted(candidates, key=lambda p: p.count(os.sep)):
        if dist._is_removed(test_dir) or not os.path.isdir(test_dir):
            continue
        prefix = test_dir + os.sep
        inside = [f for f in files if f.startswith(prefix)]
        if not any(f.endswith(".py") for f in inside) or any(f.endswith(".pyi") for f in inside):
            continue
        if _imported_elsewhere(dist, test_dir, py_files, names):
            print(f"prune: keeping {test_dir} (imported by another module of {dist.name})")
            continue
        freed += dist.remove(test_dir)
    return freed


def compiled_sources(dist: Dist) -> int:
    """Rule ``compiled sources``."""
    freed = 0
    listings: dict[str, list[str]] = {}
    for f in dist.live_files():
        stem, suffix = os.path.splitext(f)
        if suffix not in SOURCE_SUFFIXES or not os.path.isfile(f):
            continue
        folder, name = os.path.split(stem)
        if folder not in listings:
            listings[folder] = os.listdir(folder)
        if any(
            entry == f"{name}.so" or (entry.startswith(f"{name}.") and entry.endswith(".so"))
            for entry in listings[folder]
        ):
            freed += dist.remove(f)
    return freed


def ui_test_extension(dist: Dist) -> int:
    """Rule ``UI test extension``."""
    galata = os.path.join(dist.root, "jupyterlab", "galata")
    if dist.name != "jupyterlab" or not os.path.isdir(galata):
        return 0
    return dist.remove(galata)


def _first_dir(dist: Dist, *names: str) -> str | None:
    """The first directory ``.../<names...>`` that a RECORD entry lies in."""
    needle = _segment(*names)
    for f in dist.files:
        at = f.find(needle)
        if at >= 0:
            return f[: at + len(needle) - 1]
    return None


def hub_web_ui(dist: Dist) -> int:
    """Rule ``hub web UI``."""
    if dist.name != "jupyterhub":
        return 0
    components = _first_dir(dist, "share", "jupyterhub", "static", "components")
    if components is None or not os.path.isdir(components) or dist._is_removed(components):
        return 0
    return dist.remove(components)


def _same_tree(a: str, b: str) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _match, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def duplicate_lab_assets(dist: Dist) -> int:
    """Rule ``duplicate lab assets``."""
    package_static = os.path.join(dist.root, "jupyterlab", "static")
    if (
        dist.name != "jupyterlab"
        or os.path.islink(package_static)
        or not os.path.isdir(package_static)
    ):
        return 0
    # The app dir is where the wheel put its data files (<prefix>/share/jupyter/lab,
    # which jupyterlab.commands.get_app_dir returns for such an install); read from the
    # distribution's RECORD: importing jupyterlab.commands to ask took ~6 s (it loads the
    # whole server stack), more than the rest of this script.
    app_static = _first_dir(dist, "share", "jupyter", "lab", "static")
    if app_static is None or os.environ.get("JUPYTERLAB_DIR"):
        print(f"prune: keeping {package_static} (no app dir in the wheel, or JUPYTERLAB_DIR set)")
        return 0
    if not os.path.isdir(app_static) or not _same_tree(package_static, app_static):
        print(f"prune: keeping {package_static} (differs from {app_static})")
        return 0
    freed = size_of(package_static)
    shutil.rmtree(package_static)
    os.symlink(app_static, package_static, target_is_directory=True)
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
