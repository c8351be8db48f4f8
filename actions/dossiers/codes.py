"""The dossier code of Circular 01/2018/TT-VPCP and the verification digits, read the way citizens type them.

A code is ``V1V2V3.Z1Z2.Y1Y2.MX1X2-YYMMDD-XXXX`` (e.g. ``000.00.04.H51-200221-0001``): the receiving agency's
identifier (TT 10/2016/TT-BTTTT), the date the dossier was received and the day's sequence number. It is printed
on the "Giấy tiếp nhận hồ sơ và hẹn trả kết quả". Citizens copy it with spaces, in lower case, with the letter O
for the digit 0, and with the separators left out or spaced; all of that is accepted here.
"""

from __future__ import annotations

import datetime as dt
import re

_D = "[0-9O]"
_CODE = re.compile(
    rf"(?<![0-9])({_D}{{3}})\.?({_D}{{2}})\.?({_D}{{2}})\.?([A-Z])({_D}{{2}})[-‐–—_/.]?({_D}{{6}})[-‐–—_/.]?({_D}{{4}})(?![0-9])"
)
_SPACES = re.compile(r"\s+")
_DIGIT_SEPARATORS = re.compile(r"(?<=\d)[\s.\-]+(?=\d)")
_DIGIT_RUN = re.compile(r"\d+")

LAST4_OK = "ok"
LAST4_FULL_NUMBER = "full_number"
LAST4_INVALID = "invalid"


def _digits(group: str) -> str:
    return group.replace("O", "0")


def extract_code(text: str) -> str | None:
    """The first well-formed dossier code in ``text``, in canonical upper-case form; ``None`` if there is none.

    The receipt date must be a real calendar date, so ``…-251341-…`` is rejected.
    """
    compact = _SPACES.sub("", text).upper()
    for match in _CODE.finditer(compact):
        agency1, agency2, agency3, letter, unit, date, seq = match.groups()
        date = _digits(date)
        try:
            dt.datetime.strptime(date, "%y%m%d")
        except ValueError:
            continue
        return f"{_digits(agency1)}.{_digits(agency2)}.{_digits(agency3)}.{letter}{_digits(unit)}-{date}-{_digits(seq)}"
    return None


def parse_last4(text: str) -> tuple[str | None, str]:
    """The four verification digits in ``text`` and why they were (not) accepted.

    Returns ``(digits, "ok")`` for exactly one run of four digits (``"12 34"`` counts; a lone ``4`` in
    "4 số cuối 6789" is ignored),
    ``(None, "full_number")`` when a whole phone or ID number was typed, else ``(None, "invalid")``.
    """
    runs = _DIGIT_RUN.findall(_DIGIT_SEPARATORS.sub("", text))
    if any(len(run) >= 9 for run in runs):
        return None, LAST4_FULL_NUMBER
    fours = [run for run in runs if len(run) == 4]
    if len(fours) == 1:
        return fours[0], LAST4_OK
    return None, LAST4_INVALID
