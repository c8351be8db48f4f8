"""A fake Telegram Bot API on loopback: the real python-telegram-bot client talks to it through ``base_url``.

It answers the methods the gateway uses, records every call (accepted or not, with its arrival time, so tests
can check the rate limits), can be told to fail calls (429 with ``retry_after``, 5xx, 403), and serves
``getUpdates`` from a queue for the long-polling mode. A negative chat id is a supergroup with forum topics:
``createForumTopic``/``closeForumTopic`` work and ``message_thread_id`` is kept (a thread that was never created
is refused like Telegram does). Helpers at the bottom build the updates a citizen's client, or a staff member in
the staff group, would cause.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "123456:TEST-token"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Trợ lý DVC", "username": "dvc_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
SEND_METHODS = {"sendMessage", "sendPhoto"}
STAFF_GROUP = -1001234567890


@dataclass(frozen=True)
class Failure:
    """How to refuse one call: the HTTP status, and ``retry_after`` for 429."""

    status: int
    retry_after: int | None = None
    description: str = "failure injected by the test"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() on arrival
    accepted: bool

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str | None:
        return self.params.get("text")

    @property
    def thread(self) -> int | None:
        value = self.params.get("message_thread_id")
        return int(value) if value is not None else None

    @property
    def buttons(self) -> list[dict[str, str]]:
        markup = self.params.get("reply_markup") or {}
        return [b for row in markup.get("inline_keyboard", []) for b in row]


def _decode(value: str) -> Any:
    """PTB sends non-string parameters JSON-encoded."""
    try:
        return json.loads(value)
    except ValueError:
        return value


@dataclass
class FakeTelegram:
    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    fail: Callable[[str, dict[str, Any]], Failure | None] | None = None
    pending_updates: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    topics: dict[int, str] = field(default_factory=dict)  # forum topics created: thread id → name
    closed_topics: set[int] = field(default_factory=set)
    forum: bool = True  # False: createForumTopic is refused (the group is not a forum)
    delay: float = 0.0  # seconds each call takes
    peers: set[int] = field(default_factory=set)  # the client ports calls came from (one per connection)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1
    _next_thread: int = 500

    # --- what tests look at ----------------------------------------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Messages Telegram accepted (``sendMessage``/``sendPhoto``), optionally for one chat."""
        with self._lock:
            return [c for c in self.calls if c.method in SEND_METHODS and c.accepted
                    and (chat_id is None or c.chat_id == chat_id)]

    def texts(self, chat_id: int) -> list[str]:
        return [c.text or "" for c in self.sent(chat_id)]

    def in_topic(self, thread: int, chat_id: int = STAFF_GROUP) -> list[Call]:
        """Messages accepted in one forum topic of a group."""
        return [c for c in self.sent(chat_id) if c.thread == thread]

    def topic_texts(self, thread: int, chat_id: int = STAFF_GROUP) -> list[str]:
        return [c.text or "" for c in self.in_topic(thread, chat_id)]

    def topic_named(self, prefix: str) -> int:
        """The thread id of the topic whose name starts with ``prefix``."""
        with self._lock:
            return next(t for t, name in self.topics.items() if name.startswith(prefix))

    def attempts(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method in SEND_METHODS]

    def answered_callbacks(self) -> list[str]:
        with self._lock:
            return [c.params["callback_query_id"] for c in self.calls if c.method == "answerCallbackQuery"]

    def push_update(self, update: dict[str, Any]) -> None:
        with self._lock:
            self.pending_updates.append(update)

    # --- the API -------------------------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        method = request.path_params["method"]
        if request.client is not None:
            with self._lock:
                self.peers.add(request.client.port)
        if self.delay:
            await asyncio.sleep(self.delay)
        form = await request.form()
        params = {k: _decode(v) if k != "text" else v for k, v in form.items() if isinstance(v, str)}
        failure = self.fail(method, params) if self.fail and method in SEND_METHODS else None
        with self._lock:
            self.calls.append(Call(method, params, time.monotonic(), failure is None))
        if failure is not None:
            return self._failure(failure)
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)
        thread = params.get("message_thread_id")
        if thread is not None and int(thread) not in self.topics:
            return self._failure(Failure(400, description="Bad Request: message thread not found"))
        result = await handler(params)
        if isinstance(result, Failure):
            return self._failure(result)
        return JSONResponse({"ok": True, "result": result})

    @staticmethod
    def _failure(failure: Failure) -> Response:
        body: dict[str, Any] = {"ok": False, "error_code": failure.status, "description": failure.description}
        if failure.retry_after is not None:
            body["parameters"] = {"retry_after": failure.retry_after}
            body["description"] = f"Too Many Requests: retry after {failure.retry_after}"
        return JSONResponse(body, status_code=failure.status)

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        with self._lock:
            message_id, self._next_id = self._next_id, self._next_id + 1
        chat_id = int(params["chat_id"])
        chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        if chat_id < 0:
            chat.update(title="Nhân viên bưu điện", is_forum=self.forum)
        if params.get("message_thread_id") is not None:
            extra.update(message_thread_id=int(params["message_thread_id"]), is_topic_message=True)
        return {"message_id": message_id, "date": int(time.time()), "chat": chat, **extra}

    async def _getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    async def _sendMessage(self, params: dict[str, Any]) -> Any:
        extra = {"text": params["text"]}
        if params.get("reply_markup"):
            extra["reply_markup"] = params["reply_markup"]
        return self._message(params, **extra)

    async def _sendPhoto(self, params: dict[str, Any]) -> Any:
        return self._message(params, photo=[{"file_id": "p1", "file_unique_id": "p1", "width": 1, "height": 1}])

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    async def _createForumTopic(self, params: dict[str, Any]) -> Any:
        if not self.forum or int(params["chat_id"]) > 0:
            return Failure(400, description="Bad Request: the chat is not a forum")
        name = str(params["name"])
        if not 1 <= len(name) <= 128:
            return Failure(400, description="Bad Request: TOPIC_TITLE_INVALID")
        with self._lock:
            thread, self._next_thread = self._next_thread, self._next_thread + 1
            self.topics[thread] = name
        return {"message_thread_id": thread, "name": name, "icon_color": 7322096}

    async def _closeForumTopic(self, params: dict[str, Any]) -> Any:
        thread = int(params["message_thread_id"])
        if thread in self.closed_topics:
            return Failure(400, description="Bad Request: TOPIC_NOT_MODIFIED")
        self.closed_topics.add(thread)
        return True

    async def _setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {"url": params.get("url", ""), "secret_token": params.get("secret_token"),
                        "allowed_updates": params.get("allowed_updates")}
        return True

    async def _deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        return True

    async def _getWebhookInfo(self, params: dict[str, Any]) -> Any:
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0}

    async def _getUpdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 2.0)
        while True:
            with self._lock:
                self.pending_updates = [u for u in self.pending_updates if u["update_id"] >= offset]
                ready = list(self.pending_updates)
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.05)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/{method}", self.endpoint, methods=["GET", "POST"])])


# --- updates as a citizen's client causes them ---------------------------------------------------------------

def _user(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "is_bot": False, "first_name": "Nguyễn", "last_name": "Văn An", "language_code": "vi"}


def message_update(update_id: int, chat_id: int, **content: Any) -> dict[str, Any]:
    """A ``message`` update in a private chat with ``content`` (``text=...``, ``sticker=...``, ...)."""
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": int(time.time()), "from": _user(chat_id),
        "chat": {"id": chat_id, "type": "private", "first_name": "Nguyễn"}, **content}}


def text_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return message_update(update_id, chat_id, **content)


def location_update(update_id: int, chat_id: int, lat: float, lon: float) -> dict[str, Any]:
    return message_update(update_id, chat_id, location={"latitude": lat, "longitude": lon})


def sticker_update(update_id: int, chat_id: int) -> dict[str, Any]:
    return message_update(update_id, chat_id, sticker={
        "file_id": "s1", "file_unique_id": "s1", "type": "regular", "width": 512, "height": 512,
        "is_animated": False, "is_video": False})


def voice_update(update_id: int, chat_id: int) -> dict[str, Any]:
    return message_update(update_id, chat_id, voice={"file_id": "v1", "file_unique_id": "v1", "duration": 3})


def staff_user(user_id: int, first_name: str = "Lan") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "last_name": "Nguyễn", "language_code": "vi"}


def group_text_update(update_id: int, user_id: int, thread: int, text: str, first_name: str = "Lan",
                      chat_id: int = STAFF_GROUP) -> dict[str, Any]:
    """A staff member writes ``text`` in forum topic ``thread`` of the staff group."""
    message: dict[str, Any] = {
        "message_id": update_id, "date": int(time.time()), "from": staff_user(user_id, first_name),
        "chat": {"id": chat_id, "type": "supergroup", "title": "Nhân viên bưu điện", "is_forum": True},
        "message_thread_id": thread, "is_topic_message": True, "text": text}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": update_id, "message": message}


def group_callback_update(update_id: int, user_id: int, pressed: Call, title: str,
                          first_name: str = "Lan") -> dict[str, Any]:
    """A staff member presses the button called ``title`` under the bot's post ``pressed`` in the staff group."""
    button = next(b for b in pressed.buttons if b["text"] == title)
    message: dict[str, Any] = {
        "message_id": 1, "date": int(time.time()),
        "chat": {"id": pressed.chat_id, "type": "supergroup", "title": "Nhân viên bưu điện", "is_forum": True},
        "text": pressed.text or "", "reply_markup": pressed.params.get("reply_markup")}
    if pressed.thread is not None:
        message.update(message_thread_id=pressed.thread, is_topic_message=True)
    return {"update_id": update_id, "callback_query": {
        "id": f"cb{update_id}", "from": staff_user(user_id, first_name), "chat_instance": "staff",
        "data": button["callback_data"], "message": message}}


def callback_update(update_id: int, chat_id: int, pressed: Call, title: str) -> dict[str, Any]:
    """The citizen presses the button called ``title`` under the message ``pressed``."""
    button = next(b for b in pressed.buttons if b["text"] == title)
    return {"update_id": update_id, "callback_query": {
        "id": f"cb{update_id}", "from": _user(chat_id), "chat_instance": "ci", "data": button["callback_data"],
        "message": {"message_id": 1, "date": int(time.time()), "chat": {"id": chat_id, "type": "private"},
                    "text": pressed.text or "", "reply_markup": pressed.params.get("reply_markup")}}}
