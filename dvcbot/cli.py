"""The ``dvcbot`` command: database, catalog, training and the local runner."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dvcbot import PROJECT_ROOT
from dvcbot.settings import get_settings


def _db(args: argparse.Namespace) -> int:
    """``dvcbot db init|upgrade|downgrade|current|revision``: the schema's Alembic migrations."""
    from alembic.util import CommandError

    from dvcbot import migrations
    from dvcbot.db import make_engine

    url = get_settings().database_url
    if args.db_command == "revision":
        print(f"Wrote {migrations.new_revision(args.message)}: read it, tidy it and commit it with the model change.")
        return 0
    if getattr(args, "sql", False):
        migrations.upgrade_sql(url, args.revision)
        return 0
    engine = make_engine(url)
    try:
        if args.db_command in ("init", "upgrade"):
            migrations.upgrade(engine, getattr(args, "revision", "head"))
        elif args.db_command == "downgrade":
            migrations.downgrade(engine, args.revision)
        revision, head = migrations.current(engine), migrations.head()
    except (migrations.SchemaError, CommandError) as exc:  # e.g. a revision this code does not know
        print(f"Database {_safe_url(url)}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    state = "up to date" if revision == head else f"behind: the newest is {head}, run `dvcbot db upgrade`"
    print(f"Database {_safe_url(url)}: revision {revision or '(none)'} ({state})")
    return 0 if args.db_command != "current" or revision == head else 1


def _safe_url(url: str) -> str:
    """The URL without its password, for printing."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def _read_content() -> tuple[Any, Any, list[Any]]:
    from actions.catalog.directory import read_directory
    from actions.catalog.schema import read_catalog

    settings = get_settings()
    catalog, errors = read_catalog(settings.catalog_dir, PROJECT_ROOT)
    offices, office_errors = read_directory(settings.post_offices_file, PROJECT_ROOT)
    errors = [*errors, *office_errors]
    for err in errors:
        print(err, file=sys.stderr)
    return catalog, offices, errors


def _catalog_check(_: argparse.Namespace) -> int:
    catalog, offices, errors = _read_content()
    if errors:
        print(f"{len(errors)} error(s) in the catalog.", file=sys.stderr)
        return 1
    print(f"Catalog OK: {len(catalog.procedures)} procedures, {len(catalog.groups)} groups, "
          f"{len(offices)} post offices.")
    return 0


def _catalog_load(_: argparse.Namespace) -> int:
    from actions.catalog.directory import load_directory
    from actions.catalog.loader import load_catalog
    from dvcbot.db import create_schema, make_engine, session_factory

    catalog, offices, errors = _read_content()
    if errors:
        print("Catalog not loaded: fix the errors above first.", file=sys.stderr)
        return 1
    engine = make_engine(get_settings().database_url)
    create_schema(engine)
    with session_factory(engine)() as session:
        report = load_catalog(session, catalog)
        count = load_directory(session, offices)
    engine.dispose()
    print(f"Catalog loaded: {report.summary()}; {count} post offices.")
    for label, ids in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
        if ids:
            print(f"  {label}: {', '.join(ids)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from dvcbot.training import train

    train(force=args.force)
    return 0


def _content_check(args: argparse.Namespace) -> int:
    from dvcbot.content import main as content_check

    return content_check(rasa=not args.no_rasa)


def _models(args: argparse.Namespace) -> int:
    from dvcbot.deploy import main as models_main

    return models_main(args.command, getattr(args, "model", None), getattr(args, "force", False))


def _run(args: argparse.Namespace) -> int:
    from dvcbot.supervisor import run
    from dvcbot.training import current_model, train

    model = current_model() if args.no_train else train()
    if model is None:
        print("No trained model: run `dvcbot train` first.", file=sys.stderr)
        return 1
    return run(get_settings(), model)


def _run_prod(args: argparse.Namespace) -> int:
    from dvcbot.supervisor import ensure_database, run_prod
    from dvcbot.training import current_model, train

    settings = get_settings()
    if ensure_database(settings.database_url):
        print(f"Created the database {_safe_url(settings.database_url)}")
    if _catalog_load(args) != 0:
        return 1
    model = current_model() if args.no_train else train()
    if model is None:
        print("No trained model: run `dvcbot train` first.", file=sys.stderr)
        return 1
    return run_prod(settings, model, args.replicas)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dvcbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    db.add_parser("init", help="create the tables or bring them to the newest migration").set_defaults(func=_db)
    up = db.add_parser("upgrade", help="apply the migrations up to REVISION (default: the newest)")
    up.add_argument("revision", nargs="?", default="head")
    up.add_argument("--sql", action="store_true",
                    help="print the SQL instead of running it (from an empty database, or REVISION=FROM:TO)")
    up.set_defaults(func=_db)
    down = db.add_parser("downgrade", help="undo the migrations after REVISION (base: drop every table)")
    down.add_argument("revision")
    down.set_defaults(func=_db)
    db.add_parser("current", help="the database's revision; exit status 1 unless it is the newest").set_defaults(
        func=_db)
    rev = db.add_parser("revision", help="write a new migration from the models' changes (developers)")
    rev.add_argument("-m", "--message", required=True, help="what changes, e.g. 'tickets: priority column'")
    rev.set_defaults(func=_db)

    cat = sub.add_parser("catalog", help="procedure catalog").add_subparsers(dest="catalog_command", required=True)
    cat.add_parser("check", help="check every catalog file; errors as file:line: message").set_defaults(
        func=_catalog_check)
    cat.add_parser("load", help="load the catalog into the database (idempotent)").set_defaults(func=_catalog_load)

    tr = sub.add_parser("train", help="train the Rasa model if its inputs changed")
    tr.add_argument("--force", action="store_true", help="train even if nothing changed")
    tr.set_defaults(func=_train)

    ct = sub.add_parser("content", help="content editors' checks").add_subparsers(dest="content_command",
                                                                                  required=True)
    cc = ct.add_parser("check", help="rasa data validate, the catalog and cross-checks; errors as file:line: message")
    cc.add_argument("--no-rasa", action="store_true", help="skip rasa data validate (about 10 s)")
    cc.set_defaults(func=_content_check)
    ev = sub.add_parser("eval", help="compare the newest model with the live one on the held-out data")
    ev.add_argument("model", nargs="?", help="a model in models/ (default: the newest trained)")
    ev.set_defaults(func=_models)
    dp = sub.add_parser("deploy", help="load a model into the running Rasa server, unless it scores lower")
    dp.add_argument("--force", action="store_true", help="deploy even if it scores lower than the live model")
    dp.add_argument("model", nargs="?", help="a model in models/ (default: the newest trained)")
    dp.set_defaults(func=_models)
    sub.add_parser("rollback", help="load the model that was live before the last deploy").set_defaults(
        func=_models)

    from actions.dossiers.cli import register as register_dossiers

    register_dossiers(sub)
    from bot.cli_staff import register as register_staff
    register_staff(sub)
    from actions.editor.inbox_cli import register as register_inbox
    register_inbox(sub)

    rn = sub.add_parser("run", help="start Rasa, the action server and the gateway")
    rn.add_argument("--no-train", action="store_true", help="serve the last trained model as it is")
    rn.set_defaults(func=_run)
    rp = sub.add_parser("run-prod", help="the production profile: N replicas of each service behind HAProxy")
    rp.add_argument("--replicas", type=int, default=2, help="replicas of each service (default 2)")
    rp.add_argument("--no-train", action="store_true", help="serve the last trained model as it is")
    rp.set_defaults(func=_run_prod)

    from bot.channels.telegram_admin import add_commands as telegram_commands

    telegram_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # the `dvcbot` command itself (not a caller in this process): its logging is ours to set
        from dvcbot import logs

        settings = get_settings()
        if getattr(args, "dossiers_command", None) == "notify":  # a service of `make run`
            logs.configure("notify", settings.log_format, settings.log_level)
        else:  # a command prints what it did; its log shows only what went wrong
            logs.configure("cli", settings.log_format, "WARNING")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
