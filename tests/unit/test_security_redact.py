"""Secrets in the forms broker and HTTP clients quote them: a password in any URL, a NATS
token in the user part, credentials in a query string (pipeline/redact.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.redact import redact

USERINFO = "abcXYZ019-._~!$&'()*+,;=%:@"
secrets = st.text(alphabet=USERINFO, min_size=4, max_size=20).filter(
    lambda s: s.strip("@:") == s and "%" not in s[-2:]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    secret=secrets,
    scheme=st.sampled_from(["amqp", "amqps", "redis", "rediss", "mqtt", "nats", "https"]),
    around=st.sampled_from(["{}", "error: {} refused", "url={}", "'{}'", "({})"]),
)
def test_a_password_in_a_url_never_shows(secret: str, scheme: str, around: str) -> None:
    text = around.format(f"{scheme}://user:{secret}@broker.internal:1234/vhost")
    shown = redact(text)
    assert f"user:{secret}@" not in shown
    assert "broker.internal:1234/vhost" in shown


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("nats://s3cr3tTok3n@nats.internal:4222", "s3cr3tTok3n"),
        ("tls://s3cr3tTok3n@nats.internal:4222", "s3cr3tTok3n"),
        ("GET https://hooks.example.com/in?token=abc123def&x=1", "abc123def"),
        ("https://h/x?api_key=abc123def", "abc123def"),
        ("https://h/x?a=1&password=abc123def#frag", "abc123def"),
        ("https://h/x?access_token=abc123def", "abc123def"),
    ],
)
def test_tokens_in_urls_never_show(text: str, secret: str) -> None:
    shown = redact(text)
    assert secret not in shown
    assert "***" in shown


def test_what_is_not_a_secret_is_left_alone() -> None:
    for text in (
        "https://user@example.com/hook",
        "https://h/x?page=2&sort=name",
        "nats://nats.internal:4222",
        "/in/report:final@2024.csv",
    ):
        assert redact(text) == text
