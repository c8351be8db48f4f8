"""The real stack for end-to-end tests: the trained Rasa model, the action server and the gateway.

All three are started through ``dvcbot.supervisor`` (the code behind ``make run``) on free loopback ports,
against a temporary SQLite database holding the real catalog and the demo dossier register.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from actions.catalog.directory import load_directory, read_directory
from actions.catalog.loader import load_catalog
from actions.catalog.schema import read_catalog
from actions.dossiers.importer import import_csv
from dvcbot import PROJECT_ROOT
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import Settings
from dvcbot.supervisor import Supervisor, services
from dvcbot.training import current_model
from tests.bot.helpers import TELEGRAM_SECRET
from tests.fakes import zalo as zalo_fake
from tests.fakes.telegram import STAFF_GROUP, FakeTelegram
from tests.fakes.telegram import TOKEN as TELEGRAM_TOKEN
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port, serve


@dataclass
class Stack:
    url: str
    settings: Settings
    supervisor: Supervisor
    editor_data: Path  # the copy of data/ the console's editor pages write into

    def service(self, name: str) -> int:
        for svc in self.supervisor.svcs:
            if svc.name == name and svc.proc:
                return svc.proc.pid
        raise KeyError(name)

    def kill(self, name: str) -> None:
        pid = self.service(name)
        os.killpg(pid, signal.SIGKILL)
        while self.supervisor_proc(name).poll() is None:
            time.sleep(0.05)

    def supervisor_proc(self, name: str) -> subprocess.Popen[bytes]:
        proc = next(s.proc for s in self.supervisor.svcs if s.name == name)
        assert proc is not None
        return proc

    def restart(self, name: str) -> None:
        """Bring a killed service back and wait until the whole stack is healthy again."""
        self.supervisor.restart(name)
        wait_healthy(self.url, self.supervisor, 240)


def wait_healthy(url: str, sup: Supervisor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        dead = [s.name for s in sup.svcs if s.proc and s.proc.poll() is not None]
        if dead:
            pytest.fail(f"{', '.join(dead)} exited during start-up")
        try:
            if httpx.get(f"{url}/healthz", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the stack did not become healthy within {seconds:.0f} s")
        time.sleep(1)


@dataclass
class Platforms:
    """Fake Telegram Bot API and Zalo OpenAPI/OAuth servers the stack's gateway is configured to use."""

    telegram: FakeTelegram
    telegram_url: str
    zalo: FakeZalo
    zalo_url: str

    def settings(self) -> dict[str, str]:
        return dict(telegram_token=TELEGRAM_TOKEN, telegram_secret=TELEGRAM_SECRET, telegram_api_base=self.telegram_url,
                    zalo_app_id=zalo_fake.APP_ID, zalo_app_secret=zalo_fake.APP_SECRET,
                    zalo_oa_secret_key=zalo_fake.OA_SECRET_KEY, zalo_access_token=self.zalo.access_token,
                    zalo_refresh_token=self.zalo.refresh_token, zalo_api_base=self.zalo_url,
                    zalo_oauth_base=self.zalo_url)


@contextmanager
def handoff_env(**extra: str) -> Iterator[None]:
    """Staff always on duty and a Telegram staff group, for the processes started inside (not for other tests)."""
    values = {"DVCBOT_STAFF_TELEGRAM_GROUP_ID": str(STAFF_GROUP), "DVCBOT_HANDOFF_HOURS": "mon-sun 00:00-24:00",
              **extra}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def platforms() -> Iterator[Platforms]:
    telegram, zalo = FakeTelegram(), FakeZalo()
    with serve(telegram.app()) as telegram_url, serve(zalo.app()) as zalo_url:
        yield Platforms(telegram, telegram_url, zalo, zalo_url)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, platforms: Platforms) -> Iterator[Stack]:
    model = current_model()
    if model is None:
        pytest.fail("no trained Rasa model: run `make model` (make test does) before the end-to-end tests")
    db_url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'dvcbot.db'}"
    engine = make_engine(db_url)
    create_schema(engine)
    catalog, errors = read_catalog(PROJECT_ROOT / "data" / "catalog", PROJECT_ROOT)
    assert not errors, errors
    offices, errors = read_directory(PROJECT_ROOT / "data" / "post_offices.yml", PROJECT_ROOT)
    assert not errors, errors
    with Session(engine) as session:
        load_catalog(session, catalog)
        load_directory(session, offices)
        register = import_csv(session, PROJECT_ROOT / "data" / "dossiers" / "demo_register.csv")
        assert not register.errors, register.errors
    engine.dispose()
    settings = Settings(database_url=db_url, gateway_port=free_port(), rasa_port=free_port(),
                        actions_port=free_port(), rasa_token="e2e-token", **platforms.settings())
    os.environ.pop("DVCBOT_RASA_TOKEN", None)
    log_path = tmp_path_factory.mktemp("e2e-logs") / "stack.log"
    log = log_path.open("w", encoding="utf-8")
    print(f"end-to-end stack log: {log_path}")
    editor_data = tmp_path_factory.mktemp("e2e-data") / "data"
    shutil.copytree(PROJECT_ROOT / "data", editor_data)  # what editors label in the console goes here, not to data/
    with handoff_env(DVCBOT_EDITOR_DATA_DIR=str(editor_data)):
        svcs = services(settings, Path(model), "e2e-token")
    sup = Supervisor(svcs, out=log)
    sup.start()
    url = f"http://127.0.0.1:{settings.gateway_port}"
    try:
        wait_healthy(url, sup, 240)
        yield Stack(url, settings, sup, editor_data)
    finally:
        sup.stop()
        log.close()


@pytest.fixture(scope="session")
def stack_engine(stack: Stack) -> Iterator[Engine]:
    """The stack's database, for tests that wait on what the gateway stored."""
    eng = make_engine(stack.settings.database_url)
    yield eng
    eng.dispose()
