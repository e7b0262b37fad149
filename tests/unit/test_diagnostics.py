"""Redaction of job output, and the live form's reading of FirecREST's answers."""

from __future__ import annotations

import secrets

from firecrestspawner.diagnostics import REDACTED, last_lines, redact, secret_values
from firecrestspawner.liveform import ClusterView, Partition, check_live, offer, parse_partitions
from firecrestspawner.options import JobOptions, Limits, OptionError


def test_known_secrets_and_token_lookalikes_are_redacted() -> None:
    api_token = secrets.token_hex(16)
    env = {"JUPYTERHUB_API_TOKEN": api_token, "JUPYTERHUB_USER": "alice",
           "JUPYTERHUB_OAUTH_CLIENT_SECRET": "s3cr3t-value", "FIRECRESTSPAWNER_ENV": "eyJhIjoiYiJ9"}
    hidden = secret_values(env)
    assert "alice" not in hidden and api_token in hidden
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ"
    text = (f"token {api_token}\nclient s3cr3t-value\nenv eyJhIjoiYiJ9\nid_token: {jwt}\n"
            "Authorization: Bearer abcdefghijklmnop\n?token=QWERTYUIOP12&user=alice\n"
            f"key {secrets.token_urlsafe(40)}\nuser alice on nid001, exit 1")
    out = redact(text, hidden)
    for secret in (api_token, "s3cr3t-value", "eyJhIjoiYiJ9", jwt, "abcdefghijklmnop",
                   "QWERTYUIOP12"):
        assert secret not in out
    assert out.count(REDACTED) >= 7 and "user alice on nid001, exit 1" in out


def test_last_lines_are_bounded_and_printable() -> None:
    content = "".join(f"line {i}\n" for i in range(100)) + "x" * 1000 + "\n\x1b[31mred\n\n"
    lines = last_lines(content, 3)
    assert lines[0] == "line 99" and lines[1].endswith(" [...]") and len(lines[1]) < 320
    assert lines[2] == " [31mred"
    assert last_lines(content, 0) == []


def test_free_nodes_per_partition_and_site_bounds() -> None:
    partitions = [{"name": "normal", "partition": "UP", "totalNodes": 3},
                  {"name": "debug", "partition": ["DOWN"], "totalNodes": 3},
                  {"name": "gpu", "partition": "UP", "totalNodes": 1}]
    nodes = [{"name": "a", "state": ["IDLE"], "partitions": ["normal", "debug"]},
             {"name": "b", "state": ["IDLE", "DRAIN"], "partitions": ["normal", "debug"]},
             {"name": "c", "state": ["MIXED"], "partitions": ["normal", "debug", "gpu"]}]
    parsed = parse_partitions(partitions, nodes)
    assert parsed == (Partition("normal", "UP", 3, 1), Partition("debug", "DOWN", 3, 1),
                      Partition("gpu", "UP", 1, 0))
    assert parsed[0].describe() == "UP, 1 of 3 nodes free"
    view = ClusterView(parsed, ("course",), ("p1", "p2"), "p2")
    site = Limits(allowed_partitions=["debug", "normal", "other"], default_partition="debug",
                  allowed_accounts=["p1", "p3"])
    offered = offer(site, view)
    assert offered.allowed_partitions == ["normal", "debug"]  # FirecREST's order, site-bounded
    assert offered.default_partition == "normal"  # the site's default is DOWN
    assert (offered.allowed_accounts, offered.default_account) == (["p1"], "")
    assert offered.allowed_reservations == ["course"]
    check_live(JobOptions(partition="normal", account="p1"), site, view, "cl")
    for options, words in ((JobOptions(partition="debug"), "is DOWN on cl right now"),
                           (JobOptions(partition="other"), "is not offered on cl"),
                           (JobOptions(partition="normal", account="p3"), "not one of your")):
        try:
            check_live(options, site, view, "cl")
        except OptionError as exc:
            assert words in str(exc)
        else:
            raise AssertionError(f"{options} accepted")
    # nothing known from FirecREST: the site's lists as they are
    assert offer(site, ClusterView()) == site


def test_the_note_says_what_could_not_be_read() -> None:
    from firecrestspawner.liveform import note_html

    assert note_html(ClusterView(), "cl") == ""
    total = note_html(ClusterView(problems=("partitions: FirecREST answered 503",)), "cl")
    assert "could not tell what cl offers" in total and "this site&#x27;s" not in total
    assert "The choices below are this site's defaults" in total and "503" in total
    partial = note_html(ClusterView((Partition("normal", "UP"),), problems=(
        "nodes: FirecREST answered 501: <not implemented>",)), "cl")
    assert "could not tell all that cl offers" in partial
    assert "&lt;not implemented&gt;" in partial and "Where it could not answer" in partial
