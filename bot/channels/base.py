"""Channel-neutral message types that every channel converts to and from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    client_id: str | None = None  # the platform's own id of this update, for idempotency
    shown_text: str | None = None  # what the citizen saw (a button's title) when ``text`` is a payload

    @property
    def conversation_key(self) -> str:
        """The Rasa sender id."""
        return f"{self.channel}:{self.user_id}"


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
