"""Request-body helpers shared by the web chat API and the platform webhooks: size limits and JSON objects."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def error(status: int, reason: str) -> JSONResponse:
    """A 4xx/5xx answer that says why, as ``{"error": reason}``."""
    return JSONResponse({"error": reason}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes | JSONResponse:
    """The raw body, or a 413 once it passes ``limit`` bytes (without reading the rest)."""
    too_big = error(413, f"request body larger than {limit} bytes")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        return too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return too_big
    return bytes(body)


def json_object(body: bytes) -> dict[str, Any] | JSONResponse:
    """``body`` parsed as a JSON object, or a 400 saying what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deeply nested JSON: a 400 like any bad body
        return error(400, "body must be JSON")
    if not isinstance(data, dict):
        return error(400, "body must be a JSON object")
    return data


async def read_json(request: Request, limit: int) -> dict[str, Any] | JSONResponse:
    """:func:`read_body` then :func:`json_object`."""
    body = await read_body(request, limit)
    return body if isinstance(body, JSONResponse) else json_object(body)


def webhook_route(path: str, channel: str) -> Route:
    """``POST path`` handed to ``app.state.<channel>.webhook``; 404 while that channel is not configured."""

    async def endpoint(request: Request) -> Response:
        handler = getattr(request.app.state, channel, None)
        if handler is None:
            return error(404, f"the {channel} channel is not configured")
        response: Response = await handler.webhook(request)
        return response

    return Route(path, endpoint, methods=["POST"])
