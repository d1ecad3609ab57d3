from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from edge.config.triggers import GpioTriggerConfig, TriggersConfig
from edge.errors import TriggerRefusedError
from edge.trigger.gpio import GpioTriggers
from tests.booth_support import wait_for


@pytest.fixture(autouse=True)
def mock_pins() -> Iterator[None]:
    Device.pin_factory = MockFactory()
    yield
    Device.pin_factory.reset()


def test_button_press_and_drawer_close_fire_with_their_source() -> None:
    fired: list[str] = []
    config = TriggersConfig(button=GpioTriggerConfig(pin=17, bounce_s=0), drawer=GpioTriggerConfig(pin=22, bounce_s=0))
    triggers = GpioTriggers(config, fired.append)
    triggers.start()
    Device.pin_factory.pin(17).drive_low()
    Device.pin_factory.pin(22).drive_low()
    wait_for(lambda: len(fired) == 2, timeout=10)
    triggers.stop()
    assert sorted(fired) == ["gpio-button", "gpio-drawer"]


def test_debounce_time_reaches_the_pin() -> None:
    # The pin driver debounces (MockPin records it but, unlike lgpio, does not apply it).
    triggers = GpioTriggers(TriggersConfig(button=GpioTriggerConfig(pin=17, bounce_s=0.25)), lambda s: None)
    triggers.start()
    assert Device.pin_factory.pin(17).bounce == pytest.approx(0.25)
    assert Device.pin_factory.pin(17).pull == "up"
    triggers.stop()


def test_refused_trigger_does_not_break_the_input() -> None:
    calls: list[str] = []

    def refuse(source: str) -> None:
        calls.append(source)
        raise TriggerRefusedError("no_imei", "no IMEI armed")

    triggers = GpioTriggers(TriggersConfig(button=GpioTriggerConfig(pin=5, bounce_s=0)), refuse)
    triggers.start()
    pin = Device.pin_factory.pin(5)
    pin.drive_low()
    pin.drive_high()
    pin.drive_low()
    wait_for(lambda: len(calls) == 2, timeout=10)
    triggers.stop()
