"""``dvcbot staff …``: the staff registry — console accounts and the Telegram users allowed in the staff group.

    dvcbot staff add lan --name "Chị Lan" [--role staff|supervisor|editor] [--telegram-id 123456789]
                         [--password-stdin | --no-password]
    dvcbot staff list
    dvcbot staff password lan [--password-stdin]
    dvcbot staff disable lan | enable lan

Without ``--password-stdin`` the password is asked twice on the terminal (it is never an argument: arguments
end up in the shell history and the process list). ``--no-password`` makes a Telegram-only member.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.console.auth import ROLES, hash_password, password_problem
from bot.models import StaffMember
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import get_settings


def _session() -> Session:
    engine = make_engine(get_settings().database_url)
    create_schema(engine)
    return Session(engine)


def _read_password(args: argparse.Namespace) -> str | None:
    """The new password (stdin or asked twice); ``None`` after saying what is wrong with it."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Mật khẩu: ")
        if getpass.getpass("Nhập lại mật khẩu: ") != password:
            print("The two passwords differ.", file=sys.stderr)
            return None
    problem = password_problem(password)
    if problem:
        print(f"Password refused: {problem}", file=sys.stderr)
        return None
    return password


def _add(args: argparse.Namespace) -> int:
    password = None if args.no_password else _read_password(args)
    if password is None and not args.no_password:
        return 1
    if args.no_password and args.telegram_id is None:
        print("A member without a password needs --telegram-id (else they could do nothing).", file=sys.stderr)
        return 1
    with _session() as session:
        session.add(StaffMember(username=args.username.lower(), display_name=args.name, role=args.role,
                                password_hash=hash_password(password) if password else None,
                                telegram_user_id=args.telegram_id))
        try:
            session.commit()
        except IntegrityError:
            print(f"{args.username}: the username or the Telegram id is taken.", file=sys.stderr)
            return 1
    print(f"Added {args.username.lower()} ({args.role}).")
    return 0


def _list(_: argparse.Namespace) -> int:
    with _session() as session:
        for m in session.scalars(select(StaffMember).order_by(StaffMember.username)):
            login = "console" if m.password_hash else "-"
            telegram = str(m.telegram_user_id) if m.telegram_user_id else "-"
            state = "active" if m.active else "disabled"
            print(f"{m.username:<20} {m.role:<11} {state:<9} {login:<8} telegram:{telegram:<12} {m.display_name}")
    return 0


def _member(session: Session, username: str) -> StaffMember | None:
    member = session.scalar(select(StaffMember).where(StaffMember.username == username.lower()))
    if member is None:
        print(f"{username}: no such member.", file=sys.stderr)
    return member


def _password(args: argparse.Namespace) -> int:
    with _session() as session:
        member = _member(session, args.username)
        if member is None:
            return 1
        password = _read_password(args)
        if password is None:
            return 1
        member.password_hash = hash_password(password)
        session.commit()
    print(f"Password of {args.username.lower()} changed.")
    return 0


def _active(args: argparse.Namespace) -> int:
    with _session() as session:
        member = _member(session, args.username)
        if member is None:
            return 1
        member.active = args.staff_command == "enable"
        session.commit()
    print(f"{args.username.lower()} {args.staff_command}d.")
    return 0


def register(subparsers: Any) -> None:
    """Add ``staff add | list | password | disable | enable`` to the ``dvcbot`` command."""
    staff = subparsers.add_parser("staff", help="staff accounts (web console, Telegram staff group)")
    sub = staff.add_subparsers(dest="staff_command", required=True)
    add = sub.add_parser("add", help="add a staff member, supervisor or editor")
    add.add_argument("username")
    add.add_argument("--name", required=True, help='the name citizens see, e.g. "Chị Lan"')
    add.add_argument("--role", choices=ROLES, default="staff")
    add.add_argument("--telegram-id", type=int, help="their Telegram user id (to work in the staff group)")
    how = add.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    how.add_argument("--no-password", action="store_true", help="no console login (Telegram only)")
    add.set_defaults(func=_add)
    sub.add_parser("list", help="list the members").set_defaults(func=_list)
    pw = sub.add_parser("password", help="set a member's console password")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    pw.set_defaults(func=_password)
    for verb, text in (("disable", "stop a member from signing in or handling tickets"),
                       ("enable", "let a disabled member back in")):
        cmd = sub.add_parser(verb, help=text)
        cmd.add_argument("username")
        cmd.set_defaults(func=_active)
