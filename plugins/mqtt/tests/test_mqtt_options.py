"""What the mqtt options accept and refuse, topic escaping, MQTT 5 properties and ack order.

No broker needed: these are the rules a user meets when the config loads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pipeline import Event, EventKind
from pydantic import ValidationError
from tests.conftest import make_component

from fspipeline_mqtt.acks import AckLedger, Received
from fspipeline_mqtt.properties import CONTENT_TYPE, EventProperties
from fspipeline_mqtt.sink import MqttSink, MqttSinkOptions, topic_text
from fspipeline_mqtt.source import MqttSourceOptions


def refusal(options: type[MqttSinkOptions | MqttSourceOptions], **values: object) -> str:
    """The messages `pipeline check` shows for these option values."""
    with pytest.raises(ValidationError) as caught:
        options.model_validate(values)
    return "; ".join(str(error["msg"]) for error in caught.value.errors())


def test_url_must_be_an_mqtt_url_and_the_password_is_not_repeated() -> None:
    message = refusal(MqttSinkOptions, url="http://bob:hunter2@broker:1883")
    assert "not an MQTT broker URL" in message
    assert "hunter2" not in message
    assert "mqtt://user:password@host:1883" in message


def test_protocol_accepts_yaml_numbers_and_text() -> None:
    assert MqttSinkOptions.model_validate({"protocol": 5}).protocol == "5"
    assert MqttSinkOptions.model_validate({"protocol": "3.1.1"}).protocol == "3.1.1"
    assert "3.1.1" in refusal(MqttSinkOptions, protocol=4)


def test_published_topic_template_cannot_hold_wildcards_or_unknown_placeholders() -> None:
    assert "cannot hold the wildcards" in refusal(MqttSinkOptions, topic="fs/+/{kind}")
    assert "unknown placeholder {knd}" in refusal(MqttSinkOptions, topic="fs/{knd}")


def test_topic_filters_follow_mqtt_wildcard_rules() -> None:
    assert MqttSourceOptions.model_validate({"topics": ["fs/+/closed_write", "a/#"]})
    assert "# must be a whole level" in refusal(MqttSourceOptions, topics=["fs/#/x"])
    assert "+ must be a whole level" in refusal(MqttSourceOptions, topics=["fs/a+"])


def test_dead_letter_topic_must_lie_outside_the_filters() -> None:
    message = refusal(MqttSourceOptions, topics=["$share/w/fs/#"], dead_letter_topic="fs/dlq")
    assert "would read its own dead letters" in message
    ok = MqttSourceOptions.model_validate({"topics": ["fs/#"], "dead_letter_topic": "dlq/fs"})
    assert ok.dead_letter_topic == "dlq/fs"


def test_topic_values_never_make_a_topic_invalid() -> None:
    assert topic_text("a+b#c%d") == "a%2Bb%23c%25d"
    assert topic_text("caf\udce9.csv") == "caf\\xe9.csv"  # a Latin-1 byte in a file name
    assert topic_text("ünïcode") == "ünïcode"


def test_topic_is_made_from_pipeline_and_event(tmp_path: Path) -> None:
    sink = make_component(MqttSink, tmp_path, topic="fs/{pipeline}/{kind}/{name}/{meta.x}")
    event = Event(EventKind.CLOSED_WRITE, "/in/q+1.csv", "t/inotify")
    assert sink.message(event).topic == "fs/t/closed_write/q%2B1.csv/-"


def test_event_properties_decode_as_mqtt5_properties() -> None:
    packed = EventProperties("0190-abc", "fs.closed_write").pack()
    decoded = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    decoded.unpack(packed)  # type: ignore[no-untyped-call]
    assert decoded.json() == {  # type: ignore[no-untyped-call]
        "ContentType": CONTENT_TYPE,
        "UserProperty": [("id", "0190-abc"), ("type", "fs.closed_write")],
    }


def received(mid: int, connection: int = 1) -> Received:
    return Received(connection, mid, 1, "fs/t", b"{}")


def test_acks_are_released_in_arrival_order() -> None:
    ledger = AckLedger()
    for mid, event_id in [(1, "a"), (2, "b"), (3, "c")]:
        assert ledger.add(received(mid), event_id)
    ledger.settle("c", delivered=True)
    ledger.settle("b", delivered=False)
    assert list(ledger.ready()) == []  # 1 is still in the pipeline
    ledger.settle("a", delivered=True)
    assert [(m.mid, m.delivered) for m in ledger.ready()] == [(1, True), (2, False), (3, True)]
    assert ledger.in_flight == 0


def test_a_redelivered_event_is_not_emitted_twice_and_settles_with_the_first() -> None:
    ledger = AckLedger()
    assert ledger.add(received(7, connection=1), "a")
    assert not ledger.add(received(7, connection=2), "a")  # the broker sent it again
    assert ledger.settle("a", delivered=True)
    assert [(m.connection, m.delivered) for m in ledger.ready()] == [(1, True), (2, True)]
    assert not ledger.settle("a", delivered=True)


def test_a_message_without_an_event_is_settled_as_failed_at_once() -> None:
    ledger = AckLedger()
    assert not ledger.add(received(1), None)
    assert [m.delivered for m in ledger.ready()] == [False]
