"""Console pages for content editors (and supervisors): the inbox of messages the bot did not understand, and
"Thử câu", which shows how the live model reads a sentence.

The inbox rows are written by the action server (:mod:`actions.editor.inbox`); labelling writes training examples
through :mod:`actions.editor.inbox_data` into ``DVCBOT_EDITOR_DATA_DIR``/nlu. "Thử câu" calls the running Rasa
server's ``POST /model/parse`` (nothing is stored, no conversation is touched).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from actions.editor import inbox, inbox_data
from actions.editor.models import InboxItem
from bot.console.auth import PATH, Principal, require_role, settings_of
from bot.console.views import local, render
from bot.database import db_of
from dvcbot import PROJECT_ROOT
from dvcbot.content import ContentPaths

ROLES = ("editor", "supervisor")
MAX_TRY = 500
MAX_SELECTED = 200
log = logging.getLogger(__name__)


def _paths(request: Request) -> ContentPaths:
    settings = settings_of(request)
    return inbox_data.content_paths(settings.editor_data_dir, settings.catalog_dir, settings.post_offices_file)


# --- inbox ------------------------------------------------------------------------------------------------------


def _groups(request: Request, session: Session) -> list[dict[str, Any]]:
    out = []
    for group in inbox.open_groups(session):
        out.append({
            "key": group.key, "size": len(group.items), "intents": group.intents, "top": group.top_intent,
            "fallbacks": group.fallbacks,
            "items": [{"id": i.id, "text": i.text, "intent": i.intent, "confidence": i.confidence,
                       "reason": i.reason, "channel": i.channel, "time": local(request, i.created_at)}
                      for i in group.items],
        })
    return out


async def _inbox(request: Request, status: int = 200, problems: list[str] | None = None,
                 notice: str | None = None) -> Response:
    paths = _paths(request)
    groups = await db_of(request).run(lambda s: _groups(request, s))
    intents, procedures = await anyio.to_thread.run_sync(
        lambda: (inbox_data.intents(paths), inbox_data.procedures(paths)))
    return render(request, "inbox.html", status, groups=groups, intents=intents, procedures=procedures,
                  problems=problems or [], notice=notice, nlu_file=paths.rel(paths.nlu / inbox_data.INBOX_FILE))


@require_role(*ROLES)
async def inbox_page(request: Request) -> Response:
    q = request.query_params
    notice = None
    if q.get("labelled", "").isdigit():
        notice = (f"Đã gán nhãn {q['labelled']} câu ({q.get('written', '0')} câu mới ghi vào "
                  f"{q.get('file', 'data/nlu')}). Khi xong, chạy make check rồi make train để bot học.")
    elif q.get("dismissed", "").isdigit():
        notice = f"Đã bỏ qua {q['dismissed']} câu."
    return await _inbox(request, notice=notice)


@require_role(*ROLES)
async def inbox_label(request: Request) -> Response:
    form = await request.form()
    ids = sorted({int(v) for v in form.getlist("item") if isinstance(v, str) and v.isdigit()})[:MAX_SELECTED]
    action = str(form.get("action") or "label")
    intent = str(form.get("intent") or "").strip()
    procedure = str(form.get("procedure") or "").strip() or None
    texts = {i: str(form.get(f"text-{i}")) for i in ids if isinstance(form.get(f"text-{i}"), str)}
    if not ids:
        return await _inbox(request, 400, ["Chưa chọn câu nào."])
    if action == "label" and not intent:
        return await _inbox(request, 400, ["Chọn một ý định cho các câu đã chọn."])
    me: Principal = request.state.staff
    paths = _paths(request)

    def work(session: Session) -> tuple[str, inbox_data.Outcome | int]:
        items = list(session.scalars(select(InboxItem).where(InboxItem.id.in_(ids), InboxItem.state == "open")
                                     .order_by(InboxItem.id)))
        if len(items) != len(ids):
            return "gone", 0
        if action == "dismiss":
            return "dismissed", inbox_data.dismiss(session, items, me.username)
        return "labelled", inbox_data.label(session, paths, items, intent, procedure, texts, me.username)

    kind, result = await db_of(request).run(work)
    if kind == "gone":
        return await _inbox(request, 409, ["Có câu đã được người khác xử lý. Trang đã được tải lại; anh/chị "
                                           "chọn lại rồi thử lần nữa."])
    if isinstance(result, int):
        log.info("%d inbox item(s) dismissed by %s", result, me.username)
        return RedirectResponse(f"{PATH}/inbox?dismissed={result}", status_code=303)
    if not result.ok:
        return await _inbox(request, 400, result.problems)
    log.info("%d inbox item(s) labelled %s by %s (%d written)", len(ids), intent, me.username, len(result.written))
    query = {"labelled": len(ids), "written": len(result.written),
             "file": paths.rel(paths.nlu / inbox_data.INBOX_FILE)}
    return RedirectResponse(f"{PATH}/inbox?{urlencode(query)}", status_code=303)


# --- try a sentence ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FallbackConfig:
    threshold: float
    ambiguity: float


@lru_cache(maxsize=2)
def fallback_config(path: Path = PROJECT_ROOT / "config.yml") -> FallbackConfig:
    """The FallbackClassifier's thresholds in ``config.yml`` (Rasa's defaults when it is not configured)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for component in data.get("pipeline") or []:
        if isinstance(component, dict) and component.get("name") == "FallbackClassifier":
            return FallbackConfig(float(component.get("threshold", 0.3)),
                                  float(component.get("ambiguity_threshold", 0.1)))
    return FallbackConfig(0.3, 0.1)


def rasa_token(request: Request) -> str | None:
    token = settings_of(request).rasa_token
    if token is not None:
        return token.get_secret_value()
    from dvcbot.supervisor import TOKEN_FILE  # written by `make run` when the token is generated

    try:
        return TOKEN_FILE.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class ParseFailed(Exception):
    """Rasa did not read the sentence; the message is for the editor."""


async def parse(request: Request, text: str) -> dict[str, Any]:
    settings = settings_of(request)
    http: httpx.AsyncClient = request.app.state.http
    params = {"token": token} if (token := rasa_token(request)) else {}
    try:
        resp = await http.post(f"{settings.rasa_url}/model/parse", params=params, json={"text": text},
                               timeout=min(settings.rasa_timeout, 10.0))
    except httpx.HTTPError as exc:
        log.warning("try-it: Rasa unreachable: %s", type(exc).__name__)
        raise ParseFailed("Không kết nối được với máy chủ Rasa (phần hiểu câu của bot). Bot có thể đang khởi động "
                          "hoặc đang tắt; anh/chị thử lại sau ít phút.") from exc
    if resp.status_code in (401, 403):
        raise ParseFailed("Máy chủ Rasa từ chối mã bảo vệ (token) của trang quản lý. Nhờ người quản trị kiểm tra "
                          "DVCBOT_RASA_TOKEN.")
    if resp.status_code != 200:
        raise ParseFailed(f"Máy chủ Rasa báo lỗi (mã {resp.status_code}). Anh/chị thử lại sau ít phút.")
    try:
        data = resp.json()
    except ValueError as exc:
        raise ParseFailed("Máy chủ Rasa trả lời không đúng dạng. Anh/chị thử lại sau ít phút.") from exc
    if not isinstance(data, dict):
        raise ParseFailed("Máy chủ Rasa trả lời không đúng dạng. Anh/chị thử lại sau ít phút.")
    return data


def reading(data: dict[str, Any], text: str, low_confidence: float) -> dict[str, Any]:
    """What the page shows of a parse result."""
    config = fallback_config()
    ranking = [(str(r.get("name")), float(r.get("confidence") or 0.0))
               for r in data.get("intent_ranking") or [] if isinstance(r, dict) and r.get("name")]
    real = [r for r in ranking if r[0] != inbox.FALLBACK_INTENT]
    intent = (data.get("intent") or {}).get("name")
    top = real[0][1] if real else 0.0
    gap = top - real[1][1] if len(real) > 1 else top
    why = None
    if intent == inbox.FALLBACK_INTENT:
        why = (f"độ tin cậy {top:.0%} dưới ngưỡng {config.threshold:.0%}" if top < config.threshold else
               f"hai ý định đầu chỉ cách nhau {gap:.0%}, dưới {config.ambiguity:.0%}")
    entities = []
    for e in data.get("entities") or []:
        if not isinstance(e, dict):
            continue
        start, end = e.get("start"), e.get("end")
        said = text[start:end] if isinstance(start, int) and isinstance(end, int) else ""
        entities.append({"entity": e.get("entity"), "value": e.get("value"), "text": said,
                         "extractor": e.get("extractor") or ""})
    return {"text": text, "normalized": data.get("normalized_text"), "intent": intent,
            "ranking": [{"name": n, "confidence": c} for n, c in real[:10]],
            "fallback": intent == inbox.FALLBACK_INTENT, "why": why, "entities": entities,
            "inbox": intent == inbox.FALLBACK_INTENT or top < low_confidence, "config": config}


@require_role(*ROLES)
async def try_page(request: Request) -> Response:
    return render(request, "try.html", result=None, error=None, text="", low=settings_of(request).inbox_low_confidence)


@require_role(*ROLES)
async def try_parse(request: Request) -> Response:
    form = await request.form()
    text = inbox_data.clean(str(form.get("text") or ""))[:MAX_TRY]
    low = settings_of(request).inbox_low_confidence
    if not text:
        return render(request, "try.html", 400, result=None, error="Anh/chị gõ một câu để thử.", text="", low=low)
    try:
        data = await parse(request, text)
    except ParseFailed as exc:
        return render(request, "try.html", 503, result=None, error=str(exc), text=text, low=low)
    return render(request, "try.html", result=reading(data, text, low), error=None, text=text, low=low)


routes = [
    Route("/inbox", inbox_page, methods=["GET"]),
    Route("/inbox/label", inbox_label, methods=["POST"]),
    Route("/try", try_page, methods=["GET"]),
    Route("/try", try_parse, methods=["POST"]),
]
