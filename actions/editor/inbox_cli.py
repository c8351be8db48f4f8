"""``dvcbot inbox list``: the editors' inbox, grouped like the console shows it, for editors without the console."""

from __future__ import annotations

import argparse
from typing import Any

from actions.editor import inbox
from dvcbot.db import make_engine, session_factory
from dvcbot.settings import get_settings


def _list(args: argparse.Namespace) -> int:
    engine = make_engine(get_settings().database_url)
    try:
        with session_factory(engine)() as session:
            groups = inbox.open_groups(session, args.limit)
            total = sum(len(g.items) for g in groups)
            if not groups:
                print("The inbox is empty.")
                return 0
            print(f"{total} open message(s) in {len(groups)} group(s); label them at /console/inbox.")
            for n, group in enumerate(groups, 1):
                predicted = ", ".join(f"{name} ×{count}" for name, count in group.intents)
                print(f"\n#{n}  {len(group.items)} message(s), predicted: {predicted}"
                      + (f", {group.fallbacks} fell back" if group.fallbacks else ""))
                for item in group.items[:args.examples]:
                    confidence = f"{item.confidence:.2f}" if item.confidence is not None else "-"
                    print(f"    [{item.id}] {item.text}  ({item.intent or '-'} {confidence}, {item.channel}, "
                          f"{item.created_at:%Y-%m-%d %H:%M})")
                if len(group.items) > args.examples:
                    print(f"    … and {len(group.items) - args.examples} more")
    finally:
        engine.dispose()
    return 0


def register(sub: Any) -> None:
    """Add ``inbox list`` to the ``dvcbot`` command."""
    ib = sub.add_parser("inbox", help="messages the bot did not understand").add_subparsers(
        dest="inbox_command", required=True)
    ls = ib.add_parser("list", help="open messages grouped by similarity, largest group first")
    ls.add_argument("--examples", type=int, default=5, help="messages shown per group (default 5)")
    ls.add_argument("--limit", type=int, default=inbox.LIST_LIMIT, help="newest messages considered")
    ls.set_defaults(func=_list)
