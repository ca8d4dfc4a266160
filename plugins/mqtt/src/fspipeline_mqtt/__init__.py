"""fspipeline-mqtt: the `mqtt` sink and source (MQTT 3.1.1 and 5, through aiomqtt)."""

from fspipeline_mqtt.sink import MqttSink, MqttSinkOptions
from fspipeline_mqtt.source import MqttSource, MqttSourceOptions

__all__ = ["MqttSink", "MqttSinkOptions", "MqttSource", "MqttSourceOptions"]
