"""Skip, or fail, a test whose host service is missing.

On a laptop a test that needs the local Slurm cluster, a Docker engine or the shared
API document skips with the reason when the service is not there. In CI the same gap
must fail: CI sets ``F7T_REQUIRE`` to the services it provides (comma-separated, e.g.
``slurm,docker,shared``; ``all`` means every service except ``gpu``), and a test that
finds one of those missing fails with the same reason instead of skipping.

GPU checks never go through here: no CI host of this project has a GPU, so they stay
skipped with their reason.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: The environment variable listing the services whose absence is a failure.
REQUIRE_ENV = "F7T_REQUIRE"

#: The host services a test may need. ``gpu`` is deliberately absent.
SERVICES = frozenset(
    {
        "slurm",  # the local cluster of scripts/slurm-up.sh and its job user
        "docker",  # a usable Docker engine and the images it builds
        "shared",  # ../shared/firecrest-v2-openapi.json next to the repository
        "root",  # running as root (to act as other users: runuser, setpriv)
        "tools",  # host commands the tests call: openssl, setpriv, uv, python3-venv
    }
)


def required_services(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The services named in ``F7T_REQUIRE`` (``all`` expands to :data:`SERVICES`).

    An unknown name is an error: a typo must not quietly turn a required service into
    an optional one.
    """
    value = (os.environ if environ is None else environ).get(REQUIRE_ENV, "")
    names = {part.strip().lower() for part in value.split(",") if part.strip()}
    if "all" in names:
        names = (names - {"all"}) | SERVICES
    unknown = names - SERVICES
    if unknown:
        raise ValueError(
            f"{REQUIRE_ENV}={value!r} names unknown services {sorted(unknown)}: "
            f"use some of {sorted(SERVICES)} or 'all'"
        )
    return frozenset(names)


def unavailable(service: str, reason: str) -> NoReturn:
    """End the current test because ``service`` is missing: fail when CI requires the
    service (see :data:`REQUIRE_ENV`), skip with ``reason`` otherwise."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}: use one of {sorted(SERVICES)}")
    if service in required_services():
        pytest.fail(f"{reason} [{REQUIRE_ENV} requires {service!r}]", pytrace=False)
    pytest.skip(reason)
