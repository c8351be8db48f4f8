"""The schema's Alembic migrations (``dvcbot.migrations``), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect, text

from dvcbot import PROJECT_ROOT, db, migrations
from dvcbot.db import create_schema, load_models, make_engine
from tests.db import database_url  # noqa: F401  (fixture)


@pytest.fixture
def bare(database_url: str) -> Iterator[Engine]:  # noqa: F811
    """An engine on a fresh, empty database (no schema)."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def differences(engine: Engine, metadata: MetaData | None = None) -> list[Any]:
    """What autogenerate would write to bring ``engine``'s database to the models (or to ``metadata``)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata if metadata is not None else load_models()))


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def legacy(engine: Engine) -> None:
    """A database as ``create_all`` made it before migrations: the baseline's tables, no ``alembic_version``."""
    migrations.upgrade(engine, migrations.BASELINE)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("INSERT INTO button_payloads (digest, payload) VALUES ('d1', 'kept')"))


def test_upgrade_from_empty_gives_exactly_the_models_schema(bare: Engine) -> None:
    create_schema(bare)
    assert migrations.current(bare) == migrations.head()
    assert tables(bare) == set(load_models().tables) | {"alembic_version"}
    assert differences(bare) == []  # a model change without a revision fails here
    create_schema(bare)  # a second start changes nothing
    assert migrations.current(bare) == migrations.head()


def with_priority_column() -> MetaData:
    """A copy of the models' tables in which a model gained a column."""
    changed = MetaData(naming_convention=load_models().naming_convention)
    for table in load_models().tables.values():
        table.to_metadata(changed)
    changed.tables["tickets"].append_column(Column("priority", Integer))
    return changed


def test_the_comparison_sees_a_column_no_revision_adds(bare: Engine) -> None:
    create_schema(bare)
    found = differences(bare, with_priority_column())
    assert [(d[0], d[2], d[3].name) for d in found] == [("add_column", "tickets", "priority")]


def test_downgrade_to_base_and_upgrade_again(bare: Engine) -> None:
    create_schema(bare)
    migrations.downgrade(bare, "base")
    assert tables(bare) == {"alembic_version"}
    assert migrations.current(bare) is None
    create_schema(bare)
    assert migrations.current(bare) == migrations.head()
    assert differences(bare) == []


def test_a_database_made_by_create_all_is_stamped_and_upgraded(bare: Engine) -> None:
    legacy(bare)
    assert migrations.current(bare) is None
    create_schema(bare)
    assert migrations.current(bare) == migrations.head()
    assert differences(bare) == []
    with bare.connect() as conn:
        assert conn.execute(text("SELECT payload FROM button_payloads WHERE digest = 'd1'")).scalar() == "kept"


def test_an_old_database_without_the_inbound_column_gets_it(bare: Engine) -> None:
    legacy(bare)
    with bare.begin() as conn:  # the transcript table as the foundation created it
        cascade = " CASCADE" if bare.dialect.name == "postgresql" else ""
        conn.execute(text(f"DROP TABLE messages{cascade}"))
        conn.execute(text("CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL, "
                          "direction VARCHAR(3) NOT NULL, sender VARCHAR(10) NOT NULL, text TEXT, payload JSON, "
                          "created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"))
    create_schema(bare)
    assert migrations.current(bare) == migrations.head()
    assert "inbound_id" in {c["name"] for c in inspect(bare).get_columns("messages")}


def test_a_partial_old_database_is_refused_with_what_is_missing(bare: Engine) -> None:
    legacy(bare)
    with bare.begin() as conn:
        conn.execute(text("DROP TABLE editor_inbox"))
    with pytest.raises(migrations.SchemaError, match=r"missing: editor_inbox\)"):
        create_schema(bare)
    assert "alembic_version" not in tables(bare)
    assert "editor_inbox" not in tables(bare)


def test_an_old_database_missing_a_column_is_refused(bare: Engine) -> None:
    legacy(bare)
    with bare.begin() as conn:
        conn.execute(text("DROP TABLE button_payloads"))
        conn.execute(text("CREATE TABLE button_payloads (id INTEGER PRIMARY KEY, digest VARCHAR(64))"))
    with pytest.raises(migrations.SchemaError, match=r"lacks columns of revision 0001: button_payloads\.payload"):
        create_schema(bare)
    assert "alembic_version" not in tables(bare)


def test_other_programs_tables_do_not_make_a_database_old(bare: Engine) -> None:
    with bare.begin() as conn:  # Rasa's SQL tracker store may share the database
        conn.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255))"))
    create_schema(bare)
    assert migrations.current(bare) == migrations.head()
    assert "events" in tables(bare)


UPGRADER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dvcbot.db import create_schema, load_models, make_engine

    url, ready, me, other = sys.argv[1:]
    load_models()
    engine = make_engine(url)
    Path(ready, me).touch()
    while not Path(ready, other).exists():  # both start the upgrade at the same moment
        time.sleep(0.005)
    create_schema(engine)
""")


def test_concurrent_upgrades_both_succeed(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADER, database_url, str(tmp_path), me, other],
                              env=env, stderr=subprocess.PIPE, text=True)
             for me, other in (("a", "b"), ("b", "a"))]
    results = [(proc.wait(timeout=120), proc.stderr.read() if proc.stderr else "") for proc in procs]
    assert results == [(0, ""), (0, "")]
    engine = make_engine(database_url)
    try:
        assert migrations.current(engine) == migrations.head()
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_db_init_on_a_fresh_sqlite_file_reaches_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'dvcbot.db'}"
    env = {**os.environ, "DVCBOT_DATABASE_URL": url, "PYTHONPATH": str(PROJECT_ROOT)}
    for command in ("init", "current"):
        done = subprocess.run([sys.executable, "-m", "dvcbot.cli", "db", command], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"revision {migrations.head()} (up to date)" in done.stdout
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [migrations.head()]
    finally:
        engine.dispose()


def test_a_new_revision_holds_the_model_change_and_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "migrations"  # ``dvcbot db revision`` writes here instead of the source tree
    shutil.copytree(migrations.HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrations, "HERE", copy)
    changed = with_priority_column()
    monkeypatch.setattr(db, "load_models", lambda: changed)  # what env.py compares with
    head = migrations.head()

    path = migrations.new_revision("tickets: priority column")

    assert path.parent == copy / "versions" and path.name == f"{int(head) + 1:04d}_tickets_priority_column.py"
    source = path.read_text()
    assert f"down_revision = {head!r}" in source
    assert "with op.batch_alter_table('tickets'" in source
    assert "add_column(sa.Column('priority', sa.Integer()" in source
    engine = make_engine(f"sqlite:///{tmp_path / 'applied.db'}")
    try:
        migrations.upgrade(engine)
        assert migrations.current(engine) == path.name[:4]
        assert differences(engine, changed) == []
    finally:
        engine.dispose()
