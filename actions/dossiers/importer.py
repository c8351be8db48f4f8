"""Import the register from a CSV file, all or nothing, reporting every bad row as ``file:line: message``.

One row is one step of a dossier's history, oldest first; the dossier's own columns (procedure, dates, phone,
delivery) are given on its first row and may be left empty on the following ones. Columns:

``code, procedure_id, procedure_name, received_on, due_on, phone, delivery, status, detail, changed_at,
shipment_code, shipment_status``

Dates are ``YYYY-MM-DD`` or ``DD/MM/YYYY``; ``changed_at`` is Vietnam time (``YYYY-MM-DD HH:MM``) unless it carries
an offset. Of the phone number only the last four digits are kept. Importing the same file again changes nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.dossiers import register
from actions.dossiers.codes import extract_code
from actions.dossiers.models import DELIVERIES, Dossier, StatusChange, as_utc

COLUMNS = ("code", "procedure_id", "procedure_name", "received_on", "due_on", "phone", "delivery", "status",
           "detail", "changed_at", "shipment_code", "shipment_status")
DOSSIER_COLUMNS = ("procedure_id", "procedure_name", "received_on", "due_on", "phone", "delivery")
VIETNAM = dt.timezone(dt.timedelta(hours=7))
_PHONE = re.compile(r"(?:\+?84|0)(\d{9})")


class RowError(ValueError):
    """A problem with one CSV row."""


@dataclass
class ImportReport:
    """What an import did, or why it did nothing."""

    errors: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    steps: int = 0

    def summary(self) -> str:
        return f"{len(self.added)} dossiers added, {len(self.updated)} updated, {self.steps} history steps added"


def parse_date(text: str) -> dt.date:
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise RowError(f"{text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")


def parse_moment(text: str) -> dt.datetime:
    """A ``changed_at`` value, in UTC; naive values are Vietnam time."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RowError(f"changed_at {text!r} is not a date and time (YYYY-MM-DD HH:MM)") from None
    return as_utc(value.replace(tzinfo=VIETNAM) if value.tzinfo is None else value)


def phone_last4(text: str) -> str:
    match = _PHONE.fullmatch(re.sub(r"[\s.\-()]", "", text))
    if not match:
        raise RowError("phone must be a Vietnamese phone number (0 and 9 digits, or +84 and 9 digits)")
    return match.group(1)[-4:]


def _dossier_fields(row: dict[str, str]) -> dict[str, object]:
    fields: dict[str, object] = {}
    if row["procedure_name"]:
        fields["procedure_name"] = row["procedure_name"]
    if row["procedure_id"]:
        fields["procedure_id"] = row["procedure_id"]
    if row["received_on"]:
        fields["received_on"] = parse_date(row["received_on"])
    if row["due_on"]:
        fields["due_on"] = parse_date(row["due_on"])
    if row["phone"]:
        fields["phone_last4"] = phone_last4(row["phone"])
    if row["delivery"]:
        if row["delivery"] not in DELIVERIES:
            raise RowError(f"delivery must be one of: {', '.join(DELIVERIES)}")
        fields["delivery"] = row["delivery"]
    return fields


def _import_row(session: Session, row: dict[str, str], seen: dict[str, dt.datetime],
                report: ImportReport) -> None:
    code = extract_code(row["code"])
    if code is None or code != row["code"].strip().upper():
        raise RowError(f"code {row['code']!r} is not a dossier code like 000.00.04.H51-250612-0034")
    fields = _dossier_fields(row)
    dossier = register.find(session, code)
    if dossier is None:
        missing = [c for c in ("procedure_name", "received_on", "phone") if not row[c]]
        if missing:
            raise RowError(f"the first row of {code} needs {', '.join(missing)}")
        dossier = Dossier(code=code, status="", **fields)
        report.added.append(code)
    else:
        changed = {name: value for name, value in fields.items() if getattr(dossier, name) != value}
        for name, value in changed.items():
            setattr(dossier, name, value)
        if changed and code not in report.added and code not in report.updated:
            report.updated.append(code)
    when = parse_moment(row["changed_at"])
    change = register.Change(row["status"], row["detail"] or None, row["shipment_code"] or None,
                             row["shipment_status"] or None)
    if code in seen and seen[code] >= when:
        raise RowError(f"the steps of {code} must be in time order")
    if dossier.id is not None:
        exists = session.scalar(select(StatusChange.id).where(
            StatusChange.dossier_id == dossier.id, StatusChange.changed_at == when,
            StatusChange.status == change.status))
        if exists is not None:
            seen[code] = when
            return
        latest = session.scalar(select(StatusChange.changed_at).where(StatusChange.dossier_id == dossier.id)
                                .order_by(StatusChange.changed_at.desc()).limit(1))
        if latest is not None and as_utc(latest) >= when:
            raise RowError(f"this step is not newer than the register's latest step of {code}")
    seen[code] = when
    try:
        if register.record(session, dossier, change, "import", when) is not None:
            report.steps += 1
            if code not in report.added and code not in report.updated:
                report.updated.append(code)
    except register.StatusError as exc:
        raise RowError(str(exc)) from None


def import_rows(session: Session, rows: list[tuple[int, dict[str, str]]], file: str) -> ImportReport:
    """Import already-read rows (``(line, row)``); commits only when every row is good, else rolls back.

    No savepoints: pysqlite's SAVEPOINT handling is unreliable, and one bad row discards the whole file anyway.
    """
    report = ImportReport()
    seen: dict[str, dt.datetime] = {}
    broken: set[str] = set()  # dossiers whose first row failed: their later rows would only repeat that
    for line, row in rows:
        values = {k: (row.get(k) or "").strip() for k in COLUMNS}
        code = extract_code(values["code"]) or values["code"]
        if code in broken:
            continue
        try:
            _import_row(session, values, seen, report)
        except RowError as exc:
            report.errors.append(f"{file}:{line}: {exc}")
            if code not in seen:
                broken.add(code)
    if report.errors:
        session.rollback()
        report.added, report.updated, report.steps = [], [], 0
    else:
        session.commit()
    return report


def import_csv(session: Session, path: Path, shown_as: str | None = None) -> ImportReport:
    """Import the register CSV at ``path``; errors name the file as ``shown_as`` (default: the path)."""
    file = shown_as or str(path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            return ImportReport(errors=[f"{file}:1: missing column(s): {', '.join(missing)}"])
        rows = [(reader.line_num, row) for row in reader]
    return import_rows(session, rows, file)
