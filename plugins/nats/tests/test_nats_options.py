"""Options, subjects and registration of the nats components (no server needed)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pydantic
import pytest
from pipeline import ComponentKind, Event, EventKind
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.registry import build_registry
from tests.conftest import make_component

from fspipeline_nats import NatsSink, NatsSinkOptions, NatsSource, NatsSourceOptions
from fspipeline_nats.subjects import compile_subject, render_subject, wildcard_of


def test_the_entry_point_registers_a_sink_and_a_source() -> None:
    (entry_point,) = importlib.metadata.entry_points(group="fspipeline", name="nats")
    assert entry_point.dist is not None and entry_point.dist.name == "fspipeline-nats"
    assert entry_point.load().pipeline_components() == [NatsSink, NatsSource]
    assert (NatsSink.kind, NatsSource.kind) == (ComponentKind.SINK, ComponentKind.SOURCE)
    assert NatsSource.tracks_delivery


def test_a_config_with_both_checks_clean(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        """\
pipelines:
  publish:
    sources: [{type: poll, paths: [inbox], wait_missing: true}]
    sinks:
      - type: nats
        url: nats://app:${NATS_PASSWORD}@127.0.0.1:4222
        create_stream: {name: FS, subjects: ["fs.>"], duplicate_window: 5m, max_age: 7d}
        batch_size: 256
  work:
    sources:
      - {type: nats, stream: FS, durable: workers, ack_wait: 10s, on_failure: term}
    sinks: [{type: console}]
"""
    )
    plan = load_config(config, build_registry(), environ={"NATS_PASSWORD": "pw"})
    assert [p.name for p in plan.pipelines] == ["publish", "work"]


def test_mistakes_are_reported_with_what_to_write(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        """\
pipelines:
  p:
    sources: [{type: nats, stream: "bad.name", durable: w, fetch_batch: 0}]
    sinks:
      - {type: nats, subject: "fs..{kind}"}
      - {type: nats, subject: "fs.{knd}"}
      - {type: nats, url: "http://app:hunter2@host:4222"}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, build_registry())
    text = "\n".join(caught.value.problems)
    assert "sources[0].stream" in text and "sources[0].fetch_batch" in text
    assert "empty token" in text
    assert "unknown placeholder {knd}" in text and "{pipeline}" in text
    assert "is not a NATS server URL" in text
    assert "hunter2" not in text


def test_each_placeholder_fills_exactly_one_token() -> None:
    template = compile_subject("fs.{pipeline}.{kind}.{name}", "landing zone")
    event = Event(EventKind.MOVED, "/in/a b.c*>.csv", "landing/inotify")
    assert render_subject(template, event) == "fs.landing_zone.moved.a_b_c___csv"
    bad_bytes = Event(EventKind.CREATED, "/in/x\udcff", "p/inotify")
    assert render_subject(template, bad_bytes) == "fs.landing_zone.created.x_"


def test_the_default_stream_subjects_cover_the_template() -> None:
    assert wildcard_of("fs.{pipeline}.{kind}", "landing") == "fs.landing.*"
    assert wildcard_of("x.{meta.a.b:-none}.y", "p") == "x.*.y"


def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    sink = make_component(NatsSink, tmp_path, password="hunter2", token="tok-123")
    assert "hunter2" not in repr(sink.options) and "tok-123" not in repr(sink.options)
    with pytest.raises(pydantic.ValidationError):
        NatsSourceOptions.model_validate({"stream": "S"})  # durable is required
    assert NatsSinkOptions().subject == "fs.{pipeline}.{kind}"
