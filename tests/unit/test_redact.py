"""Passwords in URLs never reach a log line or an error message."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from pipeline.logsetup import configure_logging
from pipeline.redact import redact


def restore_logging() -> None:
    """Back to structlog's defaults (every level) and no stdlib handler of ours, as the
    other tests expect."""
    import logging

    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("redis://:s3cr3t@localhost:6379/0", "redis://:***@localhost:6379/0"),
        (
            "connect to nats://u:p@ss:w0rd@host:4222 failed",
            "connect to nats://u:***@host:4222 failed",
        ),
        ("https://user@example.com/hook", "https://user@example.com/hook"),
        ("no url here", "no url here"),
        ("a http://x:1@h and b mqtt://y:2@k", "a http://x:***@h and b mqtt://y:***@k"),
    ],
)
def test_redact_masks_url_passwords(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_every_log_line_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info", "json")
    try:
        structlog.get_logger("t").warning(
            "broker down",
            url="amqp://guest:topsecret@h:5672/",
            nested={"urls": ["redis://:topsecret@h:6379"]},
        )
    finally:
        restore_logging()
    line = stream.getvalue()
    assert "topsecret" not in line
    assert json.loads(line)["url"] == "amqp://guest:***@h:5672/"


def test_library_logs_come_out_as_structured_redacted_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info", "json")
    try:
        logging.getLogger("aiormq.connection").warning(
            "Connection to %s lost", "amqp://guest:topsecret@h:5672/"
        )
        logging.getLogger("aiormq.connection").info("chatter nobody asked for")
    finally:
        restore_logging()
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "Connection to amqp://guest:***@h:5672/ lost"
    assert (record["level"], record["logger_name"]) == ("warning", "aiormq.connection")
