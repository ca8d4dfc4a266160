"""The webhook sink's options: every mistake named, with what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.sinks.webhook_options import WebhookOptions


def problem(**options: Any) -> str:
    """The messages `pipeline check` shows (it prints each error's `msg`, not the input)."""
    with pytest.raises(ValidationError) as caught:
        WebhookOptions.model_validate(options, context={"config_dir": Path("/etc/fsp")})
    return "\n".join(error["msg"] for error in caught.value.errors())


def test_defaults_post_structured_cloudevents_with_verified_tls() -> None:
    options = WebhookOptions.model_validate({"url": "https://h.example/fs/{kind}"})
    assert (options.method, options.mode, options.verify) == ("POST", "structured", True)
    assert (options.connect_timeout, options.timeout, options.retry_after_max) == (5, 30, 60)


@pytest.mark.parametrize("url", ["ftp://h/x", "h.example/x", "{path}", "//h/x"])
def test_url_must_be_http_or_https(url: str) -> None:
    assert "is not an http:// or https:// URL" in problem(url=url)


def test_a_bad_url_is_shown_without_its_password() -> None:
    message = problem(url="ftp://bob:hunter2-secret@h/x")
    assert "hunter2-secret" not in message
    assert "bob:***@h" in message


def test_unknown_placeholder_in_url_names_it() -> None:
    assert "unknown placeholder {nme}" in problem(url="https://h/{nme}")


@pytest.mark.parametrize("header", ["Content-Type", "ce-id", "Host"])
def test_headers_the_sink_sets_cannot_be_overridden(header: str) -> None:
    assert f"header {header} is set by the sink" in problem(url="https://h/", headers={header: "x"})


def test_header_values_are_one_line_of_ascii() -> None:
    assert "control character" in problem(url="https://h/", headers={"X-A": "a\r\nX-B: b"})
    assert "X-A is not ASCII" in problem(url="https://h/", headers={"X-A": "café"})


def test_secret_env_options_take_a_name_not_a_value() -> None:
    message = problem(url="https://h/", bearer_token_env="abc def")
    assert "is not an environment variable name; give the name (HOOK_TOKEN)" in message


def test_an_unset_secret_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    message = problem(url="https://h/", bearer_token_env="HOOK_TOKEN")
    assert "environment variable HOOK_TOKEN (named by bearer_token_env) is not set" in message


def test_one_way_to_authenticate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T", "x")
    message = problem(url="https://u:p@h/", bearer_token_env="T")
    assert "choose one way to authenticate: a user in `url` or bearer_token_env" in message
    assert "needs both username and password_env" in problem(url="https://h/", username="u")


def test_tls_options_that_contradict_each_other() -> None:
    assert "client_key needs client_cert" in problem(url="https://h/", client_key="k.pem")
    assert "no effect with verify: false" in problem(
        url="https://h/", verify=False, ca_bundle="ca.pem"
    )


def test_tls_paths_are_relative_to_the_config_file() -> None:
    options = WebhookOptions.model_validate(
        {"url": "https://h/", "ca_bundle": "certs/ca.pem"}, context={"config_dir": Path("/etc/f")}
    )
    assert options.ca_bundle == Path("/etc/f/certs/ca.pem")
