"""The Zalo Official Account channel (Open API v3), with httpx.

- ``POST /webhooks/zalo`` verifies ``X-ZEvent-Signature: mac=<sha256(app_id + body + timestamp + OA secret
  key)>`` (``timestamp`` is the event's own field) and rejects anything else with 401 before storing.
- Events: ``user_send_text``, ``user_send_location``, ``follow`` (the welcome), and the media events
  (``user_send_image``, ``user_send_sticker``, …) that get the polite "please type" answer. Zalo's delivery and
  read receipts and ``unfollow`` are acknowledged and ignored; unknown event names get 400.
- Replies: ``POST {api}/v3.0/oa/message/cs`` with the ``access_token`` header; texts in parts of at most 2,000
  characters; buttons as numbered options (a citizen's answer "2" is the second option of the list, if the last
  message sent was one).
- Error -216 (expired token) refreshes the token and retries once; errors saying the citizen is outside the reply
  window are recorded on the outbox row and not retried; quota errors wait and retry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.channels.base import (
    Button,
    IncomingMessage,
    OutgoingMessage,
    RetryLater,
    Undeliverable,
    split_text,
)
from bot.channels.http import error, json_object, read_body, webhook_route
from bot.channels.zalo_tokens import ZaloCredentials, ZaloTokens
from bot.database import Database
from bot.models import OutboxEntry
from bot.ratelimit import Window, Windows
from bot.texts import GatewayTexts

CHANNEL = "zalo"
TEXT_LIMIT = 2000
MAX_BODY_BYTES = 256 * 1024
MEDIA_EVENTS = {"user_send_image", "user_send_sticker", "user_send_gif", "user_send_audio", "user_send_video",
                "user_send_file", "user_send_business_card"}
IGNORED_EVENTS = {"unfollow", "user_received_message", "user_seen_message", "user_reacted_message",
                  "oa_send_text", "oa_send_image", "oa_send_list", "oa_send_gif", "oa_send_file",
                  "oa_send_sticker"}
TOKEN_EXPIRED = -216
OUTSIDE_WINDOW = {-213, -230}  # the citizen has not written to the OA recently enough
QUOTA = {-211, -224}
QUOTA_WAIT = 600.0
NUMBER = re.compile(r"^\s*(\d{1,2})\s*\.?\s*$")


class BadEvent(ValueError):
    """A well-signed body that is not an event this channel understands."""


def signature(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """Zalo's ``X-ZEvent-Signature`` for ``body``: ``mac=`` and the SHA-256 hex digest."""
    digest = hashlib.sha256(app_id.encode() + body + timestamp.encode() + oa_secret_key.encode()).hexdigest()
    return f"mac={digest}"


def _id(obj: Any) -> str:
    value = obj.get("id") if isinstance(obj, dict) else None
    if not isinstance(value, str | int) or not str(value):
        raise BadEvent("event without a user id")
    return str(value)


def _coordinates(message: dict[str, Any]) -> tuple[float, float]:
    """A location event's latitude and longitude (attachment form, or a plain ``location`` object)."""
    candidates = [a.get("payload", {}).get("coordinates") for a in message.get("attachments") or []
                  if isinstance(a, dict) and isinstance(a.get("payload"), dict)]
    candidates.append(message.get("location"))
    for c in candidates:
        if isinstance(c, dict):
            try:
                lat, lon = float(c["latitude"]), float(c["longitude"])
            except (KeyError, TypeError, ValueError):
                continue
            if -90 <= lat <= 90 and -180 <= lon <= 180:
                return lat, lon
    raise BadEvent("location event without valid coordinates")


def classify(event: dict[str, Any], max_chars: int) -> tuple[str, IncomingMessage] | None:
    """``(platform id, message)`` for an event, or ``None`` for events that need no answer.

    Raises:
        BadEvent: an unknown event name or a malformed event.
    """
    name = event.get("event_name")
    if not isinstance(name, str):
        raise BadEvent("event_name missing")
    if name in IGNORED_EVENTS:
        return None
    if name == "follow":
        user = _id(event.get("follower"))
        return f"follow:{user}:{event.get('timestamp')}", IncomingMessage(CHANNEL, user, "/start", notice="start")
    if name != "user_send_text" and name != "user_send_location" and name not in MEDIA_EVENTS:
        raise BadEvent(f"unknown event type: {name[:50]}")
    user = _id(event.get("sender"))
    message = event.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("msg_id"), str | int):
        raise BadEvent("message event without message.msg_id")
    msg_id = f"msg:{message['msg_id']}"
    if name == "user_send_location":
        return msg_id, IncomingMessage.location(CHANNEL, user, *_coordinates(message))
    if name in MEDIA_EVENTS:
        kind = name.removeprefix("user_send_")
        return msg_id, IncomingMessage(CHANNEL, user, f"[{kind}]", notice="unsupported_media")
    text = message.get("text")
    if not isinstance(text, str):
        raise BadEvent("text event without message.text")
    text = text.strip()
    if not text:
        return msg_id, IncomingMessage(CHANNEL, user, "", notice="empty_text")
    if len(text) > max_chars:
        return msg_id, IncomingMessage(CHANNEL, user, text[:200] + "…", notice="too_long")
    return msg_id, IncomingMessage(CHANNEL, user, text)


def last_options(session: Session, user_id: str) -> list[Button]:
    """The numbered options of the last message sent to ``user_id``, if it was a list.

    Only the very last message counts: once anything else was said (a staff member's question, say), a bare
    number is an answer, not a choice from an older list.
    """
    body = session.scalar(
        select(OutboxEntry.body).where(OutboxEntry.channel == CHANNEL, OutboxEntry.recipient == user_id,
                                       OutboxEntry.status == "sent")
        .order_by(OutboxEntry.id.desc()).limit(1)
    )
    return [Button(o["title"], o["payload"]) for o in (body or {}).get("options") or []]


class Zalo:
    """The Zalo OA channel: reads events, renders and delivers replies."""

    name = CHANNEL

    def __init__(self, creds: ZaloCredentials, oa_secret_key: str, api_base: str, db: Database,
                 http: httpx.AsyncClient, texts: GatewayTexts, *, max_chars: int = 2000,
                 per_oa: tuple[int, float] = (1, 1 / 20), per_user: tuple[int, float] = (3, 3.0)) -> None:
        self.app_id = creds.app_id
        self.oa_secret_key = oa_secret_key
        self.api_base = api_base.rstrip("/")
        self.db = db
        self.http = http
        self.texts = texts
        self.max_chars = max_chars
        self.tokens = ZaloTokens(creds, db, http)
        self.oa_window = Window(*per_oa)
        self.user_windows = Windows(*per_user)

    # --- inbound ---------------------------------------------------------------------------------------------

    def verify(self, body: bytes, event: dict[str, Any], header: str) -> bool:
        timestamp = event.get("timestamp")
        if not isinstance(timestamp, str | int):
            return False
        expected = signature(self.app_id, body, str(timestamp), self.oa_secret_key)
        return hmac.compare_digest(header.strip().encode(), expected.encode())

    async def _choose(self, msg: IncomingMessage) -> IncomingMessage:
        """A bare number answers the last numbered list: it stands for that option's payload."""
        match = NUMBER.match(msg.text)
        if not match or msg.notice:
            return msg
        options = await self.db.run(lambda s: last_options(s, msg.user_id))
        index = int(match.group(1)) - 1
        if not 0 <= index < len(options):
            return msg
        return IncomingMessage(CHANNEL, msg.user_id, options[index].payload,
                               shown_text=f"{msg.text} ({options[index].title})")

    async def webhook(self, request: Request) -> Response:
        """``POST /webhooks/zalo``."""
        header = request.headers.get("x-zevent-signature", "")
        if not header:
            return error(401, "missing X-ZEvent-Signature")
        body = await read_body(request, MAX_BODY_BYTES)
        if isinstance(body, JSONResponse):
            return body
        event = json_object(body)
        if isinstance(event, JSONResponse):
            return event
        if not self.verify(body, event, header):
            return error(401, "bad X-ZEvent-Signature")
        try:
            classified = classify(event, self.max_chars)
        except BadEvent as exc:
            return error(400, str(exc))
        if classified is None:
            return JSONResponse({"ok": True, "event": "ignored"})
        platform_id, msg = classified
        msg = await self._choose(msg)
        intake = request.app.state.intake
        stored = await intake.store(CHANNEL, platform_id, msg)
        if not stored.duplicate:
            intake.schedule(msg.conversation_key)
        return JSONResponse({"ok": True, "event": "duplicate" if stored.duplicate else "stored"})

    # --- outbound --------------------------------------------------------------------------------------------

    def render(self, session: Session, reply: OutgoingMessage) -> list[dict[str, Any]]:
        """Image, then the text in parts of at most 2,000 characters; numbered options end the last part."""
        bodies: list[dict[str, Any]] = [{"image": reply.image}] if reply.image else []
        chunks = split_text(reply.text, TEXT_LIMIT) if reply.text else []
        if reply.buttons:
            listing = "\n".join(f"{i}. {b.title}" for i, b in enumerate(reply.buttons, 1))
            tail = f"{listing}\n{self.texts.message('choose_by_number').text}"
            if chunks and len(chunks[-1]) + 2 + len(tail) <= TEXT_LIMIT:
                chunks[-1] += "\n\n" + tail
            else:
                chunks += split_text(tail, TEXT_LIMIT)
        bodies += [{"text": chunk} for chunk in chunks]
        if reply.buttons:
            bodies[-1]["options"] = [b.as_dict() for b in reply.buttons]
        return bodies

    @staticmethod
    def _message(body: dict[str, Any]) -> dict[str, Any]:
        if "image" in body:
            return {"attachment": {"type": "template", "payload": {
                "template_type": "media", "elements": [{"media_type": "image", "url": body["image"]}]}}}
        return {"text": body["text"]}

    async def deliver(self, recipient: str, body: dict[str, Any]) -> None:
        """One ``message/cs`` call; refreshes the token once on -216."""
        await self.user_windows.acquire(recipient)
        await self.oa_window.acquire()
        request = {"recipient": {"user_id": recipient}, "message": self._message(body)}
        token = await self.tokens.current()
        for first in (True, False):
            code, description = await self._post(request, token)
            if code == 0:
                return
            if code == TOKEN_EXPIRED and first:
                token = await self.tokens.refresh(token)
                continue
            if code in OUTSIDE_WINDOW:
                raise Undeliverable(f"outside Zalo's reply window ({code}: {description})")
            if code in QUOTA:
                raise RetryLater(f"Zalo quota exhausted ({code}: {description})", QUOTA_WAIT)
            if code == TOKEN_EXPIRED:
                raise RetryLater(f"Zalo rejected the refreshed token too ({description})")
            raise Undeliverable(f"Zalo error {code}: {description}")

    async def _post(self, request: dict[str, Any], token: str) -> tuple[int, str]:
        try:
            resp = await self.http.post(f"{self.api_base}/v3.0/oa/message/cs", json=request,
                                        headers={"access_token": token}, timeout=15)
        except httpx.HTTPError as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            advised = resp.headers.get("retry-after", "")
            raise RetryLater(f"HTTP {resp.status_code}", float(advised) if advised.isdigit() else None)
        try:
            data = resp.json()
            return int(data.get("error", 0)), str(data.get("message", ""))
        except (ValueError, AttributeError, TypeError) as exc:
            raise RetryLater(f"HTTP {resp.status_code} with an unreadable answer") from exc


routes = [webhook_route("/webhooks/zalo", CHANNEL)]
