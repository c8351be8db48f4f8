"""The fake Rasa server with the HTTP API's ``POST /model/parse`` as well, for the console's "Thử câu" page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.rasa import FakeRasa


@dataclass
class FakeRasaParse(FakeRasa):
    parses: dict[str, dict[str, Any]] = field(default_factory=dict)  # text -> what /model/parse answers
    parsed: list[str] = field(default_factory=list)

    async def parse(self, request: Request) -> Response:
        if request.query_params.get("token") != self.token:
            return JSONResponse({"message": "unauthorized"}, status_code=401)
        text = (await request.json())["text"]
        self.parsed.append(text)
        if text not in self.parses:
            return JSONResponse({"message": "unexpected text"}, status_code=500)
        return JSONResponse({"text": text, **self.parses[text]})

    def app(self) -> Starlette:
        app = super().app()
        app.router.routes.append(Route("/model/parse", self.parse, methods=["POST"]))
        return app
