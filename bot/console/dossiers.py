"""Console pages for the agent's dossier register: find a dossier, record its new status.

The register and its rules belong to the action server (:mod:`actions.dossiers.register`); this page is the
staff's way into it. A recorded change reaches citizens who follow the dossier through the change detection
(``dvcbot dossiers notify``, a process of ``make run``) and the gateway's notification relay.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from actions.dossiers import register
from actions.dossiers.codes import extract_code
from actions.dossiers.models import SHIPMENT_STATUSES, STATUSES, Dossier, StatusChange
from actions.dossiers.texts import parts as dossier_parts
from bot.console.auth import PATH, Principal, require_role
from bot.console.views import render
from bot.database import db_of

ROLES = ("staff", "supervisor")
log = logging.getLogger(__name__)


def _load(session: Session, code: str) -> tuple[Dossier | None, list[StatusChange]]:
    dossier = register.find(session, code)
    if dossier is None:
        return None, []
    steps = session.scalars(select(StatusChange).where(StatusChange.dossier_id == dossier.id)
                            .order_by(StatusChange.id.desc())).all()
    return dossier, list(steps)


async def _page(request: Request, raw: str, error: str | None = None, status: int = 200,
                updated: bool = False) -> Response:
    code = extract_code(raw) if raw else None
    dossier, steps = (await db_of(request).run(lambda s: _load(s, code))) if code else (None, [])
    if raw and not error and dossier is None:
        error = "Không có hồ sơ nào với mã này trong sổ của điểm đại lý." if code else \
            "Mã hồ sơ không đúng định dạng (ví dụ 000.00.04.H26-261112-0012)."
    labels: dict[str, Any] = dossier_parts()
    return render(request, "dossiers.html", status, raw=raw, dossier=dossier, steps=steps, error=error,
                  updated=updated, statuses=STATUSES, shipment_statuses=SHIPMENT_STATUSES,
                  status_labels=labels["statuses"], shipment_labels=labels["shipment_statuses"])


@require_role(*ROLES)
async def dossiers_page(request: Request) -> Response:
    return await _page(request, request.query_params.get("code", "").strip()[:80],
                       updated=request.query_params.get("updated") == "1")


@require_role(*ROLES)
async def set_status(request: Request) -> Response:
    form = await request.form()

    def field(name: str) -> str | None:
        value = form.get(name)
        return value.strip()[:500] or None if isinstance(value, str) else None

    raw = field("code") or ""
    code = extract_code(raw)
    change = register.Change(field("status") or "", field("detail"), field("shipment_code"),
                             field("shipment_status"))
    problem = register.check_change(change)
    if code is None:
        problem = "Mã hồ sơ không đúng định dạng."
    elif problem:
        problem = "Tình trạng không hợp lệ (trạng thái 'Cần bổ sung giấy tờ' phải ghi rõ giấy tờ cần bổ sung)."
    if problem:
        return await _page(request, raw, problem, status=400)
    me: Principal = request.state.staff
    assert code is not None

    def save(session: Session) -> str | None:
        if register.find(session, code) is None:
            return "Không có hồ sơ nào với mã này trong sổ của điểm đại lý."
        try:
            register.set_status(session, code, change, source="staff")
        except register.StatusError:
            return "Trạng thái bưu gửi cần có mã bưu gửi."
        return None

    problem = await db_of(request).run(save)
    if problem:
        return await _page(request, raw, problem, status=400)
    log.info("dossier status set to %s by staff member %d", change.status, me.id)
    return RedirectResponse(f"{PATH}/dossiers?{urlencode({'code': code, 'updated': '1'})}", status_code=303)


routes = [
    Route("/dossiers", dossiers_page, methods=["GET"]),
    Route("/dossiers/status", set_status, methods=["POST"]),
]
