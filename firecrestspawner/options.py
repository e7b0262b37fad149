"""User options for a FirecREST job: site limits, validation and the HTML form.

Every value a user sends ends up in a batch script, so each field is checked
against a strict pattern *and* the site's limits before anything is rendered;
anything else is refused with a :class:`OptionError` that names the field.

Refusals quote at most :data:`EXCERPT_CHARS` characters of the value, escaped (never the
whole value, never a raw control or non-ASCII character), say what is allowed, and point
out look-alike characters (fullwidth forms, non-ASCII digits, Cyrillic or Greek letters,
dashes, invisible characters) by code point and name, with the ASCII character they
resemble. Numbers outside their range are called out of range.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: Software environment kinds a job can run JupyterLab in.
ENVIRONMENTS = ("native", "uenv", "container")
#: Container engines: CSCS Container Engine (EDF, ``--environment=``), enroot/pyxis, or
#: rootless Podman run by the job user (``podman run``).
CONTAINER_ENGINES = ("edf", "pyxis", "podman")

# Strict patterns, one per field. Anchored with \Z (``$`` would accept a final newline).
_SLURM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_INT = re.compile(r"[+-]?[0-9]+\Z")
_TIME = re.compile(
    r"(?:(?P<minutes_only>[0-9]{1,6})"
    r"|(?:(?P<days>[0-9]{1,3})-)?(?P<hours>[0-9]{1,2})"
    r"(?::(?P<minutes>[0-9]{2})(?::(?P<seconds>[0-9]{2}))?)?)\Z"
)
_PATH = re.compile(r"/(?:[A-Za-z0-9_.+-]+/?)*\Z")
_UENV_IMAGE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.+-]*(?:/[A-Za-z0-9_.+-]+)*(?::[A-Za-z0-9_.+-]+)?(?:@[A-Za-z0-9_.+-]+)?\Z"
)
_UENV_VIEW = re.compile(r"[A-Za-z0-9_-]{1,64}(?:,[A-Za-z0-9_-]{1,64}){0,7}\Z")
# An image reference (registry/name:tag, enroot's registry#name) or an EDF name or path.
_CONTAINER_IMAGE = re.compile(r"[/A-Za-z0-9][A-Za-z0-9_.:/@#+-]{0,254}\Z")

#: Form/user_options keys this module understands.
FIELDS = (
    "partition",
    "account",
    "reservation",
    "nodes",
    "time",
    "gpus",
    "environment",
    "venv",
    "uenv",
    "uenv_view",
    "container_image",
)


#: At most this many characters of a refused value are quoted back.
EXCERPT_CHARS = 40
#: At most this many look-alike characters are described in one message.
MAX_LOOKALIKES = 3


class OptionError(ValueError):
    """A user option was refused. ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``value`` quoted for a message: escaped (ASCII only) and cut to ``limit`` characters.

    ``'abc'``; a longer value: ``'abcd...' (10000 characters)``. Non-ASCII and control
    characters appear as Python escapes (``\\uff11``, ``\\n``), so nothing invisible or
    misleading reaches the user's screen or a log line.
    """
    text = str(value)
    shown = ascii(text[:limit])
    if len(text) > limit:
        return f"{shown[:-1]}...{shown[-1]} ({len(text)} characters)"
    return shown


INVISIBLE = "(invisible)"
#: Greek and Cyrillic letter names and the Latin letter each resembles.
_LETTER_NAMES = {
    "ALPHA": "A", "BETA": "B", "EPSILON": "E", "ZETA": "Z", "ETA": "H", "IOTA": "I",
    "KAPPA": "K", "MU": "M", "NU": "N", "OMICRON": "O", "RHO": "P", "TAU": "T",
    "UPSILON": "Y", "CHI": "X", "IE": "E", "ES": "C", "ER": "P", "HA": "X", "EN": "H",
    "EM": "M", "KA": "K", "TE": "T", "VE": "B", "JE": "J", "DZE": "S",
    "BYELORUSSIAN-UKRAINIAN I": "I",
}


def _resembles(char: str) -> str | None:
    """The ASCII character ``char`` is likely mistaken for, or a short description."""
    folded = unicodedata.normalize("NFKC", char)
    if folded != char and folded.isascii() and folded.isprintable() and folded.strip():
        return repr(folded)
    if char.isdigit():  # Arabic-Indic, Devanagari, ... digits
        return repr(str(unicodedata.digit(char)))
    category = unicodedata.category(char)
    name = unicodedata.name(char, "")
    if category == "Cf" or category == "Zl" or category == "Zp":
        return INVISIBLE
    if category == "Zs" or char.isspace():
        return "a space"
    # CYRILLIC SMALL LETTER A, GREEK CAPITAL LETTER OMICRON, LATIN SMALL LETTER E WITH ACUTE
    match = re.fullmatch(r"([A-Z]+)(?: [A-Z-]+)*? (SMALL|CAPITAL) LETTER ([A-Z-]+(?: I)?)(?: .*)?",
                         name)
    if match:
        script, case, letter_name = match.groups()
        letter = _LETTER_NAMES.get(letter_name) if len(letter_name) > 1 else letter_name
        if script == "CYRILLIC" and letter_name == "U":
            letter = "Y"
        if letter:
            return repr(letter.lower() if case == "SMALL" else letter)
    if category == "Pd" or "HYPHEN" in name or "MINUS" in name or "DASH" in name:
        return "'-'"
    for word, ascii_char in (("FULL STOP", "."), ("COLON", ":"), ("SLASH", "/"),
                             ("SOLIDUS", "/"), ("COMMA", ","), ("UNDERSCORE", "_"),
                             ("LOW LINE", "_"), ("APOSTROPHE", "'"), ("QUOTATION", "'")):
        if word in name:
            return repr(ascii_char)
    return None


def lookalikes(value: str) -> str:
    """A sentence naming the non-ASCII characters of ``value`` (empty if there are none)."""
    found: list[str] = []
    count = 0
    for position, char in enumerate(value):
        if char.isascii():
            continue
        count += 1
        if len(found) < MAX_LOOKALIKES:
            name = unicodedata.name(char, "unnamed character")
            like = _resembles(char)
            hint = (", which is invisible" if like == INVISIBLE
                    else f", which looks like {like}" if like else "")
            found.append(f"U+{ord(char):04X} {name} at position {position + 1}{hint}")
    if not found:
        return ""
    more = f" (and {count - len(found)} more)" if count > len(found) else ""
    return (
        " It contains non-ASCII look-alike character(s): " + "; ".join(found) + more
        + ". Type it with plain ASCII characters."
    )


def parse_time(text: str, field_name: str = "time") -> int:
    """Parse a Slurm time limit into seconds.

    Accepted: ``M`` (minutes), ``H[H]``... with ``D-`` prefix: ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``, and ``HH:MM:SS``. (Slurm's ambiguous ``MM:SS`` is refused.)
    Raises :class:`OptionError` naming ``field_name`` otherwise.
    """
    value = str(text).strip()
    match = _TIME.match(value) if value.isascii() else None
    formats = "use minutes (90), HH:MM:SS (01:30:00) or D-HH:MM:SS (1-00:00:00)"
    if not match:
        raise OptionError(
            field_name, f"{excerpt(value)} is not a time limit; {formats}.{lookalikes(value)}"
        )
    if match["minutes_only"] is not None:
        return int(match["minutes_only"]) * 60
    days = int(match["days"] or 0)
    if match["days"] is None and (match["minutes"] is None or match["seconds"] is None):
        # "HH" alone or "HH:MM" without a day prefix means something else to Slurm.
        raise OptionError(field_name, f"{excerpt(value)} is ambiguous; {formats}")
    hours = int(match["hours"])
    minutes = int(match["minutes"] or 0)
    seconds = int(match["seconds"] or 0)
    if hours > 23 and match["days"] is not None or minutes > 59 or seconds > 59:
        raise OptionError(
            field_name, f"{excerpt(value)} has an out-of-range hour (0..23 after a day), "
            "minute (0..59) or second (0..59)"
        )
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_time(seconds: int) -> str:
    """Format seconds as Slurm's ``D-HH:MM:SS``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def _check_names(setting: str, values: list[str], pattern: re.Pattern[str]) -> None:
    for value in values:
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(
                f"FirecRESTSpawner.{setting}: {value!r} is not allowed; "
                f"it must match {pattern.pattern!r}"
            )


@dataclass(frozen=True)
class Limits:
    """What a site allows. Empty ``allowed_*`` lists mean "any value matching the
    field's strict pattern"; non-empty lists are the only accepted values."""

    allowed_partitions: list[str] = field(default_factory=list)
    default_partition: str = ""
    allowed_accounts: list[str] = field(default_factory=list)
    default_account: str = ""
    allowed_reservations: list[str] = field(default_factory=list)
    max_nodes: int = 1
    default_nodes: int = 1
    max_time: str = "24:00:00"
    default_time: str = "01:00:00"
    max_gpus: int = 0
    default_gpus: int = 0
    environments: list[str] = field(default_factory=lambda: ["native"])
    default_environment: str = "native"
    allowed_venvs: list[str] = field(default_factory=list)
    allowed_uenvs: dict[str, list[str]] = field(default_factory=dict)
    allowed_container_images: list[str] = field(default_factory=list)
    allow_custom_container_image: bool = False
    container_engine: str = "edf"

    def check(self) -> None:
        """Raise ValueError naming the FirecRESTSpawner setting that is inconsistent."""
        _check_names("allowed_partitions", self.allowed_partitions, _SLURM_NAME)
        _check_names("allowed_accounts", self.allowed_accounts, _SLURM_NAME)
        _check_names("allowed_reservations", self.allowed_reservations, _SLURM_NAME)
        _check_names("allowed_venvs", self.allowed_venvs, _PATH)
        _check_names("allowed_uenvs", list(self.allowed_uenvs), _UENV_IMAGE)
        for image, views in self.allowed_uenvs.items():
            if not isinstance(views, list) or not views:
                raise ValueError(
                    f"FirecRESTSpawner.allowed_uenvs: {image!r} needs a non-empty list "
                    'of views, e.g. {"prgenv-gnu/24.11:v1": ["default"]}'
                )
            _check_names("allowed_uenvs", views, _UENV_VIEW)
        _check_names("allowed_container_images", self.allowed_container_images, _CONTAINER_IMAGE)
        for name, default, allowed in (
            ("default_partition", self.default_partition, self.allowed_partitions),
            ("default_account", self.default_account, self.allowed_accounts),
        ):
            if default and not _SLURM_NAME.match(default):
                raise ValueError(f"FirecRESTSpawner.{name}: {default!r} is not a valid name")
            if default and allowed and default not in allowed:
                raise ValueError(
                    f"FirecRESTSpawner.{name}: {default!r} is not in "
                    f"allowed_{name.split('_', 1)[1]}s {allowed}"
                )
        if self.max_nodes < 1:
            raise ValueError("FirecRESTSpawner.max_nodes must be at least 1")
        if not 1 <= self.default_nodes <= self.max_nodes:
            raise ValueError(
                f"FirecRESTSpawner.default_nodes ({self.default_nodes}) must lie in "
                f"1..max_nodes ({self.max_nodes})"
            )
        if self.max_gpus < 0 or not 0 <= self.default_gpus <= self.max_gpus:
            raise ValueError(
                f"FirecRESTSpawner.default_gpus ({self.default_gpus}) must lie in "
                f"0..max_gpus ({self.max_gpus})"
            )
        try:
            max_seconds = parse_time(self.max_time, "FirecRESTSpawner.max_time")
            default_seconds = parse_time(self.default_time, "FirecRESTSpawner.default_time")
        except OptionError as exc:
            raise ValueError(str(exc)) from None
        if not 60 <= default_seconds <= max_seconds:
            raise ValueError(
                f"FirecRESTSpawner.default_time ({self.default_time}) must be at least one "
                f"minute and at most max_time ({self.max_time})"
            )
        if not self.environments or any(e not in ENVIRONMENTS for e in self.environments):
            raise ValueError(
                f"FirecRESTSpawner.environments: {self.environments!r} must be a non-empty "
                f"list drawn from {list(ENVIRONMENTS)}"
            )
        if self.default_environment not in self.environments:
            raise ValueError(
                f"FirecRESTSpawner.default_environment: {self.default_environment!r} is not "
                f"in environments {self.environments}"
            )
        if "uenv" in self.environments and not self.allowed_uenvs:
            raise ValueError(
                "FirecRESTSpawner.allowed_uenvs is empty but environments offers 'uenv': "
                "list the uenv images and their views, or drop 'uenv' from environments"
            )
        if (
            "container" in self.environments
            and not self.allowed_container_images
            and not self.allow_custom_container_image
        ):
            raise ValueError(
                "FirecRESTSpawner.allowed_container_images is empty but environments offers "
                "'container': list images, or set allow_custom_container_image = True"
            )
        if self.container_engine not in CONTAINER_ENGINES:
            raise ValueError(
                f"FirecRESTSpawner.container_engine: {self.container_engine!r} is not one of "
                f"{list(CONTAINER_ENGINES)}"
            )


@dataclass(frozen=True)
class JobOptions:
    """Validated job options (every value safe to render after shell quoting)."""

    partition: str = ""
    account: str = ""
    reservation: str = ""
    nodes: int = 1
    time_seconds: int = 3600
    gpus: int = 0
    environment: str = "native"
    venv: str = ""
    uenv: str = ""
    uenv_view: str = ""
    container_image: str = ""

    @property
    def time(self) -> str:
        """The time limit as Slurm's ``D-HH:MM:SS``."""
        return format_time(self.time_seconds)

    def as_user_options(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`validate_options` accepts again."""
        data = asdict(self)
        data["time"] = self.time
        del data["time_seconds"]
        return data


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name, "")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise OptionError(name, f"expected text, got {type(value).__name__}")
    text = str(value).strip()
    bad = next((i for i, c in enumerate(text) if ord(c) < 32 or 127 <= ord(c) < 160), None)
    if bad is not None:
        raise OptionError(
            name, f"{excerpt(text)} contains the control character {excerpt(text[bad])} at "
            f"position {bad + 1}; control characters (such as newlines) are not allowed"
        )
    return text


def _choose(name: str, value: str, allowed: list[str], default: str, pattern: re.Pattern[str],
            required: bool) -> str:
    value = value or default
    if not value:
        if required:
            raise OptionError(name, "a value is required")
        return ""
    if not value.isascii() or not pattern.match(value):
        raise OptionError(
            name, f"{excerpt(value)} is refused: {_allowed_text(pattern)}.{lookalikes(value)}"
        )
    if allowed and value not in allowed:
        raise OptionError(
            name, f"{excerpt(value)} is not offered here; choose one of {_choices(allowed)}"
        )
    return value


def _choices(allowed: list[str], limit: int = 10) -> str:
    shown = ", ".join(excerpt(a) for a in allowed[:limit])
    return shown + (f" (and {len(allowed) - limit} more)" if len(allowed) > limit else "")


def _allowed_text(pattern: re.Pattern[str]) -> str:
    """What ``pattern`` allows, in words."""
    if pattern is _SLURM_NAME:
        return ("use 1 to 64 ASCII letters, digits, '_', '.' or '-', starting with a letter "
                "or digit")
    if pattern is _CONTAINER_IMAGE:
        return ("use an image reference of up to 255 ASCII letters, digits, '_', '.', ':', "
                "'/', '@', '#', '+' or '-'")
    if pattern is _PATH:
        return "use an absolute path of ASCII letters, digits, '_', '.', '+', '-' and '/'"
    if pattern is _UENV_IMAGE:
        return "use a uenv image such as name/version:tag of ASCII letters, digits, '_.+-'"
    if pattern is _UENV_VIEW:
        return "use up to 8 comma-separated view names of ASCII letters, digits, '_' or '-'"
    return "only ASCII letters, digits and a few punctuation characters are allowed"


#: Longest digit string turned into an int (anything longer is out of range anyway).
_MAX_DIGITS = 18


def _integer(name: str, value: str, default: int, low: int, high: int) -> int:
    if value == "":
        return default
    if not value.isascii() or not _INT.match(value):
        raise OptionError(
            name, f"{excerpt(value)} is not a whole number; use ASCII digits {low}..{high}."
            f"{lookalikes(value)}"
        )
    digits = value.lstrip("+-").lstrip("0")
    if len(digits) > _MAX_DIGITS:
        raise OptionError(
            name, f"{excerpt(value)} is out of range: the allowed range is {low}..{high}"
        )
    number = int(value)
    if not low <= number <= high:
        raise OptionError(name, f"{number} is out of range: the allowed range is {low}..{high}")
    return number


def validate_options(raw: Mapping[str, Any], limits: Limits) -> JobOptions:
    """Check user options against the strict patterns and the site's ``limits``.

    ``raw`` is a user_options dict (values are strings or integers; missing keys
    take the site defaults). Raises :class:`OptionError` naming the first
    offending field; unknown keys are refused too.
    """
    unknown = sorted(str(key) for key in set(raw) - set(FIELDS))
    if unknown:
        key = unknown[0]
        shown = key if re.fullmatch(r"[A-Za-z0-9_]{1,40}", key) else excerpt(key)
        raise OptionError(shown, f"unknown option; known options are {list(FIELDS)}")
    text = {name: _text(raw, name) for name in FIELDS}

    partition = _choose("partition", text["partition"], limits.allowed_partitions,
                        limits.default_partition, _SLURM_NAME, required=False)
    account = _choose("account", text["account"], limits.allowed_accounts,
                      limits.default_account, _SLURM_NAME, required=False)
    reservation = _choose("reservation", text["reservation"], limits.allowed_reservations,
                          "", _SLURM_NAME, required=False)
    nodes = _integer("nodes", text["nodes"], limits.default_nodes, 1, limits.max_nodes)
    gpus = _integer("gpus", text["gpus"], limits.default_gpus, 0, limits.max_gpus)
    time_seconds = parse_time(text["time"] or limits.default_time)
    max_seconds = parse_time(limits.max_time)
    if not 60 <= time_seconds <= max_seconds:
        raise OptionError(
            "time", f"{format_time(time_seconds)} is out of range: the allowed range is "
            f"1 minute (0-00:01:00) to {format_time(max_seconds)}"
        )

    environment = text["environment"] or limits.default_environment
    if environment not in limits.environments:
        raise OptionError(
            "environment", f"{excerpt(environment)} is not offered here; choose one of "
            f"{_choices(limits.environments)}.{lookalikes(environment)}"
        )
    if text["venv"] and not limits.allowed_venvs:
        # An empty allowed_venvs means "no venv can be chosen": the launcher comes from the
        # job's PATH. This holds for every way in (form, REST API, stored options).
        raise OptionError(
            "venv", f"{excerpt(text['venv'])} is refused: this site offers no Python "
            "environment to choose (allowed_venvs is empty, the launcher comes from the "
            "job's PATH); leave venv empty"
        )
    venv = uenv = uenv_view = image = ""
    if environment == "native":
        venv = _choose("venv", text["venv"], limits.allowed_venvs,
                       limits.allowed_venvs[0] if limits.allowed_venvs else "", _PATH,
                       required=False)
        if venv and "/../" in f"{venv}/":
            raise OptionError("venv", f"{excerpt(venv)} must not contain '..'")
    elif environment == "uenv":
        images = list(limits.allowed_uenvs)
        uenv = _choose("uenv", text["uenv"], images, images[0], _UENV_IMAGE, required=True)
        views = limits.allowed_uenvs[uenv]
        uenv_view = _choose("uenv_view", text["uenv_view"], views, views[0], _UENV_VIEW,
                            required=True)
    else:
        allowed = [] if limits.allow_custom_container_image else limits.allowed_container_images
        default = limits.allowed_container_images[0] if limits.allowed_container_images else ""
        image = _choose("container_image", text["container_image"], allowed, default,
                        _CONTAINER_IMAGE, required=True)
        if ".." in image:
            raise OptionError("container_image", f"{excerpt(image)} must not contain '..'")
    return JobOptions(
        partition=partition,
        account=account,
        reservation=reservation,
        nodes=nodes,
        time_seconds=time_seconds,
        gpus=gpus,
        environment=environment,
        venv=venv,
        uenv=uenv,
        uenv_view=uenv_view,
        container_image=image,
    )


def form_to_options(formdata: Mapping[str, list[str]]) -> dict[str, str]:
    """Turn JupyterHub's form data (``{name: [value, ...]}``) into a flat dict.

    Fields not in :data:`FIELDS` (e.g. ``_xsrf``) are ignored; a field sent more
    than once is refused; empty values are dropped so that defaults apply.
    """
    options: dict[str, str] = {}
    for name in FIELDS:
        values = formdata.get(name) or []
        if len(values) > 1:
            raise OptionError(name, "was sent more than once")
        if values and values[0] != "":
            options[name] = values[0]
    return options


def _select(name: str, label: str, values: list[str], default: str,
            labels: Mapping[str, str] | None = None,
            disabled: Collection[str] = ()) -> str:
    labels = labels or {}
    items = "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == default else ""}'
        f'{" disabled" if v in disabled else ""}>'
        f"{html.escape(labels.get(v, v))}</option>"
        for v in values
    )
    return (
        f'<div class="form-group"><label for="fs-{name}">{html.escape(label)}</label>'
        f'<select class="form-control" name="{name}" id="fs-{name}">{items}</select></div>'
    )


def _input(name: str, label: str, value: str, kind: str = "text", extra: str = "") -> str:
    return (
        f'<div class="form-group"><label for="fs-{name}">{html.escape(label)}</label>'
        f'<input class="form-control" type="{kind}" name="{name}" id="fs-{name}" '
        f'value="{html.escape(value)}"{extra}></div>'
    )


def _name_field(name: str, label: str, allowed: list[str], default: str,
                labels: Mapping[str, Mapping[str, str]] | None = None,
                disabled: Mapping[str, Collection[str]] | None = None) -> str:
    if allowed:
        values = allowed if name != "reservation" else ["", *allowed]
        return _select(name, label, values, default, (labels or {}).get(name),
                       (disabled or {}).get(name, ()))
    return _input(name, label, default, extra=' pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}"')


def render_form(limits: Limits, labels: Mapping[str, Mapping[str, str]] | None = None,
                disabled: Mapping[str, Collection[str]] | None = None) -> str:
    """The HTML options form for ``limits`` (all values HTML-escaped). ``labels`` give a
    field's choices other texts (``{"partition": {"normal": "normal (UP, 3 free)"}}``),
    ``disabled`` choices are shown but cannot be picked."""
    parts = [
        _name_field("partition", "Partition", limits.allowed_partitions, limits.default_partition,
                    labels, disabled),
        _name_field("account", "Account", limits.allowed_accounts, limits.default_account,
                    labels, disabled),
        _name_field("reservation", "Reservation (optional)", limits.allowed_reservations, "",
                    labels, disabled),
        _input("nodes", f"Nodes (1-{limits.max_nodes})", str(limits.default_nodes), "number",
               f' min="1" max="{limits.max_nodes}"'),
        _input("time", f"Time limit (HH:MM:SS, at most {limits.max_time})", limits.default_time),
    ]
    if limits.max_gpus > 0:
        parts.append(_input("gpus", f"GPUs (0-{limits.max_gpus})", str(limits.default_gpus),
                            "number", f' min="0" max="{limits.max_gpus}"'))
    parts.append(_select("environment", "Software environment", limits.environments,
                         limits.default_environment))
    if "native" in limits.environments and limits.allowed_venvs:
        parts.append(_select("venv", "Python environment", limits.allowed_venvs,
                             limits.allowed_venvs[0]))
    if "uenv" in limits.environments:
        images = list(limits.allowed_uenvs)
        views = sorted({v for vs in limits.allowed_uenvs.values() for v in vs})
        parts.append(_select("uenv", "uenv image", images, images[0]))
        parts.append(_select("uenv_view", "uenv view", views,
                             limits.allowed_uenvs[images[0]][0]))
    if "container" in limits.environments:
        if limits.allow_custom_container_image:
            default = limits.allowed_container_images[0] if limits.allowed_container_images else ""
            parts.append(_input("container_image", "Container image", default,
                                extra=' list="fs-images"'))
            options = "".join(
                f'<option value="{html.escape(v)}">' for v in limits.allowed_container_images
            )
            parts.append(f'<datalist id="fs-images">{options}</datalist>')
        else:
            parts.append(_select("container_image", "Container image",
                                 limits.allowed_container_images,
                                 limits.allowed_container_images[0]))
    return "\n".join(parts)
