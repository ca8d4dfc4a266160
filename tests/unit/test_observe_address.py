"""`--http [HOST:]PORT`: a bare port listens on loopback only; mistakes say what to write."""

from __future__ import annotations

import pytest

from pipeline.observe.address import HttpAddress, parse_http_address


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("8080", "127.0.0.1", 8080),
        (":8080", "127.0.0.1", 8080),
        ("0", "127.0.0.1", 0),
        ("127.0.0.1:9", "127.0.0.1", 9),
        ("localhost:8080", "localhost", 8080),
        ("[::1]:8080", "::1", 8080),
        ("0.0.0.0:8080", "0.0.0.0", 8080),
    ],
)
def test_addresses_a_user_writes(text: str, host: str, port: int) -> None:
    assert parse_http_address(text) == HttpAddress(host, port)


def test_a_bare_port_is_reachable_from_this_machine_only() -> None:
    assert parse_http_address("8080").loopback
    assert parse_http_address("[::1]:1").loopback
    assert parse_http_address("localhost:1").loopback
    assert not parse_http_address("0.0.0.0:8080").loopback
    assert not parse_http_address("[::]:8080").loopback
    assert not parse_http_address("myhost:8080").loopback


def test_urls_bracket_ipv6_and_show_the_port_actually_bound() -> None:
    assert parse_http_address("[::1]:0").url(4321) == "http://[::1]:4321"
    assert parse_http_address("8080").url() == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("http", "the port must be a number from 0 to 65535"),
        ("70000", "the port must be a number from 0 to 65535"),
        ("host:", "the port must be a number"),
        ("::1:8080", "IPv6 address in brackets"),
        ("[::1]8080", "[ADDRESS]:PORT"),
    ],
)
def test_mistakes_name_the_value_and_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=r"^'.*'") as caught:
        parse_http_address(text)
    assert says in str(caught.value)
    assert repr(text) in str(caught.value)
