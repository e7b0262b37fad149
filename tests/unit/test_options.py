"""User option validation: strict patterns, site limits, and the HTML form."""

from __future__ import annotations

import pytest

from firecrestspawner.options import (
    EXCERPT_CHARS,
    JobOptions,
    Limits,
    OptionError,
    excerpt,
    form_to_options,
    format_time,
    parse_time,
    render_form,
    validate_options,
)

LIMITS = Limits(
    allowed_partitions=["normal", "debug"], default_partition="normal",
    allowed_accounts=["proj1", "proj2"], default_account="proj1",
    allowed_reservations=["maint"],
    max_nodes=4, default_nodes=1, max_time="12:00:00", default_time="01:00:00",
    max_gpus=4, default_gpus=0,
    environments=["native", "uenv", "container"], default_environment="native",
    allowed_venvs=["/opt/jupyter/venv", "/apps/lab"],
    allowed_uenvs={"prgenv-gnu/24.11:v1": ["default", "spack"], "pytorch/v2.6:v1": ["default"]},
    allowed_container_images=["pytorch-25.10", "/capstor/edf/lab.toml"],
)


def test_defaults_fill_missing_fields() -> None:
    options = validate_options({}, LIMITS)
    assert options == JobOptions(partition="normal", account="proj1", nodes=1,
                                 time_seconds=3600, venv="/opt/jupyter/venv")
    assert options.time == "0-01:00:00"
    assert validate_options(options.as_user_options(), LIMITS) == options


def test_valid_choices_are_kept() -> None:
    options = validate_options({"partition": "debug", "account": "proj2", "reservation": "maint",
                                "nodes": "4", "time": "0-10:03:04", "gpus": 4,
                                "environment": "uenv", "uenv": "pytorch/v2.6:v1"}, LIMITS)
    assert (options.partition, options.account, options.reservation) == ("debug", "proj2",
                                                                         "maint")
    assert (options.nodes, options.gpus, options.time) == (4, 4, "0-10:03:04")
    assert (options.uenv, options.uenv_view, options.venv) == ("pytorch/v2.6:v1", "default", "")


@pytest.mark.parametrize("field, value", [
    ("partition", "normal\n#SBATCH --account=other"),
    ("partition", "normal #SBATCH"),
    ("partition", "gpu"),
    ("account", "proj1;id"),
    ("account", "$(id)"),
    ("reservation", "other"),
    ("nodes", "5"),
    ("nodes", "0"),
    ("nodes", "1e3"),
    ("nodes", "-1"),
    ("time", "12:00:01"),
    ("time", "0"),
    ("time", "01:00"),
    ("time", "1:00:00; rm -rf ~"),
    ("gpus", "5"),
    ("gpus", "`id`"),
    ("environment", "docker"),
    ("venv", "/opt/other"),
    ("uenv", "prgenv-gnu/24.11:v1 --mount"),
    ("uenv_view", "modules"),
    ("container_image", "ubuntu:latest"),
    ("unknown", "x"),
])
def test_refusals_name_the_field(field: str, value: str) -> None:
    raw = {field: value}
    if field in ("uenv", "uenv_view"):
        raw["environment"] = "uenv"
    if field == "container_image":
        raw["environment"] = "container"
    with pytest.raises(OptionError) as info:
        validate_options(raw, LIMITS)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_free_values_still_follow_strict_patterns() -> None:
    open_limits = Limits(environments=["container"], default_environment="container",
                         allow_custom_container_image=True, max_nodes=2)
    assert validate_options({"partition": "any-part_1.x", "account": "a",
                             "container_image": "/capstor/edf/lab.toml"}, open_limits)
    assert validate_options({"container_image": "nvcr.io#nvidia/pytorch:25.10-py3"},
                            open_limits).container_image == "nvcr.io#nvidia/pytorch:25.10-py3"
    for bad in ("x y", "img;id", "img'", 'img"', "a\\b", "../../etc", "-flag", "a$b"):
        with pytest.raises(OptionError, match="container_image"):
            validate_options({"container_image": bad}, open_limits)
    with pytest.raises(OptionError, match="partition"):
        validate_options({"partition": "-p", "container_image": "x"}, open_limits)


def test_non_text_values_are_refused() -> None:
    with pytest.raises(OptionError, match="nodes: expected text"):
        validate_options({"nodes": [1]}, LIMITS)
    with pytest.raises(OptionError, match="gpus: expected text"):
        validate_options({"gpus": True}, LIMITS)


@pytest.mark.parametrize("text, seconds", [
    ("90", 5400), ("01:30:00", 5400), ("1-00:00:00", 86400), ("2-12", 216000),
    ("0-00:05", 300), ("48:00:00", 172800),
])
def test_time_formats(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds
    assert parse_time(format_time(seconds)) == seconds


def test_limits_check_names_the_setting() -> None:
    with pytest.raises(ValueError, match="FirecRESTSpawner.default_partition"):
        Limits(allowed_partitions=["a"], default_partition="b").check()
    with pytest.raises(ValueError, match="FirecRESTSpawner.allowed_partitions"):
        Limits(allowed_partitions=["a b"]).check()
    with pytest.raises(ValueError, match="FirecRESTSpawner.default_nodes"):
        Limits(max_nodes=2, default_nodes=3).check()
    with pytest.raises(ValueError, match="FirecRESTSpawner.default_time"):
        Limits(max_time="01:00:00", default_time="02:00:00").check()
    with pytest.raises(ValueError, match="FirecRESTSpawner.max_time"):
        Limits(max_time="soon").check()
    with pytest.raises(ValueError, match="FirecRESTSpawner.allowed_uenvs"):
        Limits(environments=["uenv"], default_environment="uenv").check()
    with pytest.raises(ValueError, match="FirecRESTSpawner.allowed_container_images"):
        Limits(environments=["container"], default_environment="container").check()
    with pytest.raises(ValueError, match="FirecRESTSpawner.container_engine"):
        Limits(container_engine="docker").check()
    LIMITS.check()


def test_form_data_is_flattened_and_duplicates_refused() -> None:
    assert form_to_options({"partition": ["debug"], "time": [""], "_xsrf": ["t"]}) == {
        "partition": "debug"}
    with pytest.raises(OptionError, match="partition: was sent more than once"):
        form_to_options({"partition": ["a", "b"]})


def test_form_escapes_and_offers_the_limits() -> None:
    limits = Limits(allowed_partitions=["normal"], default_partition="normal",
                    environments=["native", "container"], allow_custom_container_image=True,
                    allowed_container_images=['x"><script>'], max_gpus=2)
    html = render_form(limits)
    assert '<script>' not in html and "&quot;&gt;&lt;script&gt;" in html
    assert 'name="gpus"' in html and 'max="2"' in html
    assert 'name="container_image"' in html
    assert 'name="gpus"' not in render_form(Limits())


# ---------------------------------------------------------------------------
# Messages: bounded and escaped, what is allowed, look-alikes, out of range
# ---------------------------------------------------------------------------
NO_VENVS = Limits(max_nodes=4, max_gpus=2)


def _refusal(raw: dict[str, object], limits: Limits = NO_VENVS) -> str:
    with pytest.raises(OptionError) as info:
        validate_options(raw, limits)
    return str(info.value)


@pytest.mark.parametrize("field", ["partition", "account", "time", "nodes", "environment"])
def test_a_huge_value_is_quoted_as_a_bounded_excerpt(field: str) -> None:
    value = "x" * 10_000
    message = _refusal({field: value})
    assert len(message) < 400, message
    assert EXCERPT_CHARS <= message.count("x") <= EXCERPT_CHARS + 10
    assert "(10000 characters)" in message


def test_an_unknown_huge_key_is_bounded_too() -> None:
    message = _refusal({"k" * 5000: "1"})
    assert len(message) < 400 and "(5000 characters)" in message


def test_excerpt_escapes_what_would_mislead() -> None:
    assert excerpt("abc") == "'abc'"
    assert excerpt("a\u200bb<script>") == "'a\\u200bb<script>'"
    assert excerpt("y" * 50, 10) == "'yyyyyyyyyy...' (50 characters)"


@pytest.mark.parametrize("value", ["-1", "1000000000", "5", "0", "+7", "9" * 5000])
def test_numbers_out_of_range_are_called_out_of_range(value: str) -> None:
    message = _refusal({"nodes": value})
    assert "out of range" in message and "1..4" in message
    assert "not a whole number" not in message


@pytest.mark.parametrize("value", ["1.5", "1e3", "two", "0x2", "3 nodes"])
def test_non_numbers_say_what_is_allowed(value: str) -> None:
    message = _refusal({"nodes": value})
    assert "not a whole number" in message and "ASCII digits 1..4" in message


@pytest.mark.parametrize(("field", "value", "named", "like"), [
    ("nodes", "\uff12", "FULLWIDTH DIGIT TWO", "'2'"),
    ("nodes", "\u0662", "ARABIC-INDIC DIGIT TWO", "'2'"),
    ("gpus", "\u0967", "DEVANAGARI DIGIT ONE", "'1'"),
    ("partition", "n\u043ermal", "CYRILLIC SMALL LETTER O", "'o'"),
    ("partition", "\u039fK", "GREEK CAPITAL LETTER OMICRON", "'O'"),
    ("account", "proj\u20111", "NON-BREAKING HYPHEN", "'-'"),
    ("account", "proj\u22121", "MINUS SIGN", "'-'"),
    ("partition", "deb\u00a0ug", "NO-BREAK SPACE", "a space"),
    ("time", "01\uff1a00:00", "FULLWIDTH COLON", "':'"),
])
def test_look_alike_characters_are_pointed_out(field: str, value: str, named: str,
                                               like: str) -> None:
    message = _refusal({field: value})
    assert named in message and f"looks like {like}" in message, message
    assert message.isascii()  # the look-alike itself is escaped, never shown raw


def test_invisible_characters_are_named() -> None:
    message = _refusal({"partition": "deb\u200bug"})
    assert "U+200B ZERO WIDTH SPACE at position 4, which is invisible" in message


def test_many_look_alikes_are_summarised() -> None:
    message = _refusal({"partition": "\uff41" * 20})
    assert message.count("FULLWIDTH LATIN SMALL LETTER A") == 3 and "(and 17 more)" in message


def test_pattern_refusals_say_what_is_allowed() -> None:
    assert "1 to 64 ASCII letters, digits, '_', '.' or '-'" in _refusal({"partition": "a b"})
    open_limits = Limits(environments=["container"], default_environment="container",
                         allow_custom_container_image=True)
    assert "image reference" in _refusal({"container_image": "a b"}, open_limits)


def test_control_characters_are_escaped_and_located() -> None:
    message = _refusal({"account": "a\x1b[31mred"})
    assert "'\\x1b'" in message and "position 2" in message and "\x1b" not in message


def test_time_out_of_range_says_out_of_range() -> None:
    message = _refusal({"time": "2-00:00:00"})
    assert "out of range" in message and "0-00:01:00" in message and "1-00:00:00" in message


# ---------------------------------------------------------------------------
# An empty allowed_venvs: no venv can be chosen, through any way in
# ---------------------------------------------------------------------------
def test_empty_allowed_venvs_refuses_every_venv() -> None:
    assert validate_options({}, NO_VENVS).venv == ""
    for venv in ("/opt/jupyter/venv", "/", "/home/user/.venv"):
        message = _refusal({"venv": venv})
        assert message.startswith("venv: ") and "allowed_venvs is empty" in message
    # a hand-made form post reaches the same check
    with pytest.raises(OptionError, match="allowed_venvs is empty"):
        validate_options(form_to_options({"venv": ["/opt/jupyter/venv"]}), NO_VENVS)
    assert 'name="venv"' not in render_form(NO_VENVS)


def test_listed_venvs_are_still_the_only_choices() -> None:
    assert validate_options({"venv": "/apps/lab"}, LIMITS).venv == "/apps/lab"
    assert "not offered here" in _refusal({"venv": "/opt/other"}, LIMITS)
