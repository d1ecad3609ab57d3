"""IMEI validation and masking: 15 digits with a Luhn check digit; never logged in full."""

from __future__ import annotations

import re

IMEI_LENGTH = 15


class InvalidImeiError(ValueError):
    pass


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def validate_imei(value: object, luhn: bool = True) -> str:
    """Return the IMEI if valid, else raise ``InvalidImeiError`` saying what is wrong.

    ``luhn=False`` accepts any 15 digits, for kiosk test rigs that use placeholder IMEIs.
    """
    if not isinstance(value, str):
        raise InvalidImeiError("Invalid request: imei must be a string of 15 digits")
    if len(value) != IMEI_LENGTH or not value.isascii() or not value.isdigit():
        raise InvalidImeiError("Invalid request: imei must be exactly 15 digits")
    if luhn and not luhn_ok(value):
        raise InvalidImeiError("Invalid request: imei check digit (Luhn) is wrong")
    return value


def mask_imei(imei: str) -> str:
    """The TAC (device model) and the last two digits; enough to tell sessions apart in a log."""
    if len(imei) < 10:
        return "***"
    return f"{imei[:8]}*****{imei[-2:]}"


IMEI_LIKE = re.compile(r"(?<!\d)\d{15}(?!\d)")


def mask_imeis_in(text: str) -> str:
    """Every 15-digit run in ``text`` masked: for texts that may quote an IMEI (paths, errors, URLs)."""
    return IMEI_LIKE.sub(lambda m: mask_imei(m.group(0)), text)
