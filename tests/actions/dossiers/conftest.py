"""A register database (SQLite and PostgreSQL) that the dossier actions use, with fast answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import actions.dossiers.models  # noqa: F401  (registers the tables before the engine fixture creates them)
from actions import common
from actions.dossiers import lookup
from actions.dossiers.importer import import_csv
from actions.dossiers.settings import get_dossier_settings
from dvcbot import settings as settings_mod

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "dossiers" / "register.csv"
CODE = "000.00.04.H51-200221-0001"  # phone ends 4567, sent by post
OTHER = "000.00.12.H26-261109-0034"  # phone ends 0111, documents missing
UNKNOWN = "000.00.04.H51-200221-0002"


def clear_caches() -> None:
    for cached in (settings_mod.get_settings, get_dossier_settings, lookup.default_source):
        cached.cache_clear()
    if common._sessions.cache_info().currsize:
        common._sessions().kw["bind"].dispose()
    common._sessions.cache_clear()


@pytest.fixture
def sessions(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    """The fixture register loaded; the actions' settings pointed at it."""
    monkeypatch.setenv("DVCBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("DVCBOT_DOSSIER_MIN_ANSWER_SECONDS", "0.01")
    monkeypatch.delenv("DVCBOT_DOSSIER_API_URL", raising=False)
    clear_caches()
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        report = import_csv(session, FIXTURE, "register.csv")
    assert not report.errors, report.errors
    yield factory
    clear_caches()
