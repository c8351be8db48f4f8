"""A fake Zalo Official Account Open API (``/v3.0/oa/message/cs``) and OAuth server (``/v4/oa/access_token``).

Real HTTP on loopback for the gateway's httpx client. It checks the ``access_token`` header (a stale token gets
error -216, like Zalo), rotates the single-use refresh token on every refresh, records every call, and can be
told to fail calls (HTTP 429/5xx or a Zalo error code). Helpers build signed webhook events.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

APP_ID = "4100000000000000001"
APP_SECRET = "zalo-app-secret"
OA_SECRET_KEY = "zalo-oa-secret-key"
OA_ID = "579000000000000001"


@dataclass(frozen=True)
class Failure:
    """How to refuse one send: an HTTP status (429, 5xx) or, with status 200, a Zalo error code."""

    status: int = 200
    error: int = 0
    retry_after: int | None = None


@dataclass
class ZaloCall:
    user_id: str
    message: dict[str, Any]
    token: str
    at: float
    accepted: bool

    @property
    def text(self) -> str | None:
        return self.message.get("text")


@dataclass
class FakeZalo:
    app_id: str = APP_ID
    app_secret: str = APP_SECRET
    access_token: str = field(default_factory=lambda: "at-" + secrets.token_hex(8))
    refresh_token: str = field(default_factory=lambda: "rt-" + secrets.token_hex(8))
    calls: list[ZaloCall] = field(default_factory=list)
    refreshes: int = 0
    fail: Callable[[str, dict[str, Any]], Failure | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, user_id: str | None = None) -> list[ZaloCall]:
        with self._lock:
            return [c for c in self.calls if c.accepted and (user_id is None or c.user_id == user_id)]

    def texts(self, user_id: str) -> list[str]:
        return [c.text or "" for c in self.sent(user_id)]

    def expire_access_token(self) -> None:
        """The current access token stops working (Zalo's tokens last about 25 hours)."""
        self.access_token = "at-" + secrets.token_hex(8)

    async def send(self, request: Request) -> Response:
        body = await request.json()
        token = request.headers.get("access_token", "")
        user_id = str(body.get("recipient", {}).get("user_id", ""))
        message = body.get("message", {})
        failure = self.fail(user_id, message) if self.fail else None
        if failure is None and token != self.access_token:
            failure = Failure(error=-216)
        with self._lock:
            self.calls.append(ZaloCall(user_id, message, token, time.monotonic(), failure is None))
        if failure is None:
            return JSONResponse({"error": 0, "message": "Success",
                                 "data": {"message_id": secrets.token_hex(8), "user_id": user_id}})
        if failure.status != 200:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return JSONResponse({"error": -32, "message": "busy"}, status_code=failure.status, headers=headers)
        messages = {-216: "Access token is invalid", -230: "User has not interacted with the OA in the past 7 days"}
        return JSONResponse({"error": failure.error, "message": messages.get(failure.error, "refused")})

    async def oauth(self, request: Request) -> Response:
        form = await request.form()
        if request.headers.get("secret_key") != self.app_secret or form.get("app_id") != self.app_id:
            return JSONResponse({"error": -14002, "error_name": "Invalid app", "error_description": "bad app"})
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return JSONResponse({"error": -14014, "error_name": "Invalid refresh token",
                                 "error_description": "refresh token is invalid or was already used"})
        with self._lock:
            self.refreshes += 1
            self.access_token = "at-" + secrets.token_hex(8)
            self.refresh_token = "rt-" + secrets.token_hex(8)
        return JSONResponse({"access_token": self.access_token, "refresh_token": self.refresh_token,
                             "expires_in": "90000"})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v3.0/oa/message/cs", self.send, methods=["POST"]),
            Route("/v4/oa/access_token", self.oauth, methods=["POST"]),
        ])


# --- webhook events as Zalo sends them ----------------------------------------------------------------------

def _event(name: str, user_id: str, **extra: Any) -> dict[str, Any]:
    return {"app_id": APP_ID, "event_name": name, "sender": {"id": user_id}, "recipient": {"id": OA_ID},
            "user_id_by_app": "u" + user_id, "timestamp": str(int(time.time() * 1000)), **extra}


def text_event(user_id: str, text: str, msg_id: str) -> dict[str, Any]:
    return _event("user_send_text", user_id, message={"msg_id": msg_id, "text": text})


def location_event(user_id: str, lat: float, lon: float, msg_id: str) -> dict[str, Any]:
    return _event("user_send_location", user_id, message={"msg_id": msg_id, "text": "", "attachments": [
        {"type": "location", "payload": {"coordinates": {"latitude": str(lat), "longitude": str(lon)}}}]})


def media_event(name: str, user_id: str, msg_id: str) -> dict[str, Any]:
    kind = name.removeprefix("user_send_")
    return _event(name, user_id, message={"msg_id": msg_id, "attachments": [
        {"type": kind, "payload": {"url": "https://example.invalid/x", "id": "a1"}}]})


def follow_event(user_id: str) -> dict[str, Any]:
    return {"app_id": APP_ID, "event_name": "follow", "oa_id": OA_ID, "follower": {"id": user_id},
            "source": "oa_profile", "timestamp": str(int(time.time() * 1000))}


def signed(event: dict[str, Any], oa_secret_key: str = OA_SECRET_KEY, app_id: str = APP_ID) -> tuple[bytes, dict[
        str, str]]:
    """The body and headers of a webhook call as Zalo signs it."""
    body = json.dumps(event, ensure_ascii=False).encode()
    mac = hashlib.sha256(app_id.encode() + body + str(event["timestamp"]).encode() + oa_secret_key.encode())
    return body, {"X-ZEvent-Signature": f"mac={mac.hexdigest()}", "Content-Type": "application/json"}
