"""The web chat channel: a JSON API for the page at ``/`` (and for tests and benchmarks)."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.channels.base import IncomingMessage
from bot.channels.http import error, read_json
from bot.database import db_of
from bot.intake import Intake
from bot.models import Conversation, WebchatSession
from bot.router import Router

CHANNEL = "webchat"
MAX_BODY_BYTES = 16 * 1024


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _router(request: Request) -> Router:
    router: Router = request.app.state.router
    return router


async def _conversation(request: Request) -> tuple[int, str] | None:
    """The id and Rasa sender key of the conversation the request's bearer token opened, in one read."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = _hash(token.strip())

    def lookup(session: Session) -> tuple[int, str] | None:
        row = session.execute(select(Conversation.id, Conversation.key)
                              .join(WebchatSession, WebchatSession.conversation_id == Conversation.id)
                              .where(WebchatSession.token_hash == digest)).first()
        return None if row is None else (row[0], row[1])

    return await db_of(request).run(lookup, autocommit=True)


async def create_session(request: Request) -> Response:
    """``POST /api/webchat/sessions`` → 201 ``{"session": token}``."""
    token = secrets.token_urlsafe(32)
    user_id = secrets.token_hex(12)

    def create(session: Session) -> None:
        conv = Conversation(key=f"{CHANNEL}:{user_id}", channel=CHANNEL)
        session.add(conv)
        session.flush()
        session.add(WebchatSession(token_hash=_hash(token), conversation_id=conv.id))
        session.commit()

    await db_of(request).run(create)
    return JSONResponse({"session": token}, status_code=201)


async def post_message(request: Request) -> Response:
    """``POST /api/webchat/messages`` with ``{"text": ...}`` (or a button's ``payload`` and ``title``)."""
    conversation = await _conversation(request)
    if conversation is None:
        return error(401, "missing or unknown session")
    conversation_id, key = conversation
    data = await read_json(request, MAX_BODY_BYTES)
    if isinstance(data, JSONResponse):
        return data
    payload, text, location = data.get("payload"), data.get("text"), data.get("location")
    client_id = data.get("client_id")
    if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= 100):
        return error(400, "client_id must be a string of 1 to 100 characters")
    limit = request.app.state.settings.webchat_max_chars
    point: tuple[float, float] | None = None
    if location is not None:
        point = _point(location)
        if point is None:
            return error(400, "location must be {\"lat\": -90..90, \"lon\": -180..180}")
    elif payload is not None:
        if not isinstance(payload, str) or not payload.startswith("/") or len(payload) > 500:
            return error(400, "payload must be a button payload starting with '/'")
        shown = text if isinstance(text, str) and text.strip() else payload
        message_text, shown_text = payload, shown[:limit]
    else:
        if not isinstance(text, str):
            return error(400, "text must be a string")
        text = text.strip()
        if not text:
            return error(400, "text is empty")
        if len(text) > limit:
            return error(413, f"text longer than {limit} characters")
        message_text, shown_text = text, None

    user_id = key.split(":", 1)[1]
    if point is not None:
        msg = IncomingMessage.location(CHANNEL, user_id, *point)
    else:
        msg = IncomingMessage(CHANNEL, user_id, message_text, shown_text=shown_text)
    # a client_id makes a retry idempotent; without one every request is a new message
    platform_id = f"{conversation_id}:{client_id or uuid.uuid4().hex}"
    intake: Intake = request.app.state.intake
    stored = await intake.store(CHANNEL, platform_id, msg)
    router = _router(request)
    router.await_answer(stored.id)
    try:
        await intake.drain(key)
        status, replies = await router.answers(stored.id)
    finally:
        router.forget_answer(stored.id)
    if status == "pending":
        return error(503, "the message is stored but could not be answered yet; fetch the answer later")
    cursor = max((r.id or 0 for r in replies), default=None)
    return JSONResponse({"messages": [r.as_json() for r in replies if r.visible], "cursor": cursor})


def _point(location: object) -> tuple[float, float] | None:
    """A shared location ``{"lat": .., "lon": ..}`` (from the browser's geolocation), if well-formed."""
    if not isinstance(location, dict):
        return None
    lat, lon = location.get("lat"), location.get("lon")
    if isinstance(lat, bool) or isinstance(lon, bool) or not isinstance(lat, int | float) \
            or not isinstance(lon, int | float):
        return None
    return (float(lat), float(lon)) if -90 <= lat <= 90 and -180 <= lon <= 180 else None


async def get_messages(request: Request) -> Response:
    """``GET /api/webchat/messages?after=<cursor>`` → replies that arrived after the cursor."""
    conversation = await _conversation(request)
    if conversation is None:
        return error(401, "missing or unknown session")
    conversation_id = conversation[0]
    after_raw = request.query_params.get("after", "0")
    if not after_raw.isdigit():
        return error(400, "after must be a non-negative integer")
    after = int(after_raw)
    replies = await _router(request).history(conversation_id, after)
    cursor = max((r.id or 0 for r in replies), default=after)
    return JSONResponse({"messages": [r.as_json() for r in replies if r.visible], "cursor": cursor})


routes = [
    Route("/api/webchat/sessions", create_session, methods=["POST"]),
    Route("/api/webchat/messages", post_message, methods=["POST"]),
    Route("/api/webchat/messages", get_messages, methods=["GET"]),
]
