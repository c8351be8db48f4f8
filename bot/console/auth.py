"""Accounts, sessions and form protection of the web console — the part every console page reuses.

- Passwords are stored as ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (``hashlib.scrypt``, 16-byte salt); an unknown
  username costs the same hash so that timing does not tell which accounts exist.
- A login creates a :class:`~bot.models.ConsoleSession`: the browser holds a random token in the cookie
  ``dvcbot_console`` (HttpOnly, SameSite=Strict, Path=/console, Secure over https or when configured), the
  database only its SHA-256 and the session's CSRF token.
- Every POST carries that CSRF token (a hidden ``csrf`` field, or the ``X-CSRF-Token`` header for ``fetch``) and,
  when the browser sends one, an ``Origin`` of this very site. The login form itself uses a double-submit cookie.
- Failed logins are counted per account and per address in ``console_login_failures``: after
  ``DVCBOT_CONSOLE_LOGIN_MAX_FAILURES`` for one account (four times that for one address) within
  ``DVCBOT_CONSOLE_LOGIN_WINDOW_MINUTES``, logins are refused without even checking the password.

Pages declare who may see them with :func:`require_role`; the signed-in member is ``request.state.staff``.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from bot.database import db_of
from bot.models import ConsoleSession, LoginAttempt, StaffMember, utcnow
from dvcbot.settings import Settings

COOKIE = "dvcbot_console"
LOGIN_COOKIE = "dvcbot_console_login"  # the login form's double-submit CSRF token
PATH = "/console"
ROLES = ("staff", "supervisor", "editor")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 10
Endpoint = Callable[[Request], Awaitable[Response]]


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Checked for unknown accounts, so that they cost the same time as known ones."""
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, stored: str | None) -> bool:
    try:
        scheme, n, r, p, salt, digest = (stored or _dummy_hash()).split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return scheme == "scrypt" and stored is not None and hmac.compare_digest(actual, expected)


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable (Vietnamese, for the form), or ``None``."""
    if len(password) < MIN_PASSWORD:
        return f"Mật khẩu cần ít nhất {MIN_PASSWORD} ký tự."
    if password.isdigit() or (password.lower() == password and password.isalpha()):
        return "Mật khẩu cần có cả chữ và số (hoặc ký tự khác)."
    return None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The signed-in console user."""

    id: int
    username: str
    display_name: str
    role: str
    csrf: str

    def can(self, *roles: str) -> bool:
        return self.role in roles


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def secure_cookies(request: Request) -> bool:
    mode = settings_of(request).console_secure_cookies.lower()
    return mode == "true" or (mode == "auto" and request.url.scheme == "https")


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None,
               path: str = PATH) -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="strict",
                        secure=secure_cookies(request))


# --- sessions -------------------------------------------------------------------------------------------------

async def current(request: Request) -> Principal | None:
    """The member signed in with this request's cookie, if the session is valid and the account active."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    digest = _digest(token)

    def lookup(session: Session) -> Principal | None:
        row = session.execute(
            select(ConsoleSession, StaffMember).join(StaffMember, StaffMember.id == ConsoleSession.staff_id)
            .where(ConsoleSession.token_hash == digest, ConsoleSession.expires_at > utcnow(), StaffMember.active)
        ).first()
        if row is None:
            return None
        sess, member = row
        return Principal(member.id, member.username, member.display_name, member.role, sess.csrf_token)

    return await db_of(request).run(lookup)


def _address(request: Request) -> str:
    return (request.client.host if request.client else "unknown")[:64]


async def locked_out(request: Request, username: str) -> bool:
    """Whether too many logins failed lately for this account or from this address."""
    settings = settings_of(request)
    since = utcnow() - dt.timedelta(minutes=settings.console_login_window_minutes)
    address = _address(request)

    def count(session: Session) -> bool:
        by_user = session.scalar(select(func.count()).where(LoginAttempt.username == username,
                                                            LoginAttempt.at > since)) or 0
        by_address = session.scalar(select(func.count()).where(LoginAttempt.address == address,
                                                               LoginAttempt.at > since)) or 0
        limit = settings.console_login_max_failures
        return by_user >= limit or by_address >= 4 * limit

    return await db_of(request).run(count)


async def log_in(request: Request, username: str, password: str) -> tuple[str, Principal] | None:
    """Check the password; on success open a session and return its cookie token, else count the failure."""
    settings = settings_of(request)
    member = await db_of(request).run(
        lambda s: s.scalar(select(StaffMember).where(StaffMember.username == username, StaffMember.active)))
    if not verify_password(password, member.password_hash if member else None) or member is None:
        address = _address(request)

        def fail(session: Session) -> None:
            session.add(LoginAttempt(username=username[:64], address=address))
            session.execute(delete(LoginAttempt).where(LoginAttempt.at < utcnow() - dt.timedelta(days=7)))
            session.commit()

        await db_of(request).run(fail)
        return None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(hours=settings.console_session_hours)
    member_id = member.id

    def open_(session: Session) -> None:
        session.add(ConsoleSession(token_hash=_digest(token), staff_id=member_id, csrf_token=csrf,
                                   expires_at=expires))
        session.execute(delete(LoginAttempt).where(LoginAttempt.username == username))
        session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < utcnow()))
        found = session.get(StaffMember, member_id)
        if found is not None:
            found.last_login_at = utcnow()
        session.commit()

    await db_of(request).run(open_)
    return token, Principal(member.id, member.username, member.display_name, member.role, csrf)


async def log_out(request: Request) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        digest = _digest(token)

        def close(session: Session) -> None:
            session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == digest))
            session.commit()

        await db_of(request).run(close)


# --- CSRF ---------------------------------------------------------------------------------------------------

def same_origin(request: Request) -> bool:
    """A POST's ``Origin`` (when the browser sends one) names this site."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin != "null"
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", request.url.netloc)


async def csrf_ok(request: Request, expected: str) -> bool:
    """The request carries ``expected`` in ``X-CSRF-Token`` or in the form field ``csrf``, and comes from here."""
    if not same_origin(request):
        return False
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def forbidden(request: Request, reason: str) -> Response:
    if request.url.path.startswith(f"{PATH}/api/"):
        return JSONResponse({"error": reason}, status_code=403)
    return PlainTextResponse(reason, status_code=403)


def require_role(*roles: str) -> Callable[[Endpoint], Endpoint]:
    """Only signed-in members with one of ``roles`` (any role when none is given); POSTs must pass the CSRF check.

    A visitor without a session is sent to the login page (``401`` for ``/console/api/…``); a member without
    the role gets ``403``. The member is available as ``request.state.staff`` (a :class:`Principal`).
    """

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            principal = await current(request)
            if principal is None:
                if request.url.path.startswith(f"{PATH}/api/"):
                    return JSONResponse({"error": "not signed in"}, status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{PATH}/login?next={quote(target)}", status_code=303)
            if roles and principal.role not in roles:
                return forbidden(request, "Tài khoản của anh/chị không có quyền xem trang này.")
            if request.method == "POST" and not await csrf_ok(request, principal.csrf):
                return forbidden(request, "Phiên làm việc không hợp lệ (CSRF). Anh/chị tải lại trang rồi thử lại.")
            request.state.staff = principal
            return await endpoint(request)

        return guarded

    return wrap
