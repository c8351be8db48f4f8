from collections.abc import Iterator
from pathlib import Path

import pytest

from actions import common
from dvcbot import settings as settings_mod
from tests.db import database_url, engine  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def no_default_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Actions that write (action_fallback fills the editors' inbox) never reach the developer's var/dvcbot.db:
    without ``actions_on`` they see an empty database of their own."""
    monkeypatch.setenv("DVCBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    settings_mod.get_settings.cache_clear()
    common._sessions.cache_clear()
    yield
    if common._sessions.cache_info().currsize:
        common._sessions().kw["bind"].dispose()
    settings_mod.get_settings.cache_clear()
    common._sessions.cache_clear()
