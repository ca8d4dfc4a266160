"""`${VAR}` expansion in config values (pipeline/config/envvars.py)."""

from __future__ import annotations

import pytest

from pipeline.config.envvars import EnvExpansionError, expand

ENV = {"HOME_DIR": "/home/ana", "QUIET": "250ms", "EMPTY": "", "_X1": "x"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no references here", "no references here"),
        ("${HOME_DIR}", "/home/ana"),
        ("${_X1}", "x"),
        ("${HOME_DIR}/inbox", "/home/ana/inbox"),
        ("in ${HOME_DIR} after ${QUIET}!", "in /home/ana after 250ms!"),
        ("${QUIET}${QUIET}", "250ms250ms"),
        # defaults
        ("${MISSING:-200ms}", "200ms"),
        ("${QUIET:-200ms}", "250ms"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a b:c/d-e}", "a b:c/d-e"),
        ("${MISSING:-$HOME}", "$HOME"),
        # an empty variable counts as unset when there is a default
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY}", ""),
        # `$${` is a literal `${`, never expanded
        ("$${HOME_DIR}", "${HOME_DIR}"),
        ("$${MISSING}", "${MISSING}"),
        ("cost: $${ and ${QUIET}", "cost: ${ and 250ms"),
        # what is not a `${` reference is left alone
        ("$HOME_DIR", "$HOME_DIR"),
        ("$$", "$$"),
        ("price $5 {braces}", "price $5 {braces}"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_a_value_is_not_expanded_again() -> None:
    # a secret that happens to contain `${` must reach the component unchanged
    assert expand("${TOKEN}", {"TOKEN": "a${B}c", "B": "no"}) == "a${B}c"


def test_an_unset_variable_without_default_names_the_variable() -> None:
    with pytest.raises(EnvExpansionError) as caught:
        expand("path: ${INBOX_DIR}/x", {})
    message = str(caught.value)
    assert "INBOX_DIR" in message
    assert "not set" in message
    assert "${INBOX_DIR:-" in message  # says how to give a default


def test_the_first_unset_variable_is_the_one_named() -> None:
    with pytest.raises(EnvExpansionError, match="NOPE"):
        expand("${HOME_DIR}/${NOPE}", ENV)


def test_environment_names_are_case_sensitive() -> None:
    with pytest.raises(EnvExpansionError, match="home_dir"):
        expand("${home_dir}", ENV)


@pytest.mark.parametrize(
    "text",
    [
        "${}",
        "${1ABC}",
        "${A B}",
        "${A-default}",
        "${A:default}",
        "${A:=default}",
        "${HOME_DIR",
        "tail ${",
        "${-x}",
    ],
)
def test_malformed_references_are_errors(text: str) -> None:
    with pytest.raises(EnvExpansionError, match="malformed") as caught:
        expand(text, ENV)
    assert "${NAME:-default}" in str(caught.value)  # says what to write instead


def test_a_nested_default_is_expanded_or_refused_never_half_done() -> None:
    # `${A:-${B}}` must not silently become the literal text "${B}".
    try:
        result = expand("${A:-${B}}", {"B": "b-value"})
    except EnvExpansionError:
        return
    assert result == "b-value"


def test_env_expansion_error_is_a_value_error() -> None:
    assert issubclass(EnvExpansionError, ValueError)
