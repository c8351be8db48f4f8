"""``dvcbot dossiers …``: import the register, change a status, write pending notifications, purge old rows.

``dvcbot/cli.py`` calls ``register(subparsers)``; every command returns the process exit code.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from actions.dossiers import notify
from actions.dossiers import register as reg
from actions.dossiers.codes import extract_code
from actions.dossiers.importer import import_csv
from actions.dossiers.models import SHIPMENT_STATUSES, STATUSES
from actions.dossiers.retention import purge
from actions.dossiers.settings import get_dossier_settings
from dvcbot.db import create_schema, make_engine, session_factory
from dvcbot.settings import get_settings


@contextmanager
def _session() -> Iterator[Session]:
    engine = make_engine(get_settings().database_url)
    create_schema(engine)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 1
    with _session() as session:
        report = import_csv(session, path)
        if report.errors:
            for err in report.errors:
                print(err, file=sys.stderr)
            print(f"Register not imported: {len(report.errors)} error(s).", file=sys.stderr)
            return 1
        notified = notify.detect_changes(session)
    print(f"Register imported: {report.summary()}; {notified} notification(s) queued.")
    return 0


def _set_status(args: argparse.Namespace) -> int:
    code = extract_code(args.code)
    if code is None:
        print(f"{args.code!r} is not a dossier code", file=sys.stderr)
        return 1
    change = reg.Change(args.status, args.detail, args.shipment_code, args.shipment_status)
    with _session() as session:
        try:
            step = reg.set_status(session, code, change)
        except reg.StatusError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        notified = notify.detect_changes(session)
    print(f"{code}: {'status ' + args.status if step else 'nothing changed'}; {notified} notification(s) queued.")
    return 0


def _notify(args: argparse.Namespace) -> int:
    if not args.every:
        with _session() as session:
            print(f"{notify.detect_changes(session)} notification(s) queued.", flush=True)
        return 0
    while True:  # as a long-running service: say only what happened, and outlive a database restart
        try:
            with _session() as session:
                notified = notify.detect_changes(session)
            if notified:
                print(f"{notified} notification(s) queued.", flush=True)
        except Exception as exc:  # any database error: try again on the next round
            print(f"change detection failed, retrying in {args.every:g} s: {type(exc).__name__}", flush=True)
        time.sleep(args.every)


def _purge(_: argparse.Namespace) -> int:
    with _session() as session:
        done = purge(session, get_dossier_settings())
    print(f"Purged {done.audit} audit row(s), {done.failures} failure(s), {done.notifications} notification(s).")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``dossiers`` command and its subcommands to the ``dvcbot`` parser."""
    dossiers = subparsers.add_parser("dossiers", help="dossier register and notifications")
    sub = dossiers.add_subparsers(dest="dossiers_command", required=True)
    commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("import", "import a register CSV (all or nothing; errors as file:line: message)", _import),
        ("set-status", "record a dossier's new status and queue its notifications", _set_status),
        ("notify", "queue notifications for dossiers that changed", _notify),
        ("purge", "delete audit rows, failures and notifications past their retention", _purge),
    ]
    parsers = {name: sub.add_parser(name, help=text) for name, text, _ in commands}
    for name, _, func in commands:
        parsers[name].set_defaults(func=func)
    parsers["import"].add_argument("file", help="CSV file, e.g. data/dossiers/demo_register.csv")
    parsers["set-status"].add_argument("code", help="dossier code, e.g. 000.00.04.H51-250612-0034")
    parsers["set-status"].add_argument("status", choices=STATUSES)
    parsers["set-status"].add_argument("--detail", help="what is missing, or a note shown to the citizen")
    parsers["set-status"].add_argument("--shipment-code", help="the postal item code of the result")
    parsers["set-status"].add_argument("--shipment-status", choices=SHIPMENT_STATUSES)
    parsers["notify"].add_argument("--every", type=float, default=0, help="repeat every N seconds")
