"""Shared fixtures for every test run (project venv and Rasa venv alike: stdlib and pytest only).

PostgreSQL and Redis come from ``DVCBOT_TEST_POSTGRES_URL`` / ``DVCBOT_TEST_REDIS_URL``. Without them the tests
that need them are skipped — unless ``DVCBOT_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which turns a missing
service into a failure so that CI can never pass by skipping them.
"""

from __future__ import annotations

import os

import pytest

REQUIRE = os.environ.get("DVCBOT_REQUIRE_SERVICES") == "1"


def service_url(var: str, what: str) -> str:
    url = os.environ.get(var)
    if not url:
        message = f"{what} tests need {var}"
        if REQUIRE:
            pytest.fail(message + " (DVCBOT_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    return service_url("DVCBOT_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return service_url("DVCBOT_TEST_REDIS_URL", "Redis")


SERVICE_WORDS = ("PostgreSQL", "Redis", "Rasa", "Chromium")


def _skipped_services(stats: dict[str, list[object]]) -> list[object]:
    return [r for r in stats.get("skipped", []) if any(w in str(getattr(r, "longrepr", "")) for w in SERVICE_WORDS)]


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Under DVCBOT_REQUIRE_SERVICES=1, a skipped PostgreSQL/Redis/Rasa/browser test is reported loudly."""
    bad = _skipped_services(terminalreporter.stats) if REQUIRE else []
    if bad:
        terminalreporter.write_line(f"ERROR: {len(bad)} service test(s) skipped under DVCBOT_REQUIRE_SERVICES=1")


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    """...and makes the run fail."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if REQUIRE and exitstatus == 0 and reporter and _skipped_services(reporter.stats):
        session.exitstatus = 1
