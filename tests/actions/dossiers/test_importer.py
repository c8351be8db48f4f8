"""The register CSV import (all or nothing, errors as file:line: message), staff status changes, retention."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from actions.dossiers import audit, limits, register
from actions.dossiers.importer import COLUMNS, import_csv
from actions.dossiers.models import Dossier, LookupAudit, Notification, StatusChange, VerificationFailure
from actions.dossiers.retention import purge
from actions.dossiers.settings import DossierSettings
from tests.actions.dossiers.conftest import CODE
from tests.actions.helpers import ROOT

DEMO = ROOT / "data" / "dossiers" / "demo_register.csv"
HEADER = ",".join(COLUMNS)
GOOD = ("000.00.04.H51-200221-0001,khai_sinh,Đăng ký khai sinh,2026-11-02,,0901234567,counter,received,,"
        "2026-11-02 09:00,,")


def write(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / "register.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_demo_register_imports_cleanly_and_only_once(engine: Engine) -> None:
    with Session(engine) as session:
        report = import_csv(session, DEMO, "demo_register.csv")
        assert not report.errors, report.errors
        assert len(report.added) >= 5 and report.steps >= len(report.added)
        posted = session.scalars(select(Dossier).where(Dossier.shipment_code.is_not(None))).all()
        assert any(d.delivery == "post" and d.status == "sent_by_post" for d in posted)
        again = import_csv(session, DEMO, "demo_register.csv")
    assert (again.errors, again.added, again.updated, again.steps) == ([], [], [], 0)


def test_only_the_last_four_phone_digits_are_kept_and_times_are_vietnam_time(engine: Engine, tmp_path: Path) -> None:
    with Session(engine) as session:
        assert not import_csv(session, write(tmp_path, GOOD)).errors
        dossier = session.scalars(select(Dossier)).one()
        step = session.scalars(select(StatusChange)).one()
    assert dossier.phone_last4 == "4567"
    assert all("0901234567" not in str(v) for v in vars(dossier).values())
    assert step.changed_at.replace(tzinfo=None) == dt.datetime(2026, 11, 2, 2, 0)  # 09:00 in Hanoi


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_imported(engine: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD,
        "000.00.04.H51-2002-0001,x,Thủ tục,2026-11-02,,0901234567,counter,received,,2026-11-02 09:00,,",
        "000.00.04.H51-200221-0003,x,Thủ tục,2026-11-02,,0901234567,counter,almost,,2026-11-02 09:00,,",
        "000.00.04.H51-200221-0004,x,Thủ tục,2026-11-02,,12345,counter,received,,2026-11-02 09:00,,",
        "000.00.04.H51-200221-0001,,,,,,,processing,,2026-11-01 09:00,,",
        "000.00.04.H51-200221-0005,x,,2026-11-02,,0901234567,counter,received,,2026-11-02 09:00,,",
        "000.00.04.H51-200221-0006,x,Thủ tục,2/31/2026,,0901234567,counter,received,,2026-11-02 09:00,,",
        "000.00.04.H51-200221-0007,x,Thủ tục,2026-11-02,,0901234567,counter,additional_documents,,2026-11-02 9h,,",
        "000.00.04.H51-200221-0008,x,Thủ tục,2026-11-02,,0901234567,boat,received,,2026-11-02 09:00,,",
    )
    with Session(engine) as session:
        report = import_csv(session, path, "register.csv")
    assert report.errors == [
        "register.csv:3: code '000.00.04.H51-2002-0001' is not a dossier code like 000.00.04.H51-250612-0034",
        "register.csv:4: unknown status 'almost' (one of: received, processing, additional_documents, completed, "
        "sent_by_post, delivered)",
        "register.csv:5: phone must be a Vietnamese phone number (0 and 9 digits, or +84 and 9 digits)",
        "register.csv:6: the steps of 000.00.04.H51-200221-0001 must be in time order",
        "register.csv:7: the first row of 000.00.04.H51-200221-0005 needs procedure_name",
        "register.csv:8: '2/31/2026' is not a date (YYYY-MM-DD or DD/MM/YYYY)",
        "register.csv:9: changed_at '2026-11-02 9h' is not a date and time (YYYY-MM-DD HH:MM)",
        "register.csv:10: delivery must be one of: counter, post",
    ]
    assert (report.added, report.steps) == ([], 0)
    assert count(engine, Dossier) == 0 and count(engine, StatusChange) == 0


def test_missing_columns_are_reported_on_line_one(engine: Engine, tmp_path: Path) -> None:
    with Session(engine) as session:
        report = import_csv(session, write(tmp_path, GOOD, header="code,status"), "r.csv")
    assert report.errors == ["r.csv:1: missing column(s): procedure_id, procedure_name, received_on, due_on, phone, "
                             "delivery, detail, changed_at, shipment_code, shipment_status"]


def test_a_step_older_than_the_register_is_refused(engine: Engine, tmp_path: Path) -> None:
    with Session(engine) as session:
        assert not import_csv(session, write(tmp_path, GOOD)).errors
        register.set_status(session, CODE, register.Change("processing"))
        late = write(tmp_path, "000.00.04.H51-200221-0001,,,,,,,completed,,2026-11-03 09:00,,")
        report = import_csv(session, late, "late.csv")
    assert report.errors == ["late.csv:2: this step is not newer than the register's latest step of "
                             "000.00.04.H51-200221-0001"]


def test_staff_status_changes(engine: Engine, tmp_path: Path) -> None:
    with Session(engine) as session:
        assert not import_csv(session, write(tmp_path, GOOD)).errors
        with pytest.raises(register.StatusError, match="no dossier"):
            register.set_status(session, "000.00.04.H51-200221-0099", register.Change("completed"))
        with pytest.raises(register.StatusError, match="needs the missing documents"):
            register.set_status(session, CODE, register.Change("additional_documents"))
        with pytest.raises(register.StatusError, match="needs a shipment code"):
            register.set_status(session, CODE, register.Change("sent_by_post", shipment_status="in_transit"))
        assert register.set_status(session, CODE, register.Change("received")) is None  # nothing changed
        step = register.set_status(session, CODE, register.Change("sent_by_post", None, "EI261118012VN",
                                                                  "accepted"))
        assert step is not None and step.source == "staff"
        dossier = register.find(session, CODE)
        assert dossier is not None
        assert (dossier.status, dossier.delivery, dossier.shipment_status) == ("sent_by_post", "post", "accepted")
        # the shipment code is remembered for the next step
        register.set_status(session, CODE, register.Change("delivered", shipment_status="delivered"))
        assert dossier.shipment_code == "EI261118012VN"


def test_retention_purges_only_what_is_old(engine: Engine) -> None:
    settings = DossierSettings(audit_retention_days=30, lockout_window_minutes=60, notification_retention_days=7)
    now = dt.datetime.now(dt.UTC)
    factory = sessionmaker(engine)
    with factory() as session:
        for days in (40, 1):
            audit.record(session, "webchat:a", CODE, "failed", now - dt.timedelta(days=days))
        limits.record_failure(session, "webchat:a", CODE, now - dt.timedelta(minutes=90))
        limits.record_failure(session, "webchat:a", CODE, now - dt.timedelta(minutes=5))
        session.commit()
        done = purge(session, settings, now)
    assert (done.audit, done.failures, done.notifications) == (1, 1, 0)
    assert count(engine, LookupAudit) == 1 and count(engine, VerificationFailure) == 1
    assert count(engine, Notification) == 0
