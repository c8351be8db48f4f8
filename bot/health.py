"""``GET /healthz``: the database, Rasa and the action server, each up or down."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.rasa_client import RasaUnavailable


async def healthz(request: Request) -> Response:
    state = request.app.state
    checks: dict[str, dict[str, str]] = {}

    try:
        await state.db.run(lambda s: s.execute(text("SELECT 1")))
        checks["database"] = {"status": "up"}
    except Exception as exc:  # any driver error means down
        checks["database"] = {"status": "down", "error": type(exc).__name__}

    try:
        status = await state.router.rasa.status()
        model = str(status.get("model_file") or "")
        checks["rasa"] = {"status": "up", "model": model.rsplit("/", 1)[-1]} if model else {
            "status": "down", "error": "no model loaded"}
    except RasaUnavailable as exc:
        checks["rasa"] = {"status": "down", "error": str(exc)[:200]}

    try:
        resp = await state.http.get(f"{state.settings.actions_url}/health", timeout=3.0)
        checks["actions"] = {"status": "up"} if resp.status_code == 200 else {
            "status": "down", "error": f"HTTP {resp.status_code}"}
    except httpx.HTTPError as exc:
        checks["actions"] = {"status": "down", "error": type(exc).__name__}

    ok = all(c["status"] == "up" for c in checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)


