"""The gateway's ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.channels import telegram, webchat, zalo
from bot.channels.telegram_limits import TelegramLimits
from bot.console import console
from bot.gateway import running_gateway
from bot.health import healthz
from bot.metrics import RefusedCounter
from bot.metrics import endpoint as metrics
from dvcbot import logmask, logs
from dvcbot.settings import Settings, get_settings

STATIC = Path(__file__).parent / "webchat" / "static"


async def index(_: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings | None = None, *, telegram_limits: TelegramLimits | None = None) -> Starlette:
    """Build the gateway for ``settings`` (the environment's when omitted)."""
    settings = settings or get_settings()
    logmask.install()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running_gateway(settings, telegram_limits) as gw:
            state = app.state
            state.settings, state.http, state.db, state.router = settings, gw.http, gw.db, gw.router
            state.intake, state.outbox, state.telegram, state.zalo = gw.intake, gw.outbox, gw.telegram, gw.zalo
            state.handoff = gw.handoff
            yield

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        *webchat.routes,
        *telegram.routes,
        *zalo.routes,
        Route("/console", lambda _: RedirectResponse("/console/", status_code=308)),
        console,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(RefusedCounter)])


def gateway_app() -> Starlette:
    """The gateway as its process runs it (``uvicorn bot.app:gateway_app --factory``): logging configured from
    ``DVCBOT_LOG_FORMAT`` / ``DVCBOT_LOG_LEVEL`` (uvicorn's own records included), then :func:`create_app`."""
    logs.configure_from_settings("gateway")
    return create_app()
