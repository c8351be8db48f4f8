"""The real stack for end-to-end tests: the trained Rasa model, the action server and the gateway.

All three are started through ``dvcbot.supervisor`` (the code behind ``make run``) on free loopback ports,
against a temporary SQLite database holding the real catalog.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from actions.catalog.loader import load_catalog
from actions.catalog.schema import read_catalog
from dvcbot import PROJECT_ROOT
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import Settings
from dvcbot.supervisor import Supervisor, services
from dvcbot.training import current_model
from tests.servers import free_port


@dataclass
class Stack:
    url: str
    settings: Settings
    supervisor: Supervisor

    def service(self, name: str) -> int:
        for svc in self.supervisor.svcs:
            if svc.name == name and svc.proc:
                return svc.proc.pid
        raise KeyError(name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    model = current_model()
    if model is None:
        pytest.fail("no trained Rasa model: run `make model` (make test does) before the end-to-end tests")
    db_url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'dvcbot.db'}"
    engine = make_engine(db_url)
    create_schema(engine)
    catalog, errors = read_catalog(PROJECT_ROOT / "data" / "catalog", PROJECT_ROOT)
    assert not errors, errors
    with Session(engine) as session:
        load_catalog(session, catalog)
    engine.dispose()
    settings = Settings(database_url=db_url, gateway_port=free_port(), rasa_port=free_port(),
                        actions_port=free_port(), rasa_token="e2e-token")
    os.environ.pop("DVCBOT_RASA_TOKEN", None)
    sup = Supervisor(services(settings, Path(model), "e2e-token"))
    sup.start()
    url = f"http://127.0.0.1:{settings.gateway_port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            dead = [s.name for s in sup.svcs if s.proc and s.proc.poll() is not None]
            if dead:
                pytest.fail(f"{', '.join(dead)} exited during start-up")
            try:
                if httpx.get(f"{url}/healthz", timeout=3).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the stack did not become healthy within 240 s")
            time.sleep(1)
        yield Stack(url, settings, sup)
    finally:
        sup.stop()
