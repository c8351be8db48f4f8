"""Structured logs (dvcbot/logs.py): one JSON object per line, the conversation from the context, numbers masked;
and the processes of `make run` / `make run-prod` started the way that gives them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dvcbot import logs
from dvcbot.settings import Settings
from dvcbot.supervisor import replica_services, services


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger and the libraries' loggers as they were, after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    libs = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
            for name in logs.OWN_HANDLERS}
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (lib_handlers, propagate) in libs.items():
        logging.getLogger(name).handlers[:] = lib_handlers
        logging.getLogger(name).propagate = propagate


def configure(out: io.StringIO, fmt: str = "json", role: str = "gateway") -> None:
    logs.configure(role, fmt, "INFO", handler=logging.StreamHandler(out))


def lines(out: io.StringIO, logger: str) -> list[dict[str, Any]]:
    """The JSON records of ``logger`` (a background task another test left behind may log meanwhile)."""
    return [entry for entry in map(json.loads, out.getvalue().splitlines()) if entry["logger"] == logger]


def test_a_json_line_per_record_with_conversation_and_masked_numbers(captured: io.StringIO) -> None:
    configure(captured)
    log = logging.getLogger("bot.router")
    with logs.conversation_context("telegram:7001"):
        log.warning("citizen wrote %s\nand then %s", "gọi 0912 345 678", "CCCD 001099012345")
    log.info("no conversation here")
    first, second = lines(captured, "bot.router")
    assert set(first) == {"time", "level", "logger", "message", "role", "conversation"}
    assert first["level"] == "WARNING" and first["logger"] == "bot.router" and first["role"] == "gateway"
    assert first["conversation"] == "telegram:7001"
    assert first["message"] == "citizen wrote gọi **** *** 678\nand then CCCD *********345"
    assert first["time"].endswith("Z") and first["time"][:2] == "20"
    assert second["conversation"] is None and second["message"] == "no conversation here"
    assert "0912" not in captured.getvalue() and "001099012345" not in captured.getvalue()


def test_a_traceback_is_one_masked_field(captured: io.StringIO) -> None:
    configure(captured, role="actions")
    try:
        raise ValueError("no dossier for phone 0987654321")
    except ValueError:
        logging.getLogger("actions.dossiers").exception("lookup failed")
    (line,) = lines(captured, "actions.dossiers")
    assert line["role"] == "actions" and line["message"] == "lookup failed"
    assert "ValueError: no dossier for phone *******321" in line["exception"]
    assert "0987654321" not in captured.getvalue()


async def test_each_task_logs_its_own_conversation(captured: io.StringIO) -> None:
    configure(captured)
    log = logging.getLogger("tests.logs.tasks")

    async def work(key: str) -> None:
        with logs.conversation_context(key):
            await asyncio.sleep(0.01)
            log.info("sending")
            await asyncio.sleep(0.01)
            log.info("sent")

    await asyncio.gather(work("zalo:a"), work("telegram:b"))
    log.info("after")
    seen = [(line["message"], line["conversation"]) for line in lines(captured, "tests.logs.tasks")]
    assert sorted(seen[:4]) == [("sending", "telegram:b"), ("sending", "zalo:a"), ("sent", "telegram:b"),
                                ("sent", "zalo:a")]
    assert seen[4] == ("after", None)


def test_library_records_come_through_the_same_handler_and_configure_is_idempotent(captured: io.StringIO) -> None:
    own = io.StringIO()
    logging.getLogger("uvicorn").addHandler(logging.StreamHandler(own))  # as uvicorn's logging config does
    logging.getLogger("uvicorn").propagate = False
    configure(io.StringIO())
    configure(captured)  # replaces the first
    assert sum(getattr(h, "dvcbot", False) for h in logging.getLogger().handlers) == 1
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received from %s", "10.0.0.1")
    (line,) = lines(captured, "uvicorn.error")
    assert line["logger"] == "uvicorn.error" and line["message"] == "Invalid HTTP request received from 10.0.0.1"
    assert own.getvalue() == ""


def test_text_format_shows_the_conversation(captured: io.StringIO) -> None:
    configure(captured, "text")
    with logs.conversation_context("zalo:42"):
        logging.getLogger("bot.intake").error("failed for %s", "0912345678")
    text = captured.getvalue()
    assert text.count("\n") == 1 and not text.startswith("{")
    assert "ERROR" in text and "bot.intake [zalo:42] failed for *******678" in text


def test_unknown_formats_are_refused(captured: io.StringIO) -> None:
    with pytest.raises(ValueError):
        configure(captured, "xml")
    with pytest.raises(ValidationError):
        Settings(log_format="xml")  # type: ignore[arg-type]


def test_local_run_keeps_its_format_and_the_production_profile_logs_json(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    monkeypatch.delenv("DVCBOT_LOG_FORMAT", raising=False)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    local = {s.name: s for s in services(settings, tmp_path / "model.tar.gz", "token")}
    assert "DVCBOT_LOG_FORMAT" not in local["gateway"].env  # make run: text, the default
    assert local["actions"].cmd[1:] == ["-m", "actions.server", "--port", "5055"]
    assert "bot.app:gateway_app" in local["gateway"].cmd
    prod = replica_services(settings, tmp_path / "model.tar.gz", "token", replicas=1, workdir=tmp_path)
    assert {s.env["DVCBOT_LOG_FORMAT"] for s in prod} == {"json"}
    monkeypatch.setenv("DVCBOT_LOG_FORMAT", "text")  # an explicit choice wins
    prod = replica_services(settings, tmp_path / "model.tar.gz", "token", replicas=1, workdir=tmp_path)
    assert {s.env["DVCBOT_LOG_FORMAT"] for s in prod} == {"text"}


def test_bot_tokens_are_masked_and_httpx_does_not_log_every_request(captured: io.StringIO) -> None:
    configure(captured)
    log = logging.getLogger("bot.outbox")
    token = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    log.warning("POST https://api.telegram.org/bot%s/sendMessage failed", token)
    log.warning("POST http://127.0.0.1:8081/bot123456:TEST-token/getMe and %s", f"token={token}")
    log.warning("at 10:30:00, ratio 3:1, row 12345:short")
    first, second, third = (e["message"] for e in lines(captured, "bot.outbox"))
    assert first == "POST https://api.telegram.org/bot*******678:***/sendMessage failed"
    assert second == "POST http://127.0.0.1:8081/bot123456:***/getMe and token=*******678:***"
    assert third == "at 10:30:00, ratio 3:1, row 12345:short"
    assert "AAHdq" not in captured.getvalue() and "TEST-token" not in captured.getvalue()
    logging.getLogger("httpx").info('HTTP Request: POST http://127.0.0.1:1/webhooks/rest/webhook "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("kept")
    assert [e["message"] for e in lines(captured, "httpx")] == ["kept"]
