"""``sbatch --export='ALL,K=v,...'`` mangling of the job's env, as measured."""

from __future__ import annotations

import pytest

from firecrest_double import apply_export

LOGIN = {"HOME": "/home/alice", "PATH": "/usr/bin"}


@pytest.mark.parametrize("value, seen", [
    ("a,b,c", "a"),
    ('["x:y!s=a/","u:v"]', '["x:y!s=a/"'),
    ("with spaces; $HOME `date` \\ \"quoted\" ünï\nline2", "with spaces; $HOME `date` \\ \"quoted\" ünï\nline2"),
])
def test_values(value: str, seen: str) -> None:
    env = apply_export({"BEFORE": "1", "V": value, "AFTER": "2"}, LOGIN)
    assert env["V"] == seen
    assert env["BEFORE"] == "1" and env["AFTER"] == "2"


def test_lone_single_quote_loses_every_later_variable() -> None:
    env = apply_export({"BEFORE": "1", "V": "it's", "AFTER": "2", "LAST": "3"}, LOGIN)
    assert env["BEFORE"] == "1"
    assert "AFTER" not in env and "LAST" not in env
    assert env["V"] == "it's,AFTER=2,LAST=3"


def test_all_inherits_login_environment_and_env_overrides() -> None:
    env = apply_export({"PATH": "/opt/bin"}, LOGIN)
    assert env == {"HOME": "/home/alice", "PATH": "/opt/bin"}


def test_comma_tail_token_does_not_create_variables() -> None:
    env = apply_export({"V": "a,NEW=x"}, LOGIN)
    # the text after the comma is a separate --export token: sbatch reads it as NEW=x
    assert env["V"] == "a" and env["NEW"] == "x"


def test_list_form_and_none() -> None:
    assert apply_export(["A=1", "B=2"], {})["B"] == "2"
    assert apply_export(None, LOGIN) == LOGIN
