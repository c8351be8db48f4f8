"""Channel-neutral message types that every channel converts to and from, and what a sending channel provides.

Locations: a shared location reaches Rasa as the text ``/post_office_find`` (the intent, so that no NLU guess is
involved) with the REST channel metadata ``{"location": {"lat": <float>, "lon": <float>}}``; the actions read it
from ``tracker.latest_message["metadata"]["location"]``.

Gateway notices: some updates are answered by the gateway itself from ``data/content/gateway.yml`` without asking
Rasa — ``start`` (Telegram ``/start``, Zalo ``follow``: welcome, privacy notice, menu), ``unsupported_media``
(stickers, voice, photos, files) and ``too_long``. Such a message carries the notice's key in ``notice``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from dvcbot.logmask import mask_transcript

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

POST_OFFICE_INTENT = "/post_office_find"


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class IncomingMessage:
    """What a citizen sent, whatever the platform."""

    channel: str
    user_id: str
    text: str
    display_name: str | None = None
    shown_text: str | None = None  # what the citizen saw (a button's title) when ``text`` is a payload
    metadata: dict[str, Any] = field(default_factory=dict)  # passed to Rasa, e.g. {"location": {...}}
    notice: str | None = None  # answered by the gateway with this text of gateway.yml, not by Rasa

    def __post_init__(self) -> None:
        # C0 control characters (NUL above all: PostgreSQL cannot store it in text) carry nothing a citizen meant
        for name in ("text", "shown_text", "display_name"):
            value = getattr(self, name)
            if isinstance(value, str) and _CONTROL.search(value):
                object.__setattr__(self, name, _CONTROL.sub("", value))

    @property
    def conversation_key(self) -> str:
        """The Rasa sender id."""
        return f"{self.channel}:{self.user_id}"

    @property
    def transcript_text(self) -> str:
        """What the transcript (and the staff) see: CCCD/phone numbers and verification digits masked."""
        return mask_transcript(self.shown_text or self.text)

    @classmethod
    def location(cls, channel: str, user_id: str, lat: float, lon: float, **kw: Any) -> IncomingMessage:
        """A shared location, in the form the actions expect (see the module docstring)."""
        return cls(channel, user_id, POST_OFFICE_INTENT, shown_text=f"📍 {lat:.5f}, {lon:.5f}",
                   metadata={"location": {"lat": lat, "lon": lon}}, **kw)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IncomingMessage:
        return cls(**data)


@dataclass
class OutgoingMessage:
    """One reply: text with optional buttons, image or custom payload."""

    text: str | None = None
    buttons: list[Button] = field(default_factory=list)
    image: str | None = None
    custom: dict[str, Any] | None = None
    id: int | None = None
    sender: str = "bot"

    @classmethod
    def from_rasa(cls, data: dict[str, Any]) -> OutgoingMessage:
        """Convert one item of Rasa's REST channel answer."""
        buttons = [
            Button(str(b.get("title", "")), str(b.get("payload", "")))
            for b in data.get("buttons") or []
            if isinstance(b, dict) and b.get("title")
        ]
        custom = data.get("custom")
        return cls(
            text=data.get("text"),
            buttons=buttons,
            image=data.get("image"),
            custom=custom if isinstance(custom, dict) else None,
        )

    @property
    def visible(self) -> bool:
        """Whether a person sees anything of it (custom payloads are for the gateway only)."""
        return bool(self.text or self.buttons or self.image)

    def payload_dict(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if self.buttons:
            out["buttons"] = [b.as_dict() for b in self.buttons]
        if self.image:
            out["image"] = self.image
        if self.custom:
            out["custom"] = self.custom
        return out or None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "sender": self.sender, "text": self.text,
                                "buttons": [b.as_dict() for b in self.buttons]}
        if self.image:
            data["image"] = self.image
        return data


class RetryLater(Exception):
    """The platform asked us to wait (HTTP 429 ``retry_after``) or failed for now (5xx, network)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay  # seconds the platform advised; None: the outbox backs off by itself


class Undeliverable(Exception):
    """The platform refused the message for good (blocked bot, outside the reply window); recorded, not retried."""


class PushChannel(Protocol):
    """A channel whose replies the outbox sends (Telegram, Zalo); the web chat is pulled instead."""

    name: str

    def render(self, session: Session, reply: OutgoingMessage) -> list[dict[str, Any]]:
        """Turn one reply into the bodies of the platform calls that show it (long texts split, buttons mapped)."""
        ...

    async def deliver(self, recipient: str, body: dict[str, Any]) -> None:
        """Make one platform call; raise ``RetryLater`` or ``Undeliverable`` when it does not go through."""
        ...


def split_text(text: str, limit: int, size: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` (measured by ``size``), at paragraph, line or word breaks."""
    chunks: list[str] = []
    rest = text.strip()
    while size(rest) > limit:
        cut = _longest_prefix(rest, limit, size)
        head = rest[:cut]
        for sep in ("\n\n", "\n", " "):
            at = head.rfind(sep)
            if at > cut // 2:
                head = rest[:at]
                break
        chunks.append(head.rstrip())
        rest = rest[len(head):].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


def _longest_prefix(text: str, limit: int, size: Callable[[str], int]) -> int:
    """The length of the longest prefix of ``text`` whose size is within ``limit`` (binary search)."""
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return max(lo, 1)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the way Telegram counts message length."""
    return len(text.encode("utf-16-le")) // 2
