"""GPIO triggers: a start button and a drawer switch, debounced by gpiozero.

A GPIO input carries no IMEI; it starts a session for the IMEI the kiosk armed last, and a press
with nothing armed is refused (and published as a `trigger_rejected` event).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gpiozero import Button

from edge.config.triggers import GpioTriggerConfig, TriggersConfig
from edge.errors import TriggerRefusedError
from edge.worker import Worker

logger = logging.getLogger(__name__)

ArmedTrigger = Callable[[str], object]


class GpioTriggers:
    def __init__(self, config: TriggersConfig, trigger_armed: ArmedTrigger) -> None:
        self._trigger_armed = trigger_armed
        self._buttons: list[Button] = []
        self._inputs: dict[str, GpioTriggerConfig] = {
            name: cfg for name, cfg in (("button", config.button), ("drawer", config.drawer)) if cfg is not None
        }

    @property
    def workers(self) -> list[Worker]:
        return []  # gpiozero's own threads call back on edges; none of them is the daemon's

    def start(self) -> None:
        for name, cfg in self._inputs.items():
            button = Button(cfg.pin, pull_up=cfg.pull_up, bounce_time=cfg.bounce_s or None)
            # A drawer switch closes when the drawer shuts: that is the moment to shoot.
            button.when_pressed = lambda source=f"gpio-{name}": self._fire(source)
            self._buttons.append(button)
            logger.info("GPIO trigger %s on pin %s", name, cfg.pin)

    def _fire(self, source: str) -> None:
        try:
            self._trigger_armed(source)
        except TriggerRefusedError as exc:
            logger.warning("%s trigger refused: %s", source, exc.message)

    def stop(self) -> None:
        for button in self._buttons:
            button.close()
        self._buttons.clear()
