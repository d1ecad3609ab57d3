"""MQTT publishing: the outbox's mqtt channel, results, state, events, commands, Home Assistant discovery."""

from edge.publish.publisher import MqttResults, mqtt_channel
from edge.publish.service import MqttService

__all__ = ["MqttResults", "MqttService", "mqtt_channel"]
