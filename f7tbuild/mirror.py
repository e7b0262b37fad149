"""Find the host's Debian mirror in its apt configuration (never hard-coded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

APT_DIR = Path("/etc/apt")


class MirrorError(RuntimeError):
    """No usable Debian mirror in the host's apt configuration."""


@dataclass(frozen=True)
class AptSource:
    """One apt source: a URI with its suites and components."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    types: tuple[str, ...] = ("deb",)


def parse_deb822(text: str) -> list[AptSource]:
    """Parse a deb822 ``.sources`` file (stanzas separated by blank lines)."""
    sources: list[AptSource] = []
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        types = tuple(stanza.get("types", "").split())
        for uri in stanza.get("uris", "").split():
            sources.append(
                AptSource(
                    uri=uri.rstrip("/"),
                    suites=tuple(stanza.get("suites", "").split()),
                    components=tuple(stanza.get("components", "").split()),
                    types=types,
                )
            )
    return sources


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
            continue
        if raw[0] in " \t" and key:
            current[key] += " " + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if sep:
            key = name.strip().lower()
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_one_line(text: str) -> list[AptSource]:
    """Parse one-line style ``sources.list`` entries (``deb [opts] uri suite comp...``)."""
    sources: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        if kind not in ("deb", "deb-src"):
            continue
        rest = rest.strip()
        if rest.startswith("["):
            rest = rest.split("]", 1)[1].strip() if "]" in rest else ""
        parts = rest.split()
        if len(parts) < 2:
            continue
        sources.append(
            AptSource(
                uri=parts[0].rstrip("/"),
                suites=(parts[1],),
                components=tuple(parts[2:]),
                types=(kind,),
            )
        )
    return sources


def _is_archive(source: AptSource) -> bool:
    """True for a main Debian archive entry (not security, not backports-only, binary)."""
    if "deb" not in source.types:
        return False
    if not source.uri.startswith(("http://", "https://", "file:")):
        return False
    if any(s.endswith(("-security", "/updates")) for s in source.suites):
        return False
    return "security" not in source.uri.rsplit("/", 1)[-1]


def pick_mirror(sources: list[AptSource]) -> str:
    """The first main-archive URI among the sources (security mirrors are skipped)."""
    for source in sources:
        if _is_archive(source) and (not source.components or "main" in source.components):
            return source.uri
    raise MirrorError(
        "no Debian archive mirror found in the host's apt sources "
        "(/etc/apt/sources.list, /etc/apt/sources.list.d/*.sources|*.list); "
        "add one there or pass --mirror URI"
    )


def host_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every apt source configured on this host, in apt's reading order."""
    sources: list[AptSource] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        sources.extend(parse_one_line(main.read_text()))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                sources.extend(parse_deb822(path.read_text()))
            elif path.suffix == ".list":
                sources.extend(parse_one_line(path.read_text()))
    return sources


def host_mirror(apt_dir: Path = APT_DIR) -> str:
    """The Debian mirror this host's apt uses."""
    return pick_mirror(host_sources(apt_dir))
