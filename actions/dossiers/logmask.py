"""Personal numbers out of the logs: runs of 9–12 digits (phone numbers, CCCD) are masked in every log record.

Installed once per process by the dossier actions. Digits may be grouped with spaces or dots
(``0912 345 678``); a dossier code's ``-YYMMDD-XXXX`` tail stays readable because hyphens break the run.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_NUMBER = re.compile(r"(?<![\d.])\d(?:[ .]?\d){8,11}(?![\d])")
_installed = False


def mask(text: str) -> str:
    """``text`` with every 9–12 digit run replaced by asterisks (separators kept)."""
    return _NUMBER.sub(lambda m: re.sub(r"\d", "*", m.group(0)), text)


class MaskingFilter(logging.Filter):
    """A filter that masks personal numbers in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is not ours to fix here
        return
    masked = mask(message)
    if masked != message:
        record.msg, record.args = masked, None


def install() -> None:
    """Mask every record created from now on in this process, whatever logger or handler it goes through."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _mask_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
