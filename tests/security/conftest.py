"""Security fixtures: a gateway wired to fake platforms (per test), and the real stack of ``make run`` (per session).

The stack is started the way ``make run`` starts it (``dvcbot.supervisor.services``), on a temporary SQLite
database holding the catalog and the demo dossier register, so that the checks see the real bindings, the real
Rasa token check and the real dossier limits.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from actions.catalog.directory import load_directory, read_directory
from actions.catalog.loader import load_catalog
from actions.catalog.schema import read_catalog
from actions.dossiers.importer import import_csv
from bot.console.auth import hash_password
from dvcbot import PROJECT_ROOT
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import Settings
from dvcbot.supervisor import Supervisor, services
from dvcbot.training import current_model
from tests.bot.handoff_helpers import StaffDesk, add_staff, handoff_gateway
from tests.bot.helpers import Channels, make_channels
from tests.db import database_url, engine  # noqa: F401  (fixtures)
from tests.e2e.conftest import wait_healthy
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port, serve

RASA_TOKEN = "security-test-token"
CONSOLE_PASSWORD = "mat-khau-2025"


@pytest.fixture
def channels(database_url: str, engine: Engine) -> Iterator[Channels]:  # noqa: F811
    """A gateway with the web chat, Telegram and Zalo, in front of a fake Rasa and fake platforms."""
    rasa, telegram, zalo = FakeRasa(), FakeTelegram(), FakeZalo()
    port = free_port()
    with serve(rasa.app(), port), serve(telegram.app()) as telegram_url, serve(zalo.app()) as zalo_url:
        yield from make_channels(database_url, engine, (rasa, port), (telegram, telegram_url), (zalo, zalo_url))


@pytest.fixture
def console_desk(database_url: str, engine: Engine, tmp_path: Path) -> Iterator[StaffDesk]:  # noqa: F811
    """The gateway with the handoff and the web console; accounts ``lan`` (staff), ``ha`` (supervisor) and ``bt``
    (editor), password :data:`CONSOLE_PASSWORD`, at most 3 failed logins; the editor pages write into a copy of
    data/ under ``tmp_path``."""
    data = tmp_path / "data"
    shutil.copytree(PROJECT_ROOT / "data", data)
    for username, name, role in (("lan", "Chị Lan", "staff"), ("ha", "Chị Hà", "supervisor"),
                                 ("bt", "Biên tập", "editor")):
        add_staff(engine, username, name, role=role, password_hash=hash_password(CONSOLE_PASSWORD))
    rasa, telegram, zalo = FakeRasa(), FakeTelegram(), FakeZalo()
    port = free_port()
    with serve(rasa.app(), port), serve(telegram.app()) as telegram_url, serve(zalo.app()) as zalo_url:
        yield from handoff_gateway(database_url, engine, (rasa, port), (telegram, telegram_url), (zalo, zalo_url),
                                   console_login_max_failures=3, catalog_dir=data / "catalog",
                                   editor_data_dir=data, post_offices_file=data / "post_offices.yml")


@dataclass
class RealStack:
    url: str
    settings: Settings
    supervisor: Supervisor

    def pids(self) -> dict[str, int]:
        return {s.name: s.proc.pid for s in self.supervisor.svcs if s.proc}


@pytest.fixture(scope="session")
def real_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealStack]:
    model = current_model()
    if model is None:
        pytest.fail("no trained Rasa model: run `make model` (make test does) before the security tests")
    db_url = f"sqlite:///{tmp_path_factory.mktemp('security') / 'dvcbot.db'}"
    eng = make_engine(db_url)
    create_schema(eng)
    catalog, errors = read_catalog(PROJECT_ROOT / "data" / "catalog", PROJECT_ROOT)
    offices, office_errors = read_directory(PROJECT_ROOT / "data" / "post_offices.yml", PROJECT_ROOT)
    assert not errors and not office_errors
    with Session(eng) as session:
        load_catalog(session, catalog)
        load_directory(session, offices)
        assert not import_csv(session, PROJECT_ROOT / "data" / "dossiers" / "demo_register.csv").errors
    eng.dispose()
    settings = Settings(database_url=db_url, gateway_port=free_port(), rasa_port=free_port(),
                        actions_port=free_port(), rasa_token=RASA_TOKEN)
    os.environ.pop("DVCBOT_RASA_TOKEN", None)
    log_path = Path(tmp_path_factory.mktemp("security-logs")) / "stack.log"
    with log_path.open("w", encoding="utf-8") as log:
        sup = Supervisor(services(settings, Path(model), RASA_TOKEN), out=log)
        sup.start()
        url = f"http://127.0.0.1:{settings.gateway_port}"
        try:
            wait_healthy(url, sup, 240)
            yield RealStack(url, settings, sup)
        finally:
            sup.stop()
