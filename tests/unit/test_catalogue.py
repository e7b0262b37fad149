"""catalogue.toml -> typed targets: the real catalogue and malformed ones."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from f7tbuild.build import build_args
from f7tbuild.catalogue import CatalogueError, load, parse
from f7tbuild.tags import Revision

REV = Revision(sha="0123456789abcdef" * 2 + "01234567", created="2026-01-01T00:00:00Z", source="")


def minimal() -> dict[str, Any]:
    return {
        "schema": 1,
        "registry": "registry.example/f7t",
        "stacks": {"s": {"description": "x", "jupyterhub": "6.1.1", "jupyterlab": "4.6.6"}},
        "standins": {"node": {"suite": "trixie"}, "ngc": {"suite": "trixie"}},
        "images": {
            "chp": {
                "dockerfile": "images/chp/Dockerfile",
                "base": "node:24-alpine3.22",
                "standin": "node",
                "versions": {"configurable-http-proxy": "5.3.0"},
                "version_args": {"configurable-http-proxy": "CHP_VERSION"},
            },
            "singleuser": {
                "dockerfile": "images/singleuser/Dockerfile",
                "standin": "ngc",
                "stack_packages": ["jupyterlab"],
                "variants": {"a": {"base": "nvcr.io/x:1", "stack": "s"}},
            },
        },
    }


def test_repository_catalogue_loads_every_image() -> None:
    cat = load()
    names = [t.name for t in cat.targets]
    assert names[:2] == ["chp", "hub"]
    assert {"singleuser-pytorch-24.07", "singleuser-pytorch-25.10"} <= set(names)
    assert set(cat.standins) == {"node", "python", "ngc", "uenv"}
    assert cat.standin("uenv").suite == "bookworm"
    assert cat.standin("node").ref == "f7t4jhub/standin-node:latest"
    chp = cat.select(["chp"])[0]
    assert chp.versions["configurable-http-proxy"] == "5.3.0"
    assert chp.base == "node:24-alpine3.22"


def test_select_by_family_variant_and_all() -> None:
    cat = load()
    assert [t.variant for t in cat.select(["singleuser"])] == ["pytorch-24.07", "pytorch-25.10"]
    assert [t.name for t in cat.select(["pytorch-25.10"])] == ["singleuser-pytorch-25.10"]
    assert len(cat.select(["all"])) == len(cat.targets)
    with pytest.raises(CatalogueError, match="no image or variant named 'nope'; known: all"):
        cat.select(["nope"])


def test_family_then_variant_selects_only_that_variant() -> None:
    cat = load()
    # nox -s build-singleuser -- pytorch-25.10  ->  build singleuser pytorch-25.10
    assert [t.name for t in cat.select(["singleuser", "pytorch-25.10"])] == [
        "singleuser-pytorch-25.10"
    ]
    with pytest.raises(CatalogueError, match="no image or variant named 'nope'"):
        cat.select(["singleuser", "nope"])
    # Several families: all of them.
    assert [t.name for t in cat.select(["chp", "hub"])] == ["chp", "hub"]
    # A family, then another family's variant: both (not an error, whatever the order).
    assert [t.name for t in cat.select(["hub", "pytorch-25.10"])] == [
        "hub", "singleuser-pytorch-25.10"]
    assert [t.name for t in cat.select(["pytorch-25.10", "hub"])] == [
        "singleuser-pytorch-25.10", "hub"]


def test_adding_a_variant_is_one_entry() -> None:
    data = minimal()
    data["images"]["singleuser"]["variants"]["b"] = {"base": "nvcr.io/x:2", "stack": "s"}
    cat = parse(data)
    assert [t.name for t in cat.select(["singleuser"])] == ["singleuser-a", "singleuser-b"]


def test_build_args_follow_the_contract() -> None:
    cat = parse(minimal())
    chp, su = cat.targets
    args = build_args(
        chp, "f7t4jhub/standin-node:latest", True, "http://127.0.0.1:47291/ca.pem", REV
    )
    assert args["CHP_VERSION"] == "5.3.0"
    assert args["BASE_IMAGE"] == "f7t4jhub/standin-node:latest"
    assert args["BASE_REF"] == "node:24-alpine3.22"
    assert args["STANDIN"] == "true"
    assert args["CA_URL"] == "http://127.0.0.1:47291/ca.pem"
    assert args["OCI_REVISION"] == REV.sha
    assert args["OCI_VERSION"] == "5.3.0"  # the component version; the standin label says the rest
    assert "STACK_REQUIREMENTS" not in args
    su_args = build_args(su, "nvcr.io/x:1", False, "", REV)
    assert su_args["STACK_REQUIREMENTS"] == "jupyterlab==4.6.6"
    assert su_args["STANDIN"] == "false"
    assert "UV_COMPILE_BYTECODE_TIMEOUT" not in su_args  # uv's own default natively
    emulated = build_args(su, "f7t4jhub/arm64/standin-ngc:latest", True, "", REV, emulated=True)
    assert emulated["UV_COMPILE_BYTECODE_TIMEOUT"] == "0"


def test_repository_singleuser_stack_requirements() -> None:
    su = load().select(["pytorch-25.10"])[0]
    stack = load().stacks["current"]
    assert su.stack_requirements() == (
        f"jupyterhub=={stack['jupyterhub']} jupyterlab=={stack['jupyterlab']}"
        f" pyfirecrest=={stack['pyfirecrest']}"
    )


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema=2), "expected schema = 1"),
        (lambda d: d["images"]["chp"].pop("base"), r"\[images.chp\]: missing string key 'base'"),
        (lambda d: d["images"]["chp"].update(standin="gpu"), "standin 'gpu' has no"),
        (
            lambda d: d["images"]["singleuser"]["variants"]["a"].update(stack="nope"),
            "stack 'nope' is not defined",
        ),
        (
            lambda d: d["images"]["chp"]["version_args"].update(other="X"),
            "version_args names 'other'",
        ),
        (lambda d: d["standins"]["node"].pop("suite"), r"\[standins.node\]: missing"),
    ],
)
def test_malformed_catalogue_names_the_problem(mutate, message: str) -> None:
    data = copy.deepcopy(minimal())
    mutate(data)
    with pytest.raises(CatalogueError, match=message):
        parse(data)


def test_stack_packages_must_exist_in_the_stack() -> None:
    data = minimal()
    data["images"]["singleuser"]["stack_packages"] = ["jupyterlab", "numpy"]
    su = parse(data).targets[1]
    with pytest.raises(CatalogueError, match=r"stack_packages \['numpy'\]"):
        su.stack_requirements()
