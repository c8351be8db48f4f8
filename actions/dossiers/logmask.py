"""Personal numbers out of the action server's logs: phone and CCCD numbers are masked in every log record.

A run of nine or more digits (``0912345678``, ``0912 345 678``, ``001099012345``) keeps only its last three
digits. The format and the ``masks_personal_numbers`` marker are the gateway's (``bot/logmask.py``), so that
whichever process installs masking first, the result is the same and records are masked once.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_NUMBER = re.compile(r"(?<!\d)\+?\d(?:[ .\-]?\d){8,}(?!\d)")
_VISIBLE = 3
MARKER = "masks_personal_numbers"


def _hide(match: re.Match[str]) -> str:
    chars = list(match.group())
    visible = _VISIBLE
    for i in range(len(chars) - 1, -1, -1):
        if chars[i].isdigit():
            if visible:
                visible -= 1
            else:
                chars[i] = "*"
    return "".join(chars)


def mask(text: str) -> str:
    """``text`` with every personal-number-like digit run masked but for its last three digits."""
    return _NUMBER.sub(_hide, text)


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is not ours to fix here
        return
    masked = mask(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))


class MaskingFilter(logging.Filter):
    """A filter that masks personal numbers in a record, for handlers set up elsewhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True


def install() -> None:
    """Mask every record created from now on in this process, whatever logger or handler it goes through."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, MARKER, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _mask_record(record)
        return record

    setattr(factory, MARKER, True)
    logging.setLogRecordFactory(factory)
