"""Personal numbers and bot tokens out of the logs of every process (gateway, action server, CLI): phone numbers
and CCCD-like digit runs are masked in every log record, keeping the last three digits; the secret half of a
Telegram bot token (``<bot id>:<secret>``, also inside a Bot API URL) is replaced by ``***``."""

from __future__ import annotations

import logging
import re
from typing import Any

# nine or more digits, optionally grouped by single spaces, dots or dashes ("0912 345 678", "001099012345")
PERSONAL_NUMBER = re.compile(r"(?<![\d])\+?\d(?:[ .\-]?\d){8,}(?![\d])")
KEEP = 3  # trailing digits left readable, enough to tell two records apart
# a Bot API URL (https://api.telegram.org/bot<id>:<secret>/sendMessage) whatever the token's length, and a bare
# token of the real shape (a numeric id, a colon, 30 or more URL-safe characters)
BOT_TOKEN = re.compile(r"(?<=/bot)(\d+):[^/\s\"']+|(?<![\w:])(\d{5,}):[A-Za-z0-9_\-]{30,}")


def mask(text: str) -> str:
    """``text`` with every long digit run masked except its last three digits."""

    def hide(match: re.Match[str]) -> str:
        run = match.group()
        total = sum(c.isdigit() for c in run)
        seen = 0
        out = []
        for c in run:
            if c.isdigit():
                seen += 1
                out.append(c if seen > total - KEEP else "*")
            else:
                out.append(c)
        return "".join(out)

    if ":" in text:
        text = BOT_TOKEN.sub(lambda m: f"{m.group(1) or m.group(2)}:***", text)
    return PERSONAL_NUMBER.sub(hide, text)


# a message that is only four digits answers "the last 4 digits of your phone" (dossier verification)
VERIFICATION_DIGITS = re.compile(r"^\s*\d{4}\s*$")


# a dossier code (Circular 01/2018/TT-VPCP) is not personal: staff need it whole
DOSSIER_CODE = re.compile(r"\d{3}\s*\.\s*\d{2}\s*\.\s*\d{2}\s*\.\s*[A-Za-z]\d{2}\s*[-\s]\s*\d{6}\s*[-\s]\s*\d{4}")


def mask_transcript(text: str) -> str:
    """What the transcript keeps of a citizen's message: personal numbers masked (dossier codes kept whole),
    verification digits hidden."""
    if VERIFICATION_DIGITS.match(text):
        return "****"
    out, last = [], 0
    for code in DOSSIER_CODE.finditer(text):
        out += [mask(text[last:code.start()]), code.group()]
        last = code.end()
    return "".join([*out, mask(text[last:])])


def mask_record(record: logging.LogRecord) -> None:
    """Mask a record's message and traceback in place (the formatter then uses the masked text)."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is logging's problem to report, not ours
        return
    masked = mask(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))


def install() -> None:
    """Mask every record created from now on, whichever logger or handler it goes to (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_personal_numbers", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        mask_record(record)
        return record

    factory.masks_personal_numbers = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class MaskingFilter(logging.Filter):
    """A filter that masks personal numbers in a record, for handlers set up elsewhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True
