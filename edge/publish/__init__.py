"""MQTT publishing: durable outbox, results, state, events, commands, Home Assistant discovery."""

from edge.publish.service import MqttService

__all__ = ["MqttService"]
