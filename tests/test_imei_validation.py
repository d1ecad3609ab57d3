from __future__ import annotations

import pytest

from edge.imei import InvalidImeiError, luhn_ok, mask_imei, validate_imei


def test_valid_imei_passes() -> None:
    assert validate_imei("490154203237518") == "490154203237518"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("490154203237519", "Luhn"),
        ("49015420323751", "15 digits"),
        ("4901542032375180", "15 digits"),  # an IMEISV has 16 digits and no check digit
        ("49015420323751a", "15 digits"),
        ("٤٩٠١٥٤٢٠٣٢٣٧٥١٨", "15 digits"),  # non-ASCII digits
        (490154203237518, "string"),
        ("", "15 digits"),
    ],
)
def test_invalid_imei_is_refused_with_the_reason(value: object, why: str) -> None:
    with pytest.raises(InvalidImeiError, match=why):
        validate_imei(value)


def test_luhn_matches_known_values() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")


def test_mask_hides_the_serial() -> None:
    masked = mask_imei("490154203237518")
    assert masked.startswith("49015420")
    assert "323751" not in masked
