"""Encode and decode the job environment carried in ``FIRECRESTSPAWNER_ENV``.

FirecREST passes a job's environment to ``sbatch --export=ALL,K=v,...``, which cuts
values at commas and drops everything after a lone quote. The spawner therefore sends
one variable whose value is base64url (RFC 4648 section 5, no padding) of the UTF-8
JSON object ``{"NAME": "value", ...}``; its alphabet ``[A-Za-z0-9_-]`` survives
``--export`` untouched. See ``docs/contracts.md`` section 1.

This module has no dependencies outside the standard library: the compute-side
launcher imports :func:`decode_env` from it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

#: The name of the single variable that carries the encoded environment.
ENV_VAR = "FIRECRESTSPAWNER_ENV"

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ALPHABET_RE = re.compile(r"[A-Za-z0-9_-]*\Z")


def _check_pair(name: object, value: object) -> None:
    """Raise ValueError unless ``name`` is a valid variable name and ``value`` a string."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{ENV_VAR}: {name!r} is not a valid environment variable name "
            "(use letters, digits and '_', not starting with a digit)"
        )
    if not isinstance(value, str):
        raise ValueError(  # noqa: TRY004 (contract: ValueError)
            f"{ENV_VAR}: the value of {name} is {type(value).__name__}, not a string; "
            "convert it with str() before encoding"
        )
    if "\x00" in value:
        raise ValueError(
            f"{ENV_VAR}: the value of {name} contains a NUL byte, which no process "
            "environment can hold; remove it"
        )


def encode_env(env: dict[str, str]) -> str:
    """Return the ``FIRECRESTSPAWNER_ENV`` value for ``env``.

    Raises ValueError when a name is not a valid environment variable name or a
    value is not a string (or contains a NUL byte).
    """
    if not isinstance(env, dict):
        raise ValueError(f"{ENV_VAR}: expected a dict of str to str, got {type(env).__name__}")  # noqa: TRY004 (contract: ValueError)
    for name, value in env.items():
        _check_pair(name, value)
    raw = json.dumps(env, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_env(encoded: str) -> dict[str, str]:
    """Decode a ``FIRECRESTSPAWNER_ENV`` value back into a dict of str to str.

    Raises ValueError with the cause when ``encoded`` is not unpadded base64url of a
    UTF-8 JSON object of valid variable names to strings.
    """
    if not isinstance(encoded, str):
        raise ValueError(f"{ENV_VAR}: expected a string, got {type(encoded).__name__}")  # noqa: TRY004 (contract: ValueError)
    text = encoded.strip()
    if not _ALPHABET_RE.match(text):
        raise ValueError(
            f"{ENV_VAR} is not base64url: only A-Z, a-z, 0-9, '-' and '_' are allowed "
            "(was the value cut or altered on its way to the job?)"
        )
    if len(text) % 4 == 1:
        raise ValueError(
            f"{ENV_VAR} has an impossible base64 length ({len(text)}); the value was truncated"
        )
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{ENV_VAR} is not valid base64url: {exc}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{ENV_VAR} does not decode to UTF-8 JSON ({exc}); it must be produced by "
            "firecrestspawner.compute.envcodec.encode_env"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(  # noqa: TRY004 (contract: ValueError)
            f"{ENV_VAR} decodes to JSON {type(data).__name__}, expected an object "
            '{"NAME": "value", ...}'
        )
    for name, value in data.items():
        _check_pair(name, value)
    return data
