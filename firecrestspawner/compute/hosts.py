"""The one host validator both sides use: what a job may report as its server's host.

Standard library only: the compute-side launcher checks the host it is about to report,
and the hub's callback handler checks the host it received, with the same rules.

Two questions, two functions:

* :func:`check_host` — is this *syntactically* a host the hub may connect to? A DNS
  host name (letters, digits, ``-`` and ``.``, labels of 1..63 characters) or an IP
  address literal (IPv4 dotted quad, IPv6, optionally in brackets). Everything that
  could smuggle a different destination into a URL is refused: user info (``@``), a
  port (``:`` outside an IPv6 literal), paths, spaces, percent-escapes, IPv6 zone ids,
  non-ASCII look-alikes and the numeric forms ``inet_aton`` accepts but humans misread
  (``127.1``, ``0x7f.0.0.1``, ``2130706433``, leading zeros).
* :func:`match_allocated` — is the host one of the job's allocated nodes, as FirecREST
  reports them (a Slurm host list such as ``nid[001-003],nid005``), either by name or
  through a site :class:`NodeAddressing` (templates like ``{node}.cluster.example``, or
  a regular expression whose ``node`` group names the node)? The answer is a
  :class:`HostMatch` that is true when accepted and otherwise carries a reason naming
  the host and the job's nodes.

:func:`expand_hostlist` expands Slurm's compressed host lists.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "HostError",
    "HostMatch",
    "NodeAddressing",
    "check_host",
    "expand_hostlist",
    "match_allocated",
]

#: Longest DNS name (RFC 1035, without the trailing dot).
MAX_HOST_LENGTH = 253
#: At most this many names come out of one host list (a job on more nodes is not
#: something a JupyterLab server runs on; the cap keeps a hostile list cheap).
MAX_HOSTLIST_NAMES = 65536
#: What FirecREST reports for a job that has no nodes yet.
NO_NODES = ("", "None assigned", "(null)", "None")

_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_NUMERIC_LABEL_RE = re.compile(r"(?:0[xX][0-9A-Fa-f]*|[0-9]+)\Z")
#: Characters that turn a host into something else inside a URL, named for the message.
_URL_SPECIALS = {
    "@": "'@' (user info: the part before it would be ignored)",
    "/": "'/' (a path)",
    "\\": "'\\' (a path on some parsers)",
    "?": "'?' (a query)",
    "#": "'#' (a fragment)",
    "%": "'%' (a percent-escape or an IPv6 zone id)",
    " ": "a space",
}


class HostError(ValueError):
    """A reported host is not acceptable; the message says why and what is allowed."""


def _shown(host: str, limit: int = 80) -> str:
    """``host`` quoted and escaped for a message, cut to ``limit`` characters."""
    text = host if len(host) <= limit else host[:limit] + "..."
    return ascii(text) if not text.isascii() or not text.isprintable() else repr(text)


def _check_ip(text: str) -> str | None:
    """Canonical form of an IP literal ``text`` (brackets allowed for IPv6), else None."""
    bracketed = text.startswith("[") and text.endswith("]")
    inner = text[1:-1] if bracketed else text
    try:
        addr = ipaddress.ip_address(inner)
    except ValueError:
        return None
    if bracketed and addr.version != 6:
        return None
    return str(addr)


def check_host(host: object) -> str:
    """Return ``host`` in canonical form if it is a host name or IP literal the hub may use.

    Canonical: lower case, no trailing dot, IPv6 without brackets and compressed.
    Raises :class:`HostError` (a ValueError) naming the problem otherwise.
    """
    if not isinstance(host, str):
        raise HostError(f"the host must be a string, got {type(host).__name__}")
    if not host:
        raise HostError("the host is empty; expected a host name or an IP address")
    if len(host) > MAX_HOST_LENGTH + 2:
        raise HostError(
            f"the host {_shown(host)} is {len(host)} characters long; a host name has at "
            f"most {MAX_HOST_LENGTH}"
        )
    if not host.isascii() or not host.isprintable():
        odd = next(ch for ch in host if not ch.isascii() or not ch.isprintable())
        raise HostError(
            f"the host {_shown(host)} contains {odd!a} (U+{ord(odd):04X}); only ASCII "
            "letters, digits, '-' and '.' (or an IP address) are allowed"
        )
    for char, what in _URL_SPECIALS.items():
        if char in host:
            raise HostError(
                f"the host {_shown(host)} contains {what}; report only a host name or an "
                "IP address"
            )
    if ":" in host or host.startswith("["):
        canonical = _check_ip(host)
        if canonical is None or ipaddress.ip_address(canonical).version != 6:
            raise HostError(
                f"the host {_shown(host)} is not a valid IPv6 address, and ':' is allowed "
                "only in one (report the port separately, never as host:port)"
            )
        return canonical
    name = host.removesuffix(".")
    labels = name.split(".")
    if _NUMERIC_LABEL_RE.match(labels[-1]):
        # A name whose last label is numeric is an IPv4 address or nothing: the forms
        # inet_aton also accepts (127.1, 0x7f.1, 2130706433, 010.0.0.1) are refused.
        canonical = _check_ip(name)
        if canonical is None:
            raise HostError(
                f"the host {_shown(host)} looks numeric but is not a dotted-quad IPv4 "
                "address (four decimal numbers 0..255, no leading zeros)"
            )
        return canonical
    if len(name) > MAX_HOST_LENGTH:
        raise HostError(
            f"the host {_shown(host)} is longer than {MAX_HOST_LENGTH} characters"
        )
    for label in labels:
        if not _LABEL_RE.match(label):
            raise HostError(
                f"the host {_shown(host)} has an invalid label {_shown(label, 70)}: each "
                "dot-separated part must be 1..63 letters, digits or '-', not starting "
                "or ending with '-'"
            )
    return name.lower()


# ---------------------------------------------------------------------------
# Slurm host lists
# ---------------------------------------------------------------------------
def _split_top_level(text: str) -> list[str]:
    """Split on commas that are outside brackets; raise ValueError on unbalanced ones."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"host list {_shown(text)}: nested '[' at position {i}")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"host list {_shown(text)}: ']' without '[' at position {i}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"host list {_shown(text)}: '[' is never closed")
    parts.append(text[start:])
    return parts


def _expand_range(spec: str, whole: str) -> list[str]:
    """``001-003,7`` (the inside of one bracket) to ``['001', '002', '003', '7']``."""
    values: list[str] = []
    for item in spec.split(","):
        item = item.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise ValueError(
                f"host list {_shown(whole)}: {_shown(item)} in brackets is not a number "
                "or a range lo-hi"
            )
        lo_text, hi_text = match.group(1), match.group(2)
        if hi_text is None:
            values.append(lo_text)
            continue
        lo, hi = int(lo_text), int(hi_text)
        if lo > hi:
            raise ValueError(f"host list {_shown(whole)}: range {item} runs backwards")
        if hi - lo + 1 > MAX_HOSTLIST_NAMES:
            raise ValueError(
                f"host list {_shown(whole)}: range {item} has more than "
                f"{MAX_HOSTLIST_NAMES} names"
            )
        width = len(lo_text) if lo_text.startswith("0") and len(lo_text) > 1 else 0
        values.extend(str(n).zfill(width) for n in range(lo, hi + 1))
    return values


def expand_hostlist(text: str) -> list[str]:
    """Expand a Slurm host list: ``nid[001-003],nid005`` -> nid001, nid002, nid003, nid005.

    Brackets hold numbers and ranges separated by commas; zero padding follows the
    lower bound (``[08-10]`` -> 08, 09, 10); several bracket groups in one name give
    every combination (``r[1-2]n[1-2]``). Order is kept, duplicates are dropped.
    ``"None assigned"`` and empty text (no nodes yet) give an empty list. Raises
    ValueError on malformed lists or more than :data:`MAX_HOSTLIST_NAMES` names.
    """
    text = text.strip()
    if text in NO_NODES:
        return []
    names: list[str] = []
    seen: set[str] = set()
    for part in _split_top_level(text):
        part = part.strip()
        if not part:
            continue
        pieces = re.split(r"\[([^\]]*)\]", part)
        combos = [""]
        for i, piece in enumerate(pieces):
            options = _expand_range(piece, text) if i % 2 else [piece]
            combos = [c + o for c in combos for o in options]
            if len(combos) > MAX_HOSTLIST_NAMES:
                raise ValueError(
                    f"host list {_shown(text)} has more than {MAX_HOSTLIST_NAMES} names"
                )
        for name in combos:
            if name not in seen:
                seen.add(name)
                names.append(name)
                if len(names) > MAX_HOSTLIST_NAMES:
                    raise ValueError(
                        f"host list {_shown(text)} has more than {MAX_HOSTLIST_NAMES} names"
                    )
    return names


# ---------------------------------------------------------------------------
# Host against the job's nodes
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeAddressing:
    """How a site's compute nodes are reached from the hub, given their Slurm names.

    * ``templates``: the addresses of node ``N``, e.g. ``("{node}.cluster.example",
      "{node}-hsn0")``. ``{node}`` is the Slurm node name. The bare node name is always
      accepted too unless ``accept_node_name`` is False.
    * ``pattern``: a regular expression the whole reported host must match, whose named
      group ``node`` must then be one of the job's nodes (e.g.
      ``r"(?P<node>nid\\d+)\\.hsn\\.cluster\\.example"``).

    With neither, only the node names themselves are accepted.
    """

    templates: tuple[str, ...] = ()
    pattern: str | None = None
    accept_node_name: bool = True
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False,
                                              compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.templates, str):
            object.__setattr__(self, "templates", (self.templates,))
        for template in self.templates:
            if "{node}" not in template:
                raise ValueError(
                    f"node address template {template!r} does not contain '{{node}}'; "
                    "write e.g. '{node}.cluster.example'"
                )
            try:
                template.format(node="x")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"node address template {template!r} is not a valid format string "
                    f"with only '{{node}}' ({exc})"
                ) from None
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(
                    f"node address pattern {self.pattern!r} is not a regular expression: {exc}"
                ) from None
            if "node" not in compiled.groupindex:
                raise ValueError(
                    f"node address pattern {self.pattern!r} has no named group 'node'; "
                    r"write e.g. '(?P<node>nid\d+)\.cluster\.example'"
                )
            object.__setattr__(self, "_compiled", compiled)
        if not (self.accept_node_name or self.templates or self.pattern):
            raise ValueError(
                "node addressing accepts nothing: set templates or a pattern, or accept "
                "the node names"
            )

    def describe(self) -> str:
        """The accepted forms, for messages."""
        forms = ["the node name"] if self.accept_node_name else []
        forms += [repr(t) for t in self.templates]
        if self.pattern is not None:
            forms.append(f"pattern {self.pattern!r}")
        return " or ".join(forms)

    def node_for(self, host: str, nodes: Sequence[str]) -> str | None:
        """The node among ``nodes`` that ``host`` (canonical) addresses, or None."""
        by_lower = {n.lower(): n for n in nodes}
        if self.accept_node_name and host in by_lower:
            return by_lower[host]
        for template in self.templates:
            for low, node in by_lower.items():
                if template.format(node=low).lower().rstrip(".") == host:
                    return node
        if self._compiled is not None:
            match = self._compiled.fullmatch(host)
            if match and match.group("node") is not None:
                return by_lower.get(match.group("node").lower())
        return None


@dataclass(frozen=True)
class HostMatch:
    """The verdict of :func:`match_allocated`: true when accepted."""

    accepted: bool
    host: str
    node: str | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.accepted


def _nodes_text(nodes: Sequence[str], limit: int = 8) -> str:
    if not nodes:
        return "none"
    shown = ", ".join(nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")


def match_allocated(
    host: object,
    nodes: str | Iterable[str],
    addressing: NodeAddressing | None = None,
    resolve: Callable[[str], Iterable[str]] | None = None,
) -> HostMatch:
    """Decide whether a job's reported ``host`` is one of its allocated ``nodes``.

    ``nodes`` is FirecREST's ``nodes`` field (a Slurm host list, e.g.
    ``nid[001-003],nid005``, or ``None assigned``) or an iterable of node names.
    ``addressing`` maps node names to the names the hub connects to (default: the node
    names only). ``resolve`` (optional, e.g. a DNS lookup returning addresses) lets an IP
    literal match when one of the node's accepted names resolves to it.

    Never raises for bad input from the job: a malformed host or node list gives a
    refused :class:`HostMatch` whose ``reason`` names the host and the job's nodes.
    """
    addressing = addressing or NodeAddressing()
    try:
        canonical = check_host(host)
    except HostError as exc:
        return HostMatch(False, str(host)[:80], None, f"refused host: {exc}")
    try:
        names = expand_hostlist(nodes) if isinstance(nodes, str) else [
            n for n in (str(x).strip() for x in nodes) if n and n not in NO_NODES
        ]
    except ValueError as exc:
        return HostMatch(False, canonical, None,
                         f"cannot check host {canonical!r}: the job's node list is unusable ({exc})")
    if not names:
        return HostMatch(
            False, canonical, None,
            f"host {canonical!r} refused: the job has no allocated nodes yet (FirecREST "
            "reports none), so no host can be accepted",
        )
    node = addressing.node_for(canonical, names)
    if node is None and resolve is not None and _check_ip(canonical) is not None:
        node = _resolved_node(canonical, names, addressing, resolve)
    if node is not None:
        return HostMatch(True, canonical, node, "")
    return HostMatch(
        False, canonical, None,
        f"host {canonical!r} is not one of the job's allocated nodes "
        f"({_nodes_text(names)}); accepted: {addressing.describe()}",
    )


def _resolved_node(ip: str, names: Sequence[str], addressing: NodeAddressing,
                   resolve: Callable[[str], Iterable[str]]) -> str | None:
    """The node one of whose accepted names ``resolve``s to the address ``ip``."""
    for node in names:
        candidates = ([node] if addressing.accept_node_name else []) + [
            t.format(node=node) for t in addressing.templates
        ]
        for candidate in candidates:
            try:
                addresses = {_check_ip(a) for a in resolve(candidate)}
            except OSError:
                continue
            if ip in addresses:
                return node
    return None
