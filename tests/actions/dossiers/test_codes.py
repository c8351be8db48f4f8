"""The dossier code and the verification digits as citizens type them; personal numbers masked in logs."""

from __future__ import annotations

import logging

import pytest

from actions.dossiers.codes import LAST4_FULL_NUMBER, LAST4_INVALID, LAST4_OK, extract_code, parse_last4
from dvcbot import logmask

CODE = "000.00.04.H51-200221-0001"


@pytest.mark.parametrize("typed", [
    CODE,
    "000.00.04.h51-200221-0001",
    " 000 .00.04.H51 - 200221 - 0001 ",
    "OOO.OO.O4.H51-2OO221-OOO1",
    "000.00.04.H51 200221 0001",
    "0000004H512002210001",
    "mã hồ sơ của tôi là 000.00.04.H51-200221-0001 nhé",
    "ma ho so 000.00.04.H51–200221–0001",
])
def test_codes_are_read_with_spaces_case_and_letter_o(typed: str) -> None:
    assert extract_code(typed) == CODE


@pytest.mark.parametrize("typed", [
    "",
    "tra cứu hồ sơ",
    "000.00.04.H51-200221",  # no sequence number
    "000.00.04.H51-201341-0001",  # month 13
    "000.00.04.151-200221-0001",  # no letter
    "1000.00.04.H51-200221-0001",  # glued to a longer number
    "000.00.04.H51-200221-00011",
])
def test_malformed_codes_are_refused(typed: str) -> None:
    assert extract_code(typed) is None


def test_other_agencies_codes_are_accepted() -> None:
    assert extract_code("001.07.12.g01-250301-0007") == "001.07.12.G01-250301-0007"


@pytest.mark.parametrize(("typed", "expected"), [
    ("1234", ("1234", LAST4_OK)),
    ("12 34", ("1234", LAST4_OK)),
    ("4 số cuối là 6789", ("6789", LAST4_OK)),
    ("so cuoi 0000 a", ("0000", LAST4_OK)),
    ("0912345678", (None, LAST4_FULL_NUMBER)),
    ("sđt 0912 345 678", (None, LAST4_FULL_NUMBER)),
    ("001234567890", (None, LAST4_FULL_NUMBER)),
    ("123", (None, LAST4_INVALID)),
    ("12345", (None, LAST4_INVALID)),
    ("1234 và 5678", (None, LAST4_INVALID)),
    ("không nhớ", (None, LAST4_INVALID)),
])
def test_verification_digits(typed: str, expected: tuple[str | None, str]) -> None:
    assert parse_last4(typed) == expected


def test_phone_and_cccd_numbers_are_masked_to_their_last_three_digits() -> None:
    assert logmask.mask("gọi 0912345678 hoặc 0912 345 678") == "gọi *******678 hoặc **** *** 678"
    assert logmask.mask("CCCD 001234567890, +84912345678") == "CCCD *********890, +********678"
    assert logmask.mask("sent 2026-11-02, digits 1234, 12345678") == "sent 2026-11-02, digits 1234, 12345678"


def test_installed_masking_covers_every_logger_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logmask.install()
    logmask.install()  # idempotent: one masking factory per process
    with caplog.at_level(logging.INFO):
        logging.getLogger("rasa_sdk.executor").info("citizen wrote %s", "số tôi 0987654321")
        try:
            raise ValueError("CCCD 001234567890 not found")
        except ValueError:
            logging.getLogger("actions.anything").exception("look-up failed")
    assert "0987654321" not in caplog.text and "001234567890" not in caplog.text
    assert "*******321" in caplog.text and "*********890" in caplog.text


def test_the_filter_masks_records_made_elsewhere() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "phone %s", ("0912345678",), None)
    assert logmask.MaskingFilter().filter(record)
    assert record.getMessage() == "phone *******678"
