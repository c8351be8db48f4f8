"""A fake Rasa server speaking the REST channel and ``/status``, for gateway unit tests.

The end-to-end tests use the real Rasa server; this one lets the gateway's own behaviour (storage, errors,
ordering) be tested quickly and deterministically.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class FakeRasa:
    token: str = "test-token"
    mode: str = "echo"  # echo | error | empty | slow
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)
    max_total_in_flight: int = 0  # messages of all senders at once
    replies: list[dict[str, Any]] | None = None  # answer this instead of the echo
    script: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # answers to particular messages
    peers: set[int] = field(default_factory=set)  # the client ports messages came from (one per connection)

    def messages(self, sender: str) -> list[str]:
        """The texts Rasa received from ``sender``, in order."""
        return [b["message"] for b in self.received if b["sender"] == sender]

    async def webhook(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(body)
        if request.client is not None:
            self.peers.add(request.client.port)
        sender = body["sender"]
        self.in_flight[sender] = self.in_flight.get(sender, 0) + 1
        self.max_in_flight[sender] = max(self.max_in_flight.get(sender, 0), self.in_flight[sender])
        self.max_total_in_flight = max(self.max_total_in_flight, sum(self.in_flight.values()))
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight[sender] -= 1
        if self.mode == "error":
            return JSONResponse({"error": "boom"}, status_code=500)
        if self.mode == "empty":
            return JSONResponse([])
        if self.replies is not None or body["message"] in self.script:
            replies = self.script.get(body["message"], self.replies or [])
            return JSONResponse([{"recipient_id": sender, **r} for r in replies])
        return JSONResponse([
            {"recipient_id": body["sender"], "text": f"echo: {body['message']}",
             "buttons": [{"title": "Lệ phí", "payload": "/procedure_fee"}]},
            {"recipient_id": body["sender"], "custom": {"note": "hidden"}},
        ])

    async def status(self, request: Request) -> Response:
        if request.query_params.get("token") != self.token:
            return JSONResponse({"message": "unauthorized"}, status_code=401)
        return JSONResponse({"model_file": "models/fake.tar.gz"})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/webhooks/rest/webhook", self.webhook, methods=["POST"]),
            Route("/status", self.status),
        ])
