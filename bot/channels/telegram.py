"""The Telegram channel, on python-telegram-bot 22 living inside the gateway's ASGI app.

The PTB ``Application`` is built with ``updater(None)`` (the gateway's own server receives webhooks) and our
:class:`~bot.channels.telegram_limits.TelegramLimits` rate limiter; the gateway uses its bot to send and PTB's
types and filters to read updates. Updates do not go through PTB's in-memory ``update_queue``: they are stored
by :mod:`bot.intake` before Telegram gets its 200, which is what makes a crash lose nothing.

- ``POST /webhooks/telegram`` checks ``X-Telegram-Bot-Api-Secret-Token``; ``dvcbot telegram set-webhook``
  registers the URL with that secret. With ``DVCBOT_TELEGRAM_POLLING=true`` the gateway long-polls instead.
- The Rasa sender id is ``telegram:<chat id>`` (the user's id in a private chat).
- Buttons become inline keyboards; a payload longer than the 64 bytes of ``callback_data`` travels as
  ``#<id>`` of a :class:`~bot.models.ButtonPayload` row. Texts are split at 4,096 UTF-16 units.
- Updates from the staff group (``DVCBOT_STAFF_TELEGRAM_GROUP_ID``) are read by :mod:`bot.handoff_telegram`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram import Message as TgMessage
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application, ApplicationBuilder, filters

from bot.channels.base import IncomingMessage, OutgoingMessage, RetryLater, Undeliverable, split_text, utf16_len
from bot.channels.http import error, read_json, webhook_route
from bot.channels.telegram_limits import TelegramLimits
from bot.channels.telegram_request import LanesRequest
from bot.database import Database
from bot.intake import Intake
from bot.models import ButtonPayload

if TYPE_CHECKING:
    from bot.handoff_telegram import StaffGroup

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = 4096
CALLBACK_LIMIT = 64
MAX_BODY_BYTES = 256 * 1024
ALLOWED_UPDATES = ["message", "callback_query"]
WEBHOOK_PATH = "/webhooks/telegram"
MENU_COMMANDS = re.compile(r"^/(start|help|menu)(@\w+)?(\s|$)", re.IGNORECASE)
MEDIA = (filters.Sticker.ALL | filters.VOICE | filters.AUDIO | filters.PHOTO | filters.Document.ALL
         | filters.VIDEO | filters.VIDEO_NOTE | filters.ANIMATION | filters.CONTACT | filters.POLL | filters.Dice.ALL
         | filters.VENUE)
BOT_API_LANES = 16  # Bot API calls in flight at once (the rate limiter lets about 30 a second through)
BUTTONS_ONLY_TEXT = "⬇️"  # Telegram needs a text to hang a keyboard on


class UnsupportedUpdate(ValueError):
    """An update of no type this bot (or PTB) knows."""


def seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@asynccontextmanager
async def telegram_errors(undeliverable: bool = False) -> AsyncIterator[None]:
    """Map Telegram's errors for the outbox: ``RetryLater`` (flood control, network, 5xx) or ``Undeliverable``
    (blocked, chat gone; and refused content when ``undeliverable``, else ``BadRequest`` is raised as it is)."""
    try:
        yield
    except RetryAfter as exc:
        with warnings.catch_warnings():  # PTB warns about the int/timedelta transition
            warnings.simplefilter("ignore")
            delay = seconds(exc.retry_after)
        raise RetryLater(str(exc), delay) from exc
    except BadRequest as exc:
        if undeliverable:
            raise Undeliverable(f"{type(exc).__name__}: {exc}") from exc
        raise
    except (Forbidden, ChatMigrated) as exc:  # blocked, chat gone
        raise Undeliverable(f"{type(exc).__name__}: {exc}") from exc
    except TelegramError as exc:  # network, timeouts, 5xx, token trouble
        raise RetryLater(f"{type(exc).__name__}: {exc}") from exc


def callback_payload(session: Session, payload: str) -> str:
    """The ``callback_data`` standing for ``payload``: itself when it fits, else ``#<id>`` of a stored copy."""
    if len(payload.encode()) <= CALLBACK_LIMIT and not payload.startswith("#"):
        return payload
    digest = hashlib.sha256(payload.encode()).hexdigest()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(ButtonPayload).values(digest=digest, payload=payload)
                    .on_conflict_do_nothing(index_elements=["digest"]))
    return f"#{session.scalars(select(ButtonPayload.id).where(ButtonPayload.digest == digest)).one()}"


def button_title(query: CallbackQuery) -> str | None:
    """The title of the pressed button, read from the keyboard of the message it belongs to."""
    message = query.message
    if not isinstance(message, TgMessage) or message.reply_markup is None:
        return None
    for row in message.reply_markup.inline_keyboard:
        for button in row:
            if button.callback_data == query.data:
                return button.text
    return None


def classify(update: Update, max_chars: int) -> IncomingMessage | None:
    """The channel-neutral message for ``update``; ``None`` for updates that need no answer.

    Raises:
        UnsupportedUpdate: the update carries nothing of a known type.
    """
    if not any(getattr(update, kind, None) is not None for kind in Update.ALL_TYPES):
        raise UnsupportedUpdate("the update has no known type")
    user = update.effective_user
    name = user.full_name if user else None
    query = update.callback_query
    if query is not None:
        chat_id = query.message.chat.id if query.message else query.from_user.id
        data = query.data or ""
        return IncomingMessage(CHANNEL, str(chat_id), data, display_name=name, shown_text=button_title(query) or data)
    message = update.message
    if message is None:
        return None  # edited messages, membership changes, ...: nothing to answer
    chat = str(message.chat.id)
    if message.location is not None:
        loc = message.location
        return IncomingMessage.location(CHANNEL, chat, loc.latitude, loc.longitude, display_name=name)
    text = (message.text or "").strip()
    if text:
        if MENU_COMMANDS.match(text):
            return IncomingMessage(CHANNEL, chat, text, display_name=name, notice="start")
        if len(text) > max_chars:
            return IncomingMessage(CHANNEL, chat, text[:200] + "…", display_name=name, notice="too_long")
        if filters.COMMAND.check_update(update):  # an unknown /command: let the NLU read the words
            text = text[1:].replace("_", " ")
        return IncomingMessage(CHANNEL, chat, text, display_name=name)
    if MEDIA.check_update(update):
        kind = next((k for k in ("sticker", "voice", "audio", "photo", "document", "video", "video_note",
                                 "animation", "contact", "poll", "dice", "venue") if getattr(message, k)), "media")
        return IncomingMessage(CHANNEL, chat, f"[{kind}]", display_name=name, notice="unsupported_media")
    return None  # service messages (members joined, pins, ...)


def build_application(token: str, api_base: str, limits: TelegramLimits) -> Application[Any, Any, Any, Any, Any, Any]:
    """The PTB application: our server receives updates (``updater(None)``), PTB's bot sends."""
    base = api_base.rstrip("/")
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = ApplicationBuilder()
    return (builder.token(token).base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
            .updater(None).job_queue(None).rate_limiter(limits).request(LanesRequest(BOT_API_LANES)).build())


class Telegram:
    """The Telegram channel: reads updates, renders and delivers replies."""

    name = CHANNEL

    def __init__(self, token: str, secret: str | None, api_base: str, db: Database, *, max_chars: int = 2000,
                 limits: TelegramLimits | None = None) -> None:
        self.secret = secret
        self.bot_id = token.split(":", 1)[0]
        self.db = db
        self.max_chars = max_chars
        self.application = build_application(token, api_base, limits or TelegramLimits())
        self.staff: StaffGroup | None = None  # the staff group, when handoff to Telegram staff is configured
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def bot(self) -> Any:
        return self.application.bot

    async def start(self) -> None:
        """Open PTB's HTTP pools and check the token; an unreachable API is not fatal (the outbox retries)."""
        try:
            await self.application.initialize()
        except TelegramError as exc:
            log.error("Telegram API not usable at start (%s); replies wait in the outbox", exc)

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        try:
            await self.application.shutdown()
        except (TelegramError, RuntimeError) as exc:
            log.warning("Telegram shutdown: %s", exc)

    # --- inbound ---------------------------------------------------------------------------------------------

    async def accept(self, update: Update, intake: Intake) -> str:
        """Store ``update`` and schedule it; returns ``stored``, ``duplicate`` or ``ignored``.

        Raises:
            UnsupportedUpdate: the update carries nothing of a known type.
        """
        if self.staff is not None and self.staff.owns(update):
            msg = self.staff.classify(update)
        else:
            msg = classify(update, self.max_chars)
        if msg is None:
            return "ignored"
        if update.callback_query is not None and msg.text.startswith("#"):
            msg = await self._resolve(msg)
        # update ids are counted per bot: a new bot token must not look like a redelivery
        stored = await intake.store(CHANNEL, f"{self.bot_id}:{update.update_id}", msg, seq=update.update_id)
        if stored.duplicate:
            return "duplicate"
        intake.schedule(msg.conversation_key)
        if update.callback_query is not None:
            self._in_background(self._answer_callback(update.callback_query.id))
        return "stored"

    async def _resolve(self, msg: IncomingMessage) -> IncomingMessage:
        """Swap ``#<id>`` callback data for the long payload it stands for."""
        ref = msg.text[1:]

        def lookup(session: Session) -> str | None:
            return session.scalar(select(ButtonPayload.payload).where(ButtonPayload.id == int(ref))) \
                if ref.isdigit() else None

        payload = await self.db.run(lookup, autocommit=True)
        if payload is None:
            return msg
        return IncomingMessage(msg.channel, msg.user_id, payload, display_name=msg.display_name,
                               shown_text=msg.shown_text if msg.shown_text != msg.text else payload)

    async def _answer_callback(self, query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(query_id)
        except TelegramError as exc:  # only the button's spinner is at stake
            log.info("answerCallbackQuery failed: %s", exc)

    def _in_background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def webhook(self, request: Request) -> Response:
        """``POST /webhooks/telegram``."""
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        if not self.secret or not hmac.compare_digest(given.encode(), self.secret.encode()):
            return error(401, "missing or wrong secret token")
        data = await read_json(request, MAX_BODY_BYTES)
        if isinstance(data, JSONResponse):
            return data
        update_id = data.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return error(400, "update_id must be an integer")
        if not 0 <= update_id < 2**63:
            return error(400, "update_id out of range")
        try:
            update = Update.de_json(data, self.bot)
        except Exception as exc:  # PTB raises whatever the malformed field provokes
            return error(400, f"not a Telegram update: {type(exc).__name__}")
        try:
            outcome = await self.accept(update, request.app.state.intake)
        except UnsupportedUpdate as exc:
            return error(400, str(exc))
        return JSONResponse({"ok": True, "update": outcome})

    async def poll(self, intake: Intake, wait: int = 25) -> None:
        """Long polling instead of the webhook (local use): fetch, store, then move the offset on."""
        await self.bot.delete_webhook()
        offset: int | None = None
        while True:
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=wait, allowed_updates=ALLOWED_UPDATES)
            except TimedOut:
                continue
            except TelegramError as exc:
                log.warning("getUpdates failed: %s", exc)
                await asyncio.sleep(5)
                continue
            for update in updates:
                try:
                    await self.accept(update, intake)
                except UnsupportedUpdate:
                    pass
                offset = update.update_id + 1  # only once stored: a crash before this refetches it

    # --- outbound --------------------------------------------------------------------------------------------

    def render(self, session: Session, reply: OutgoingMessage) -> list[dict[str, Any]]:
        """Photo, then the text in parts of at most 4,096 UTF-16 units; buttons go with the last part."""
        bodies: list[dict[str, Any]] = [{"photo": reply.image}] if reply.image else []
        chunks = split_text(reply.text, TEXT_LIMIT, utf16_len) if reply.text else []
        keyboard = [{"text": b.title, "data": callback_payload(session, b.payload)} for b in reply.buttons]
        if keyboard and not chunks:
            chunks = [BUTTONS_ONLY_TEXT]
        bodies += [{"text": chunk} for chunk in chunks]
        if keyboard:
            bodies[-1]["keyboard"] = keyboard
        return bodies

    async def deliver(self, recipient: str, body: dict[str, Any]) -> None:
        """One ``sendMessage``/``sendPhoto``; Telegram's errors mapped to retry-later or undeliverable."""
        keyboard = body.get("keyboard")
        markup = InlineKeyboardMarkup(
            [[InlineKeyboardButton(b["text"], callback_data=b["data"])] for b in keyboard]) if keyboard else None
        async with telegram_errors(undeliverable=True):  # blocked, chat gone, refused content: for good
            if "photo" in body:
                await self.bot.send_photo(int(recipient), body["photo"], reply_markup=markup)
            else:
                await self.bot.send_message(int(recipient), body["text"], reply_markup=markup)


routes = [webhook_route(WEBHOOK_PATH, CHANNEL)]
