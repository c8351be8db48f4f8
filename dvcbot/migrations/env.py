"""Alembic's environment: run by :mod:`dvcbot.migrations` on the connection it passes, with its lock held.

Every reflected table that no model declares (Rasa's tracker store may share the database) is left out of the
comparison, so autogenerate never proposes to drop it; a model table that goes away needs a hand-written
``op.drop_table``.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from dvcbot.db import load_models

config = context.config
target_metadata = load_models()


def _include_name(name: str | None, type_: str, _parent: Any) -> bool:
    return type_ != "table" or name in target_metadata.tables


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        include_name=_include_name,
        compare_type=True,
        **kwargs,
    )


def run_online(connection: Connection) -> None:
    # SQLite cannot ALTER most things: batch mode copies the table instead (and autogenerate writes batch ops).
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_offline(url: str) -> None:
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline(config.get_main_option("sqlalchemy.url") or "")
else:
    run_online(config.attributes["connection"])
