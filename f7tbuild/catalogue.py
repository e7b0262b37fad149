"""Read catalogue.toml into typed build targets (images, variants, stand-ins, stacks)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOGUE = REPO_ROOT / "catalogue.toml"
LOCAL_NAMESPACE = "f7t4jhub"


class CatalogueError(ValueError):
    """The catalogue is malformed; the message names the entry and the fix."""


@dataclass(frozen=True)
class Standin:
    """A stand-in base kind: a Debian suite plus images/standin/<kind>/Dockerfile."""

    kind: str
    suite: str
    description: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """Local reference of the stand-in base image."""
        return f"{LOCAL_NAMESPACE}/standin-{self.kind}:latest"

    @property
    def rootfs_ref(self) -> str:
        """Local reference of the imported debootstrap tree it is built on."""
        return f"{LOCAL_NAMESPACE}/standin-rootfs:{self.suite}"


@dataclass(frozen=True)
class Target:
    """One buildable image: an image family, optionally one of its variants."""

    family: str
    variant: str | None
    dockerfile: str
    context: str
    base: str
    standin: str
    platforms: tuple[str, ...]
    versions: dict[str, str]
    version_args: dict[str, str]
    stack_name: str | None
    stack: dict[str, str]
    stack_packages: tuple[str, ...] | None
    lock: str | None
    description: str = ""
    main: str | None = None
    latest: bool = True

    def main_component(self) -> tuple[str, str]:
        """(name, version) of the component the image is known by (tags, OCI version).

        The catalogue's ``main`` key names it (looked up in ``versions``, then the stack);
        without it: the first pinned version, else the stack's jupyterhub.
        """
        name = self.main
        if name is None:
            name = next(iter(self.versions), None) or (
                "jupyterhub" if "jupyterhub" in self.stack else None
            )
        if name is None:
            raise CatalogueError(
                f"image {self.name} has no versions and no stack: set main = \"<package>\" "
                "and pin it in versions or the stack"
            )
        version = self.versions.get(name) or self.stack.get(name)
        if not version:
            raise CatalogueError(
                f"image {self.name}: main component {name!r} is pinned neither in its "
                f"versions nor in stack {self.stack_name!r}; pin it there"
            )
        return name, version

    @property
    def name(self) -> str:
        """Display name: ``chp`` or ``singleuser-pytorch-25.10``."""
        return self.family if self.variant is None else f"{self.family}-{self.variant}"

    @property
    def repository(self) -> str:
        """Local repository name, ``f7t4jhub/<family>``."""
        return f"{LOCAL_NAMESPACE}/{self.family}"

    def stack_requirements(self) -> str:
        """Space-separated ``name==version`` pins of the target's stack (selected packages)."""
        names = self.stack_packages if self.stack_packages is not None else tuple(self.stack)
        missing = [n for n in names if n not in self.stack]
        if missing:
            raise CatalogueError(
                f"image {self.name}: stack_packages {missing} are not in stack "
                f"{self.stack_name!r}; add them to [stacks.{self.stack_name}] or drop them"
            )
        return " ".join(f"{n}=={self.stack[n]}" for n in names)


@dataclass(frozen=True)
class Catalogue:
    """The whole catalogue: registry, stacks, stand-ins and build targets."""

    registry: str
    stacks: dict[str, dict[str, str]]
    standins: dict[str, Standin]
    targets: tuple[Target, ...]
    path: Path
    source: str = ""

    def families(self) -> list[str]:
        """Image family names in catalogue order."""
        seen: list[str] = []
        for t in self.targets:
            if t.family not in seen:
                seen.append(t.family)
        return seen

    def select(self, names: list[str]) -> list[Target]:
        """Targets named by family (``singleuser``), full name, variant or ``all``.

        ``[family, variant, ...]`` (as nox passes ``build singleuser -- <variant>``)
        selects only those variants of that family; several families select them all, and
        so does a family followed by names of other families' images or variants
        (``hub pytorch-25.10``: the hub and that singleuser variant).
        """
        if not names or names == ["all"]:
            return list(self.targets)
        families = self.families()
        if len(names) > 1 and names[0] in families and not set(names[1:]) & set(families):
            family, rest = names[0], names[1:]
            in_family = self.select(rest)
            if all(t.family == family for t in in_family):
                return in_family
        chosen: list[Target] = []
        for name in names:
            hits = [
                t
                for t in self.targets
                if name in (t.family, t.name) or (t.variant is not None and name == t.variant)
            ]
            if not hits:
                known = ", ".join(["all", *self.families(), *(t.name for t in self.targets)])
                raise CatalogueError(f"no image or variant named {name!r}; known: {known}")
            chosen.extend(h for h in hits if h not in chosen)
        return chosen

    def standin(self, kind: str) -> Standin:
        """The stand-in kind, or an error listing the known kinds."""
        try:
            return self.standins[kind]
        except KeyError:
            raise CatalogueError(
                f"unknown stand-in kind {kind!r}; known: {', '.join(self.standins)}"
            ) from None


def _str_dict(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CatalogueError(f"{where} must be a table of strings")
    return dict(value)


def _require(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise CatalogueError(f"{where}: missing string key {key!r}")
    return value


def _stack(stacks: dict[str, dict[str, str]], name: str | None, where: str) -> dict[str, str]:
    if name is None:
        return {}
    if name not in stacks:
        raise CatalogueError(f"{where}: stack {name!r} is not defined; known: {', '.join(stacks)}")
    return stacks[name]


def _targets(
    family: str, entry: dict[str, Any], stacks: dict[str, dict[str, str]], standins: set[str]
) -> list[Target]:
    where = f"[images.{family}]"
    standin = _require(entry, "standin", where)
    if standin not in standins:
        raise CatalogueError(f"{where}: standin {standin!r} has no [standins.{standin}] table")
    packages = entry.get("stack_packages")
    common: dict[str, Any] = {
        "family": family,
        "dockerfile": _require(entry, "dockerfile", where),
        "context": entry.get("context", "."),
        "standin": standin,
        "platforms": tuple(entry.get("platforms", ["linux/amd64"])),
        "versions": _str_dict(entry.get("versions", {}), f"{where}.versions"),
        "version_args": _str_dict(entry.get("version_args", {}), f"{where}.version_args"),
        "stack_packages": tuple(packages) if packages is not None else None,
        "lock": entry.get("lock"),
        "description": entry.get("description", ""),
        "main": entry.get("main"),
    }
    for arg_key in common["version_args"]:
        if arg_key not in common["versions"]:
            raise CatalogueError(f"{where}: version_args names {arg_key!r}, absent from versions")
    variants = entry.get("variants")
    if not variants:
        stack_name = entry.get("stack")
        return [
            Target(
                variant=None,
                base=_require(entry, "base", where),
                stack_name=stack_name,
                stack=_stack(stacks, stack_name, where),
                **common,
            )
        ]
    latest = [v for v, ventry in variants.items() if ventry.get("latest")]
    if len(latest) > 1:
        raise CatalogueError(
            f"{where}: variants {latest} all say latest = true; mark only one"
        )
    latest_variant = latest[0] if latest else list(variants)[-1]
    out = []
    for vname, ventry in variants.items():
        vwhere = f'[images.{family}.variants."{vname}"]'
        stack_name = ventry.get("stack", entry.get("stack"))
        per_variant = dict(common)
        if entry.get("locks"):
            per_variant["lock"] = f"{str(entry['locks']).rstrip('/')}/{vname}.lock"
        out.append(
            Target(
                variant=vname,
                base=_require(ventry, "base", vwhere),
                stack_name=stack_name,
                stack=_stack(stacks, stack_name, vwhere),
                latest=vname == latest_variant,
                **per_variant,
            )
        )
    return out


def parse(data: dict[str, Any], path: Path = DEFAULT_CATALOGUE) -> Catalogue:
    """Validate a decoded catalogue and build the typed view."""
    if data.get("schema") != 1:
        raise CatalogueError(f"{path}: expected schema = 1, got {data.get('schema')!r}")
    stacks = {
        name: {k: v for k, v in table.items() if k != "description"}
        for name, table in data.get("stacks", {}).items()
    }
    standins = {
        kind: Standin(
            kind=kind,
            suite=_require(t, "suite", f"[standins.{kind}]"),
            description=t.get("description", ""),
            versions=_str_dict(t.get("versions", {}), f"[standins.{kind}.versions]"),
        )
        for kind, t in data.get("standins", {}).items()
    }
    targets: list[Target] = []
    for family, entry in data.get("images", {}).items():
        targets.extend(_targets(family, entry, stacks, set(standins)))
    return Catalogue(
        registry=_require(data, "registry", str(path)),
        stacks=stacks,
        standins=standins,
        targets=tuple(targets),
        path=path,
        source=str(data.get("source", "")),
    )


def load(path: Path | None = None) -> Catalogue:
    """Load and validate catalogue.toml (default: the repository's)."""
    path = path or DEFAULT_CATALOGUE
    with open(path, "rb") as fh:
        return parse(tomllib.load(fh), path)
