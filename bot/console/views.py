"""The web console's pages for staff and supervisors: the live queue, a ticket's conversation, statistics,
accounts. Pages are server-rendered (Jinja2, ``templates/``); ``static/console.js`` keeps the queue and the
conversation current by polling the JSON endpoints under ``/console/api/``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bot.console import charts
from bot.console.auth import (
    COOKIE,
    LOGIN_COOKIE,
    PATH,
    ROLES,
    Principal,
    hash_password,
    locked_out,
    log_in,
    log_out,
    password_problem,
    require_role,
    same_origin,
    set_cookie,
    settings_of,
)
from bot.console.stats import report
from bot.database import db_of
from bot.handoff import Handoff, Refused
from bot.models import Conversation, Message, StaffMember, Ticket, utcnow
from bot.texts import GatewayTexts

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
HANDLERS = ("staff", "supervisor")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def handoff_of(request: Request) -> Handoff:
    handoff: Handoff = request.app.state.handoff
    return handoff


def texts_of(request: Request) -> GatewayTexts:
    return handoff_of(request).texts


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    """A console page; every page gets the member, their CSRF token and the labels."""
    staff: Principal | None = getattr(request.state, "staff", None)
    csrf = staff.csrf if staff else ""
    field = Markup('<input type="hidden" name="csrf" value="{}">').format(csrf)
    context.update(staff=staff, csrf=csrf, csrf_field=lambda: field, texts=texts_of(request), path=request.url.path)
    return templates.TemplateResponse(request, name, context, status_code=status, headers=SECURITY_HEADERS)


def local(request: Request, value: dt.datetime | None, fmt: str = "%H:%M %d/%m") -> str:
    if value is None:
        return ""
    return _aware(value).astimezone(handoff_of(request).config.hours.tz).strftime(fmt)


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (never another site) to go back to after logging in."""
    if not target or not target.startswith(f"{PATH}/") or target.startswith("//") or urlsplit(target).netloc:
        return f"{PATH}/"
    return target


# --- login ----------------------------------------------------------------------------------------------------

async def login_page(request: Request) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", login_csrf=token, next=_safe_next(request.query_params.get("next")),
                      error=None)
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600, path=f"{PATH}/login")
    return response


async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip()[:64]
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or ""))
    cookie, field = request.cookies.get(LOGIN_COOKIE, ""), str(form.get("csrf") or "")
    if not same_origin(request) or not cookie or not hmac.compare_digest(cookie.encode(), field.encode()):
        return render(request, "login.html", 403, login_csrf=cookie, next=target,
                      error="Phiên đăng nhập đã hết hạn, anh/chị tải lại trang rồi đăng nhập lại.")
    if await locked_out(request, username):
        minutes = settings_of(request).console_login_window_minutes
        return render(request, "login.html", 429, login_csrf=cookie, next=target,
                      error=f"Đăng nhập sai quá nhiều lần. Anh/chị thử lại sau {minutes:.0f} phút.")
    result = await log_in(request, username, password)
    if result is None:
        return render(request, "login.html", 401, login_csrf=cookie, next=target,
                      error="Tên đăng nhập hoặc mật khẩu không đúng.")
    token, principal = result
    if principal.role not in HANDLERS and target == f"{PATH}/":
        target = f"{PATH}/home"
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, COOKIE, token, max_age=int(settings_of(request).console_session_hours * 3600))
    response.delete_cookie(LOGIN_COOKIE, path=f"{PATH}/login")
    return response


@require_role()
async def logout(request: Request) -> Response:
    await log_out(request)
    response = RedirectResponse(f"{PATH}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PATH)
    return response


@require_role()
async def home(request: Request) -> Response:
    """Where a member without tickets to handle lands (editors: their pages are linked from the menu)."""
    staff: Principal = request.state.staff
    if staff.can(*HANDLERS) and request.url.path == f"{PATH}/home":
        return RedirectResponse(f"{PATH}/", status_code=303)
    return render(request, "home.html")


# --- the queue ------------------------------------------------------------------------------------------------

def _queue_json(request: Request, session: Session, me: int) -> dict[str, Any]:
    handoff = handoff_of(request)
    now = utcnow()
    names: dict[int, str] = {i: n for i, n in session.execute(select(StaffMember.id, StaffMember.display_name))}
    last: dict[int, int] = {c: m for c, m in session.execute(
        select(Message.conversation_id, func.max(Message.id)).where(Message.sender == "citizen")
        .group_by(Message.conversation_id))}
    previews: dict[int, str | None] = {i: t for i, t in session.execute(
        select(Message.id, Message.text).where(Message.id.in_(list(last.values()))))} if last else {}
    texts = handoff.texts
    items = []
    for t in handoff.queue(session):
        items.append({
            "id": t.id, "status": t.status, "channel": texts.label("channels", t.channel), "name": t.display_name,
            "reason": texts.label("reasons", t.reason), "procedure": t.procedure_name or "",
            "opened": local(request, t.opened_at), "out_of_hours": t.out_of_hours,
            "waited": round((now - _aware(t.opened_at)).total_seconds() / 60),
            "holder": names.get(t.claimed_by) if t.claimed_by else None, "mine": t.claimed_by == me,
            "last": (previews.get(last.get(t.conversation_id, -1)) or "")[:120],
            "url": f"{PATH}/tickets/{t.id}",
        })
    return {"waiting": [i for i in items if i["status"] == "waiting"],
            "mine": [i for i in items if i["mine"]],
            "others": [i for i in items if i["status"] == "claimed" and not i["mine"]],
            "remind_after": handoff.config.remind_every}


@require_role(*HANDLERS)
async def queue_page(request: Request) -> Response:
    staff: Principal = request.state.staff
    data = await db_of(request).run(lambda s: _queue_json(request, s, staff.id))
    notice = None
    lost = request.query_params.get("lost", "")
    if lost.isdigit():
        holder = await db_of(request).run(lambda s: _holder(s, int(lost)))
        notice = f"Phiếu #{lost} đã do {holder} nhận trước." if holder else f"Phiếu #{lost} không còn chờ."
    ended = request.query_params.get("ended", "")
    if ended.isdigit():
        notice = f"Đã kết thúc phiếu #{ended}; công dân được mời đánh giá."
    return render(request, "queue.html", queue=data, notice=notice)


def _holder(session: Session, ticket_id: int) -> str | None:
    ticket = session.get(Ticket, ticket_id)
    member = session.get(StaffMember, ticket.claimed_by) if ticket and ticket.claimed_by else None
    return member.display_name if member else None


@require_role(*HANDLERS)
async def queue_api(request: Request) -> Response:
    staff: Principal = request.state.staff
    data = await db_of(request).run(lambda s: _queue_json(request, s, staff.id))
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def _ticket_id(request: Request) -> int:
    return int(request.path_params["ticket"])


@require_role(*HANDLERS)
async def claim(request: Request) -> Response:
    staff: Principal = request.state.staff
    ticket_id = _ticket_id(request)
    try:
        result = await handoff_of(request).claim(ticket_id, staff.id, "console")
    except Refused as exc:
        return render(request, "message.html", 409, message=str(exc))
    if not result.won:
        return RedirectResponse(f"{PATH}/?lost={ticket_id}", status_code=303)
    return RedirectResponse(f"{PATH}/tickets/{ticket_id}", status_code=303)


# --- one ticket -------------------------------------------------------------------------------------------------

def _line(request: Request, m: Message) -> dict[str, Any]:
    return {"id": m.id, "sender": m.sender, "text": m.text or "", "at": local(request, m.created_at, "%H:%M"),
            "staff": (m.payload or {}).get("staff") if m.sender == "staff" else None}


def _ticket_data(request: Request, session: Session, ticket_id: int, me: int, after: int = 0
                 ) -> dict[str, Any] | None:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    handoff = handoff_of(request)
    holder = session.get(StaffMember, ticket.claimed_by) if ticket.claimed_by else None
    return {
        "id": ticket.id, "status": ticket.status, "mine": ticket.claimed_by == me,
        "holder": holder.display_name if holder else None,
        "messages": [_line(request, m) for m in handoff.transcript(session, ticket, after)],
    }


@require_role(*HANDLERS)
async def ticket_page(request: Request) -> Response:
    return await _ticket_page(request, _ticket_id(request))


async def _ticket_page(request: Request, ticket_id: int, error: str | None = None, status: int = 200) -> Response:
    staff: Principal = request.state.staff

    def load(session: Session) -> dict[str, Any] | None:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            return None
        data = _ticket_data(request, session, ticket_id, staff.id) or {}
        conv = session.get(Conversation, ticket.conversation_id)
        others = session.execute(select(StaffMember.id, StaffMember.display_name).where(
            StaffMember.active, StaffMember.role.in_(HANDLERS), StaffMember.id != staff.id)
            .order_by(StaffMember.display_name)).all()
        texts = handoff_of(request).texts
        data.update(ticket=ticket, channel=texts.label("channels", ticket.channel),
                    reason=texts.label("reasons", ticket.reason), opened=local(request, ticket.opened_at),
                    claimed=local(request, ticket.claimed_at), closed=local(request, ticket.closed_at),
                    conversation=conv, colleagues=[(i, n) for i, n in others])
        return data

    data = await db_of(request).run(load)
    if data is None:
        return render(request, "message.html", 404, message=f"Không có phiếu #{ticket_id}.")
    return render(request, "ticket.html", status, t=data, error=error)


@require_role(*HANDLERS)
async def ticket_api(request: Request) -> Response:
    staff: Principal = request.state.staff
    after = request.query_params.get("after", "0")
    if not after.isdigit():
        return JSONResponse({"error": "after must be a non-negative integer"}, status_code=400)
    data = await db_of(request).run(lambda s: _ticket_data(request, s, _ticket_id(request), staff.id, int(after)))
    if data is None:
        return JSONResponse({"error": "no such ticket"}, status_code=404)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@require_role(*HANDLERS)
async def reply_api(request: Request) -> Response:
    """``POST /console/api/tickets/<id>/messages`` with ``{"text": ...}`` and ``X-CSRF-Token``."""
    staff: Principal = request.state.staff
    try:
        body = await request.json()
    except (ValueError, RuntimeError):  # RuntimeError: a form body, already read by the CSRF check
        return JSONResponse({"error": "body must be JSON"}, status_code=400)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return JSONResponse({"error": "Tin nhắn trống."}, status_code=400)
    if len(text) > 2000:
        return JSONResponse({"error": "Tin nhắn dài quá 2.000 ký tự."}, status_code=413)
    try:
        line = await handoff_of(request).reply(_ticket_id(request), staff.id, text, "console")
    except Refused as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return JSONResponse({"id": line})


async def _form_text(request: Request, name: str) -> str:
    form = await request.form()
    value = form.get(name)
    return value if isinstance(value, str) else ""


@require_role(*HANDLERS)
async def reply_form(request: Request) -> Response:
    """The reply box without JavaScript: a normal form post, back to the page."""
    staff: Principal = request.state.staff
    ticket_id = _ticket_id(request)
    text = (await _form_text(request, "text"))[:2000]
    try:
        await handoff_of(request).reply(ticket_id, staff.id, text, "console")
    except Refused as exc:
        return await _ticket_page(request, ticket_id, str(exc), 409)
    return RedirectResponse(f"{PATH}/tickets/{ticket_id}", status_code=303)


@require_role(*HANDLERS)
async def end(request: Request) -> Response:
    staff: Principal = request.state.staff
    ticket_id = _ticket_id(request)
    try:
        await handoff_of(request).end(ticket_id, staff.id, "console")
    except Refused as exc:
        return await _ticket_page(request, ticket_id, str(exc), 409)
    return RedirectResponse(f"{PATH}/?ended={ticket_id}", status_code=303)


@require_role(*HANDLERS)
async def transfer(request: Request) -> Response:
    staff: Principal = request.state.staff
    ticket_id = _ticket_id(request)
    target = await _form_text(request, "to")
    try:
        await handoff_of(request).transfer(ticket_id, staff.id, int(target) if target.isdigit() else None)
    except Refused as exc:
        return await _ticket_page(request, ticket_id, str(exc), 409)
    return RedirectResponse(f"{PATH}/", status_code=303)


# --- conversations: a staff member takes one over on their own ------------------------------------------------

@require_role(*HANDLERS)
async def conversations(request: Request) -> Response:
    def load(session: Session) -> list[dict[str, Any]]:
        texts = handoff_of(request).texts
        rows = session.scalars(select(Conversation).order_by(Conversation.last_activity_at.desc()).limit(50))
        return [{"id": c.id, "name": c.display_name or c.key, "channel": texts.label("channels", c.channel),
                 "mode": c.mode, "last": local(request, c.last_activity_at)} for c in rows]

    return render(request, "conversations.html", rows=await db_of(request).run(load))


@require_role(*HANDLERS)
async def take_over(request: Request) -> Response:
    staff: Principal = request.state.staff
    try:
        ticket_id = await handoff_of(request).take_over(int(request.path_params["conversation"]), staff.id)
    except Refused as exc:
        return render(request, "message.html", 409, message=str(exc))
    return RedirectResponse(f"{PATH}/tickets/{ticket_id}", status_code=303)


# --- supervisors ----------------------------------------------------------------------------------------------

@require_role("supervisor")
async def stats_page(request: Request) -> Response:
    raw = request.query_params.get("days", "14")
    days = int(raw) if raw in {"7", "14", "30", "90"} else 14
    handoff = handoff_of(request)
    figures = await db_of(request).run(lambda s: report(s, handoff.config.hours, handoff.texts, days))
    drawn = {
        "per_day": charts.columns(figures.per_day, "Số phiếu mỗi ngày"),
        "wait": charts.columns(figures.wait_buckets, "Thời gian chờ (phút)", height=180),
        "handle": charts.columns(figures.handle_buckets, "Thời gian xử lý (phút)", height=180),
        "ratings": charts.columns(figures.ratings, "Điểm đánh giá (1–5)", height=180),
        "subjects": charts.rows(figures.subjects, "Chủ đề nhiều nhất"),
    }
    return render(request, "stats.html", r=figures, charts=drawn, days=days)


@require_role("supervisor")
async def staff_page(request: Request) -> Response:
    return await _staff_page(request, added=request.query_params.get("added") == "1")


async def _staff_page(request: Request, error: str | None = None, added: bool = False, status: int = 200
                      ) -> Response:
    def load(session: Session) -> list[StaffMember]:
        return list(session.scalars(select(StaffMember).order_by(StaffMember.active.desc(), StaffMember.username)))

    members = await db_of(request).run(load)
    return render(request, "staff.html", status, members=members, roles=ROLES, error=error, added=added)


@require_role("supervisor")
async def staff_add(request: Request) -> Response:
    form = await request.form()

    def field(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    username, name, role = field("username").lower(), field("display_name"), field("role")
    password, telegram = field("password"), field("telegram_user_id")
    problem = None
    if not username or not username.replace(".", "").replace("_", "").replace("-", "").isalnum() \
            or len(username) > 64:
        problem = "Tên đăng nhập chỉ gồm chữ, số, dấu chấm, gạch dưới hoặc gạch ngang."
    elif not name:
        problem = "Cần nhập tên hiển thị (công dân sẽ thấy tên này)."
    elif role not in ROLES:
        problem = "Vai trò không hợp lệ."
    elif telegram and not telegram.lstrip("-").isdigit():
        problem = "Mã người dùng Telegram là một số."
    elif password and (reason := password_problem(password)):
        problem = reason
    elif not password and not telegram:
        problem = "Cần mật khẩu (đăng nhập trang quản lý) hoặc mã Telegram (nhóm nhân viên)."
    if problem:
        return await _staff_page(request, problem, status=400)

    def create(session: Session) -> str | None:
        session.add(StaffMember(username=username, display_name=name[:100], role=role,
                                password_hash=hash_password(password) if password else None,
                                telegram_user_id=int(telegram) if telegram else None))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return "Tên đăng nhập hoặc mã Telegram đã có người dùng."
        return None

    problem = await db_of(request).run(create)
    if problem:
        return await _staff_page(request, problem, status=400)
    return RedirectResponse(f"{PATH}/staff?added=1", status_code=303)


@require_role("supervisor")
async def staff_toggle(request: Request) -> Response:
    me: Principal = request.state.staff
    member_id = int(request.path_params["member"])

    def toggle(session: Session) -> None:
        member = session.get(StaffMember, member_id)
        if member is not None and member.id != me.id:  # a supervisor cannot lock themselves out
            member.active = not member.active
            session.commit()

    await db_of(request).run(toggle)
    return RedirectResponse(f"{PATH}/staff", status_code=303)


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/", queue_page, methods=["GET"]),
    Route("/home", home, methods=["GET"]),
    Route("/api/queue", queue_api, methods=["GET"]),
    Route("/tickets/{ticket:int}", ticket_page, methods=["GET"]),
    Route("/tickets/{ticket:int}/claim", claim, methods=["POST"]),
    Route("/tickets/{ticket:int}/reply", reply_form, methods=["POST"]),
    Route("/tickets/{ticket:int}/end", end, methods=["POST"]),
    Route("/tickets/{ticket:int}/transfer", transfer, methods=["POST"]),
    Route("/api/tickets/{ticket:int}/messages", ticket_api, methods=["GET"]),
    Route("/api/tickets/{ticket:int}/messages", reply_api, methods=["POST"]),
    Route("/conversations", conversations, methods=["GET"]),
    Route("/conversations/{conversation:int}/take", take_over, methods=["POST"]),
    Route("/stats", stats_page, methods=["GET"]),
    Route("/staff", staff_page, methods=["GET"]),
    Route("/staff", staff_add, methods=["POST"]),
    Route("/staff/{member:int}/active", staff_toggle, methods=["POST"]),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="console-static"),
]
