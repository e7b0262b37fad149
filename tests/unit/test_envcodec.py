"""The FIRECRESTSPAWNER_ENV codec: round trips, alphabet, and clear errors."""

from __future__ import annotations

import base64
import re

import pytest

from firecrestspawner.compute.envcodec import ENV_VAR, decode_env, encode_env


def test_round_trip_keeps_commas_quotes_and_unicode() -> None:
    env = {
        "JUPYTERHUB_API_TOKEN": "abc,def",
        "QUOTED": "it's \"quoted\", isn't it",
        "NEWLINE": "a\nb",
        "UNICODE": "Zürich ✓",
        "EMPTY": "",
    }
    encoded = encode_env(env)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", encoded), "must survive sbatch --export"
    assert "=" not in encoded
    assert decode_env(encoded) == env


def test_empty_env_round_trips() -> None:
    assert decode_env(encode_env({})) == {}


def test_encode_rejects_bad_names_and_values() -> None:
    with pytest.raises(ValueError, match="valid environment variable name"):
        encode_env({"1BAD": "x"})
    with pytest.raises(ValueError, match="not a string"):
        encode_env({"GOOD": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="NUL"):
        encode_env({"GOOD": "a\x00b"})


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc,def", "not base64url"),
        ("a+b/", "not base64url"),
        ("abcde", "truncated"),
        (base64.urlsafe_b64encode(b"[1,2]").decode().rstrip("="), "expected an object"),
        (base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="), "UTF-8 JSON"),
        (base64.urlsafe_b64encode(b'{"A": 1}').decode().rstrip("="), "not a string"),
        (base64.urlsafe_b64encode(b'{"A B": "x"}').decode().rstrip("="), "variable name"),
    ],
)
def test_decode_errors_name_the_cause(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        decode_env(value)
    assert ENV_VAR in str(info.value)


def test_decode_accepts_padding_free_and_surrounding_whitespace() -> None:
    encoded = encode_env({"A": "1"})
    assert decode_env(f" {encoded}\n") == {"A": "1"}
