"""Home Assistant MQTT discovery: retained configs for last grade, booth state and outbox depth."""

from __future__ import annotations

import json
from typing import Any

from edge.publish.mqtt_link import MqttLink
from edge.publish.topics import Topics

AVAILABLE_TEMPLATE = "{{ 'online' if value == 'online' else 'offline' }}"

SENSORS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (
        "last_grade",
        "Last grade",
        "{{ value_json.last_grade | default('unknown') }}",
        {"icon": "mdi:cellphone-check"},
    ),
    ("state", "Booth activity", "{{ value_json.activity | default('unknown') }}", {"icon": "mdi:state-machine"}),
    (
        "outbox_depth",
        "MQTT outbox depth",
        "{{ value_json.mqtt_outbox_depth | default(0) }}",
        {"icon": "mdi:tray-full", "state_class": "measurement", "unit_of_measurement": "results"},
    ),
)


def discovery_configs(topics: Topics, booth_id: str, ha_prefix: str, sw_version: str) -> dict[str, dict]:
    """Topic -> retained config payload, one per sensor."""
    node = f"edge_grader_{booth_id}".replace("-", "_")
    device = {
        "identifiers": [f"edge-grader-{booth_id}"],
        "name": f"Grading booth {booth_id}",
        "manufacturer": "Vision Grader",
        "model": "edge-grader booth",
        "sw_version": sw_version,
    }
    configs = {}
    for key, name, template, extra in SENSORS:
        configs[f"{ha_prefix}/sensor/{node}/{key}/config"] = {
            "name": name,
            "unique_id": f"{node}_{key}",
            "object_id": f"{node}_{key}",
            "state_topic": topics.state,
            "value_template": template,
            "availability": [{"topic": topics.available, "value_template": AVAILABLE_TEMPLATE}],
            "device": device,
            **extra,
        }
    return configs


def publish_discovery(link: MqttLink, topics: Topics, booth_id: str, ha_prefix: str, sw_version: str) -> None:
    for topic, config in discovery_configs(topics, booth_id, ha_prefix, sw_version).items():
        link.publish(topic, json.dumps(config, separators=(",", ":")), qos=1, retain=True)
