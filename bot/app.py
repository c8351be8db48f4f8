"""The gateway's ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.channels import webchat
from bot.health import healthz
from bot.locks import LocalLocks, RedisLocks
from bot.rasa_client import RasaClient
from bot.router import Router
from bot.texts import GatewayTexts
from dvcbot.db import create_schema, make_engine, session_factory
from dvcbot.settings import Settings, get_settings

STATIC = Path(__file__).parent / "webchat" / "static"


async def index(_: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the gateway for ``settings`` (the environment's when omitted)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        create_schema(engine)
        async with httpx.AsyncClient() as http:
            token = settings.rasa_token.get_secret_value() if settings.rasa_token else None
            rasa = RasaClient(settings.rasa_url, token, settings.rasa_timeout, http)
            app.state.settings = settings
            app.state.http = http
            redis_client = redis.from_url(settings.redis_url) if settings.redis_url else None
            locks = RedisLocks(redis_client) if redis_client else LocalLocks()
            app.state.router = Router(session_factory(engine), rasa, GatewayTexts.load(), locks)
            yield
            if redis_client:
                await redis_client.aclose()
        engine.dispose()

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        *webchat.routes,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
