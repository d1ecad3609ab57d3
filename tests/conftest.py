"""Fixtures shared across the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# gpiozero must never look for real pins in tests.
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

from tests.booth_support import render_booth_images


@pytest.fixture(scope="session")
def booth_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo photos rendered once per test run, used by replay cameras."""
    return render_booth_images(tmp_path_factory.mktemp("booth-images"))
