"""Job names identify hub, user and server (firecrestspawner.jobnames)."""

from __future__ import annotations

import pytest

from firecrestspawner.jobnames import (
    DEFAULT_JOB_NAME,
    default_hub_id,
    hub_id_problem,
    job_name_problem,
)


@pytest.mark.parametrize(("hub", "want"), [
    ({"public_url": "https://jupyter.example.org/"}, "jupyter.example.org"),
    ({"public_url": "https://my-hub.example.org:8443/lab/", "base_url": "/x/"},
     "my_hub.example.org_lab"),
    ({"base_url": "/centre/jupyter/"}, "centre_jupyter"),
    ({"base_url": "/"}, "hub"),
    ({}, "hub"),
])
def test_default_hub_id_comes_from_the_hub_configuration(hub: dict[str, str], want: str) -> None:
    assert default_hub_id(hub) == want
    assert hub_id_problem(want) is None


def test_a_long_hub_url_gives_a_bounded_stable_id() -> None:
    url = "https://" + "very-long-name." * 6 + "example.org/"
    first = default_hub_id({"public_url": url})
    assert len(first) <= 24 and hub_id_problem(first) is None
    assert first == default_hub_id({"public_url": url})  # stable
    assert first != default_hub_id({"public_url": url.replace("org", "com")})


def test_hub_ids_with_a_separator_are_refused() -> None:
    # '-' would make hub "a-b" user "c" and hub "a" user "b-c" the same job name
    assert "'-'" in (hub_id_problem("a-b") or "")
    assert "is empty" in (hub_id_problem("") or "")


def test_job_names_must_name_hub_user_and_server() -> None:
    assert job_name_problem(DEFAULT_JOB_NAME) is None
    assert "{hub_id}" in (job_name_problem("jupyterhub-{username}-{servername}") or "")
