"""Labels and tags of every image (run by ``f7tbuild build`` after each image's own checks).

The labels say where the image comes from (source, revision, created), what it is
(version, the versions of its stack) and what it was built on (base name and digest, or
"standin"); the tags computed from the catalogue and those labels all name this image.
The pinned versions in the labels are the versions really installed in the image.
"""

from __future__ import annotations

import datetime
import re

import pytest

from f7tbuild import engine, manifest
from f7tbuild.catalogue import load
from f7tbuild.labels import OCI, STANDIN_DIGEST, VERSIONS_PREFIX, pinned_versions
from f7tbuild.platforms import foreign_arch
from f7tbuild.standin import STANDIN_LABEL
from f7tbuild.tags import Revision, component, local_refs

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def labels(image_ref: str) -> dict[str, str]:
    return engine.labels(image_ref)


@pytest.fixture(scope="module")
def target(labels: dict[str, str], image_target: str | None):
    name = image_target or labels.get("org.f7t4jhub.image")
    assert name, "no --image-target and no org.f7t4jhub.image label: cannot find the catalogue entry"
    hits = [t for t in load().targets if t.name == name]
    assert hits, f"{name} is not in catalogue.toml"
    return hits[0]


def test_oci_labels_name_source_revision_version_created(labels: dict[str, str], target) -> None:
    cat = load()
    assert labels[OCI + "source"] == cat.source
    assert re.fullmatch(r"[0-9a-f]{40}", labels[OCI + "revision"]), labels[OCI + "revision"]
    assert labels[OCI + "version"] == component(target)
    created = datetime.datetime.fromisoformat(labels[OCI + "created"].replace("Z", "+00:00"))
    assert created.utcoffset() == datetime.timedelta(0)
    assert labels["org.f7t4jhub.image"] == target.name


def test_base_name_and_digest(labels: dict[str, str], target, base_ref: str | None) -> None:
    standin = labels[STANDIN_LABEL] == "true"
    assert labels["org.f7t4jhub.base"] == target.base
    if base_ref:
        assert labels[OCI + "base.name"] == base_ref
    if standin:
        assert labels[OCI + "base.digest"] == STANDIN_DIGEST
        assert engine.labels(labels[OCI + "base.name"]).get(STANDIN_LABEL) == "true"
    else:
        digest = labels[OCI + "base.digest"]
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
        assert engine.repo_digest(labels[OCI + "base.name"]) == digest


def test_every_computed_tag_names_this_image(image_ref: str, labels: dict[str, str], target) -> None:
    standin = labels[STANDIN_LABEL] == "true"
    rev = Revision(labels[OCI + "revision"], labels[OCI + "created"], labels[OCI + "source"])
    # An image built for a foreign architecture (emulated) lives under f7t4jhub/<arch>/.
    arch = foreign_arch(engine.inspect(image_ref).get("Architecture"))
    refs = local_refs(target, rev, standin, arch)
    assert image_ref in refs
    want = engine.image_id(image_ref)
    wrong = {r: (engine.image_id(r) if engine.image_exists(r) else None) for r in refs}
    assert {r: i for r, i in wrong.items() if i != want} == {}
    assert all(r.endswith("-standin") == standin for r in refs)


def test_version_labels_are_what_is_installed(
    image_ref: str, labels: dict[str, str], target
) -> None:
    expected = pinned_versions(target)
    got = {k[len(VERSIONS_PREFIX) :]: v for k, v in labels.items() if k.startswith(VERSIONS_PREFIX)}
    assert got == expected
    if target.stack_name:
        assert labels["org.f7t4jhub.stack"] == target.stack_name
    installed = manifest.versions(manifest.collect(image_ref))
    for name, version in expected.items():
        assert version in installed.get(manifest.normalise(name), set()), (
            f"label says {name} {version}; the image has {sorted(installed.get(name, []))}"
        )
