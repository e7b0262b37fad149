"""tests.support.require: a missing host service skips a test, or fails it when required."""

from __future__ import annotations

import pytest

from tests.support.require import REQUIRE_ENV, SERVICES, required_services, unavailable

pytest_plugins = ["pytester"]

#: One test per service, each finding its service missing.
_MISSING = '''
from tests.support.require import unavailable

def test_slurm():
    unavailable("slurm", "no cluster here")

def test_docker():
    unavailable("docker", "no engine here")

def test_tools():
    unavailable("tools", "no openssl here")
'''


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
         require: str | None) -> pytest.RunResult:
    if require is None:
        monkeypatch.delenv(REQUIRE_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_ENV, require)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_missing=_MISSING)
    return pytester.runpytest("-rsf", "-vv", "-p", "no:cacheprovider")


def test_without_require_every_missing_service_skips(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, None)
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*SKIPPED*no cluster here*", "*SKIPPED*no engine here*",
                                 "*SKIPPED*no openssl here*"])


def test_required_services_fail_and_the_others_still_skip(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, "slurm, Docker")
    result.assert_outcomes(failed=2, skipped=1)
    result.stdout.fnmatch_lines([
        f"FAILED*test_slurm*no cluster here*{REQUIRE_ENV} requires 'slurm'*",
        f"FAILED*test_docker*no engine here*{REQUIRE_ENV} requires 'docker'*",
    ])
    result.stdout.fnmatch_lines(["*SKIPPED*no openssl here*"])


def test_all_requires_every_service(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(pytester, monkeypatch, "all").assert_outcomes(failed=3)


def test_all_means_every_service_but_gpu() -> None:
    assert required_services({REQUIRE_ENV: "all"}) == SERVICES
    assert "gpu" not in SERVICES
    assert required_services({}) == frozenset()
    assert required_services({REQUIRE_ENV: " slurm,,shared "}) == {"slurm", "shared"}


def test_unknown_names_are_errors_not_silent_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"unknown services \['dokcer'\]"):
        required_services({REQUIRE_ENV: "slurm,dokcer"})
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(ValueError, match="unknown service 'gpu'"):
        unavailable("gpu", "GPU checks stay skipped through pytest.skip, not through here")
