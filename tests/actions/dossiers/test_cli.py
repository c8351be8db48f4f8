"""``dvcbot dossiers …`` through ``register(subparsers)``, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from actions.dossiers import cli, notify
from actions.dossiers.models import Dossier, Notification
from tests.actions.dossiers.conftest import CODE, FIXTURE, clear_caches


@pytest.fixture
def dvcbot(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[argparse.ArgumentParser]:
    monkeypatch.setenv("DVCBOT_DATABASE_URL", database_url)
    clear_caches()
    parser = argparse.ArgumentParser(prog="dvcbot")
    cli.register(parser.add_subparsers(dest="command", required=True))
    yield parser
    clear_caches()


def call(parser: argparse.ArgumentParser, *argv: str) -> int:
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_import_then_set_status_queues_the_subscribers_notification(
        dvcbot: argparse.ArgumentParser, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert call(dvcbot, "dossiers", "import", str(FIXTURE)) == 0
    assert "Register imported: 2 dossiers added, 0 updated, 5 history steps added" in capsys.readouterr().out
    with Session(engine) as session:
        dossier = session.scalars(select(Dossier).where(Dossier.code == CODE)).one()
        notify.subscribe(session, dossier.id, "telegram:42")
    assert call(dvcbot, "dossiers", "set-status", "000.00.04.h51 200221 0001", "delivered",
                "--shipment-status", "delivered") == 0
    assert capsys.readouterr().out == f"{CODE}: status delivered; 1 notification(s) queued.\n"
    assert call(dvcbot, "dossiers", "notify") == 0
    assert capsys.readouterr().out == "0 notification(s) queued.\n"
    with Session(engine) as session:
        assert session.scalars(select(Notification.conversation_key)).all() == ["telegram:42"]
    assert call(dvcbot, "dossiers", "purge") == 0
    assert capsys.readouterr().out.startswith("Purged 0 audit row(s)")


def test_errors_are_reported_and_fail(dvcbot: argparse.ArgumentParser, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(FIXTURE.read_text(encoding="utf-8").replace("0901 234 567", "12"), encoding="utf-8")
    assert call(dvcbot, "dossiers", "import", str(bad)) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: phone must be a Vietnamese phone number" in err
    assert "Register not imported: " in err
    assert call(dvcbot, "dossiers", "import", str(tmp_path / "missing.csv")) == 1
    assert call(dvcbot, "dossiers", "set-status", "not-a-code", "completed") == 1
    assert call(dvcbot, "dossiers", "set-status", CODE, "completed") == 1
    assert "no dossier" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        call(dvcbot, "dossiers", "set-status", CODE, "teleported")
