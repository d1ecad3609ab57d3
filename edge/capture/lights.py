"""Lighting outputs switched around each shot (gpiozero)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from gpiozero import DigitalOutputDevice

from edge.config.capture import LightConfig


class Lights:
    def __init__(self, config: Mapping[str, LightConfig]) -> None:
        self._config = dict(config)
        self._devices: dict[str, DigitalOutputDevice] = {
            name: DigitalOutputDevice(light.pin, active_high=light.active_high, initial_value=False)
            for name, light in config.items()
        }

    @contextmanager
    def on(self, names: Sequence[str]) -> Iterator[None]:
        """On for the shot, off afterwards even when the shot fails."""
        devices = [self._devices[name] for name in names]
        for device in devices:
            device.on()
        if names:
            time.sleep(max(self._config[name].settle_s for name in names))
        try:
            yield
        finally:
            for device in devices:
                device.off()

    def is_lit(self, name: str) -> bool:
        return bool(self._devices[name].value)

    def close(self) -> None:
        for device in self._devices.values():
            device.close()
        self._devices.clear()
