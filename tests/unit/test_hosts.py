"""The shared host validator: syntax, Slurm host lists, a host against the job's nodes."""

from __future__ import annotations

import pytest

from firecrestspawner.compute.hosts import (
    MAX_HOSTLIST_NAMES,
    HostError,
    NodeAddressing,
    check_host,
    expand_hostlist,
    match_allocated,
)


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("nid001", "nid001"),
        ("NID001.Cluster.Example", "nid001.cluster.example"),
        ("nid001.cluster.example.", "nid001.cluster.example"),
        ("nid001-hsn0", "nid001-hsn0"),
        ("10.1.2.3", "10.1.2.3"),
        ("::1", "::1"),
        ("[fe80::1]", "fe80::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("a" * 63 + ".b", "a" * 63 + ".b"),
        ("x1.2y", "x1.2y"),
    ],
)
def test_accepted_hosts(host: str, canonical: str) -> None:
    assert check_host(host) == canonical


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("", "empty"),
        ("user@nid001", "'@'"),
        ("nid001:8080", "':'"),
        ("169.254.169.254:80", "':'"),
        ("nid001/x", "'/'"),
        ("nid001?x", "'?'"),
        ("nid001#x", "'#'"),
        ("nid%30", "'%'"),
        ("[fe80::1%eth0]", "'%'"),
        ("bad host", "a space"),
        ("nid001\n", "'\\n'"),
        ("nid\u0661", "U+0661"),  # Arabic-Indic digit one
        ("n\u200bid001", "U+200B"),  # zero-width space
        ("\uff4eid001", "U+FF4E"),  # fullwidth n
        ("127.1", "dotted-quad"),
        ("0x7f.0.0.1", "dotted-quad"),
        ("2130706433", "dotted-quad"),
        ("010.0.0.1", "dotted-quad"),
        ("256.0.0.1", "dotted-quad"),
        ("-nid001", "invalid label"),
        ("nid001-", "invalid label"),
        ("nid..x", "invalid label"),
        ("nid.001", "dotted-quad"),
        ("nid_001", "invalid label"),
        ("a" * 64 + ".b", "invalid label"),
        ("[10.0.0.1]", "IPv6"),
        ("1::2::3", "IPv6"),
        ("a." * 126 + "bbb", "longer than 253"),
        ("x" * 300, "300 characters"),
    ],
)
def test_refused_hosts_say_why(host: str, why: str) -> None:
    with pytest.raises(HostError) as info:
        check_host(host)
    assert why in str(info.value)


def test_refused_host_message_is_bounded_and_escaped() -> None:
    with pytest.raises(HostError) as info:
        check_host("n\u200b" + "x" * 200)
    message = str(info.value)
    assert len(message) < 300 and "\u200b" not in message and "\\u200b" in message


def test_non_string_host() -> None:
    with pytest.raises(HostError, match="must be a string, got int"):
        check_host(80)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("nid001", ["nid001"]),
        ("nid[001-003],nid005", ["nid001", "nid002", "nid003", "nid005"]),
        ("nid[001-002,7]", ["nid001", "nid002", "nid7"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("n[08-10]", ["n08", "n09", "n10"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("a,b,a", ["a", "b"]),
        ("x[1-2]-hsn,y", ["x1-hsn", "x2-hsn", "y"]),
        ("None assigned", []),
        ("", []),
        ("  ", []),
    ],
)
def test_expand_hostlist(text: str, names: list[str]) -> None:
    assert expand_hostlist(text) == names


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("nid[001-003", "never closed"),
        ("nid001]", "without '['"),
        ("nid[[1]]", "nested"),
        ("nid[3-1]", "backwards"),
        ("nid[a-b]", "not a number"),
        ("nid[]", "not a number"),
        (f"n[0-{MAX_HOSTLIST_NAMES}]", "more than"),
        ("a[0-999]b[0-999]", "more than"),
    ],
)
def test_bad_hostlists(text: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        expand_hostlist(text)
    assert why in str(info.value)


def test_match_by_node_name_from_a_slurm_list() -> None:
    verdict = match_allocated("NID002", "nid[001-003],nid005")
    assert verdict and verdict.node == "nid002" and verdict.host == "nid002"


def test_metadata_address_is_refused_with_the_nodes_named() -> None:
    verdict = match_allocated("169.254.169.254", "nid[001-002]")
    assert not verdict
    assert "169.254.169.254" in verdict.reason and "nid001, nid002" in verdict.reason


def test_syntactically_bad_host_is_refused_not_raised() -> None:
    verdict = match_allocated("nid001:80", ["nid001"])
    assert not verdict and "refused host" in verdict.reason and "':'" in verdict.reason


def test_no_nodes_yet() -> None:
    verdict = match_allocated("nid001", "None assigned")
    assert not verdict and "no allocated nodes" in verdict.reason


def test_unusable_node_list() -> None:
    verdict = match_allocated("nid001", "nid[001")
    assert not verdict and "node list is unusable" in verdict.reason


def test_long_node_lists_are_shortened_in_the_reason() -> None:
    verdict = match_allocated("elsewhere", "nid[001-100]")
    assert "and 92 more" in verdict.reason


def test_a_fqdn_under_another_domain_is_not_the_node() -> None:
    # "nid001.attacker.example" would resolve wherever its owner likes
    assert not match_allocated("nid001.attacker.example", ["nid001"])


def test_templates() -> None:
    site = NodeAddressing(templates=("{node}.cluster.example", "{node}-hsn0"))
    assert match_allocated("nid001.cluster.example", "nid[001-002]", site).node == "nid001"
    assert match_allocated("nid002-hsn0", "nid[001-002]", site).node == "nid002"
    assert match_allocated("nid002", "nid[001-002]", site)  # the node name too, by default
    assert not match_allocated("nid003.cluster.example", "nid[001-002]", site)
    only = NodeAddressing(templates=("{node}.cluster.example",), accept_node_name=False)
    refused = match_allocated("nid002", "nid[001-002]", only)
    assert not refused and "'{node}.cluster.example'" in refused.reason


def test_a_single_template_string_is_accepted() -> None:
    site = NodeAddressing(templates="{node}.x")  # type: ignore[arg-type]
    assert site.templates == ("{node}.x",)


def test_pattern() -> None:
    site = NodeAddressing(pattern=r"(?P<node>nid\d+)\.hsn\.cluster\.example")
    assert match_allocated("NID001.hsn.cluster.example", ["nid001"], site).node == "nid001"
    assert not match_allocated("nid009.hsn.cluster.example", ["nid001"], site)
    # fullmatch: a suffix cannot be appended
    assert not match_allocated("nid001.hsn.cluster.example.evil", ["nid001"], site)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"templates": ("cluster.example",)}, "does not contain"),
        ({"templates": ("{node}.{zone}",)}, "not a valid format string"),
        ({"pattern": "(nid"}, "not a regular expression"),
        ({"pattern": r"nid\d+"}, "no named group 'node'"),
        ({"accept_node_name": False}, "accepts nothing"),
    ],
)
def test_bad_addressing_is_a_config_error(kwargs: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        NodeAddressing(**kwargs)  # type: ignore[arg-type]


def test_resolver_lets_an_address_of_a_node_match() -> None:
    table = {"nid001": ["10.0.0.1"], "nid002": ["10.0.0.2", "fd00::2"]}

    def resolve(name: str) -> list[str]:
        if name not in table:
            raise OSError(f"no such host {name}")
        return table[name]

    assert match_allocated("10.0.0.2", "nid[001-002]", resolve=resolve).node == "nid002"
    assert match_allocated("fd00:0::2", "nid[001-002]", resolve=resolve).node == "nid002"
    assert not match_allocated("10.0.0.3", "nid[001-002]", resolve=resolve)
    # without a resolver an address never matches a name
    assert not match_allocated("10.0.0.1", "nid001")
