"""``dhr controllers show|set|history``: the versioned joint-controller arrangement.

ARCHITECTURE.md "The unified record", Controllers (:mod:`dhr.record.arrangement`). ``show``
prints a version as JSON (the one in force by default) so that it can be edited and given back
to ``set``, which checks it and records it as the next version; earlier versions are kept and
stay readable (``show --version N``, ``history``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dhr.cli_support import migrated_engine, print_table
from dhr.config import Settings
from dhr.record.arrangement import Arrangement, ArrangementError, check_national, parse_arrangement


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli"


def _when(recorded: int) -> str:
    return datetime.fromtimestamp(recorded / 1_000_000, UTC).isoformat(timespec="seconds")


def _document(arrangement: Arrangement) -> str:
    return json.dumps(arrangement.model_dump(mode="json"), indent=2)


def _warn_if_foreign(arrangement: Arrangement, settings: Settings) -> None:
    try:
        check_national(arrangement, settings.national_controller_ods)
    except ArrangementError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.arrangement_store import arrangement_version, current_arrangement
    from dhr.store.db import unit_of_work

    found: Arrangement | None
    with unit_of_work(migrated_engine(settings), write=False) as conn:
        if args.version is None:
            version, found = current_arrangement(conn)
        else:
            version, found = args.version, arrangement_version(conn, args.version)
    if found is None:
        print(f"no controller arrangement version {args.version}", file=sys.stderr)
        return 1
    label = " (the packaged default)" if version == 0 else ""
    print(f"controller arrangement version {version}{label}", file=sys.stderr)
    _warn_if_foreign(found, settings)
    print(_document(found))
    return 0


def _set(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.arrangement_store import current_arrangement, record_arrangement
    from dhr.store.db import unit_of_work

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        arrangement = parse_arrangement(text, settings.national_controller_ods)
    except ArrangementError as exc:
        print(f"{args.file} is not a valid controller arrangement:", file=sys.stderr)
        for line in str(exc).splitlines():
            print(f"  {line}", file=sys.stderr)
        return 2
    with unit_of_work(migrated_engine(settings), write=True) as conn:
        current, in_force = current_arrangement(conn)
        if current > 0 and in_force == arrangement:
            version = None
        else:
            version = record_arrangement(conn, arrangement, _actor(), time.time_ns() // 1000)
    if version is None:
        print(f"unchanged: version {current} already says this; nothing recorded")
        return 0
    print(f"recorded controller arrangement version {version}")
    print(_document(arrangement))
    return 0


def _history(_args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.arrangement_store import arrangement_history
    from dhr.store.db import unit_of_work

    with unit_of_work(migrated_engine(settings), write=False) as conn:
        versions = arrangement_history(conn)
    rows = [("0", "-", "packaged default", "-", "-")]
    rows += [
        (
            str(v.version),
            _when(v.recorded),
            v.recorded_by,
            v.arrangement.national.ods,
            str(len(v.arrangement.controllers)),
        )
        for v in versions
    ]
    in_force = versions[-1].version if versions else 0
    print_table(("VERSION", "RECORDED (UTC)", "BY", "NATIONAL", "OWN TERMS"), rows)
    print(f"in force: version {in_force}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``controllers`` on the ``dhr`` subparsers (handlers take (args, settings))."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "controllers", help="the joint-controller arrangement (versioned)"
    )
    sub = parser.add_subparsers(dest="controllers_command", required=True)
    show = sub.add_parser("show", help="print the arrangement in force (or a version) as JSON")
    show.add_argument("--version", type=int, default=None, metavar="N")
    show.set_defaults(func=_show)
    set_ = sub.add_parser("set", help="check a JSON arrangement and record it as a new version")
    set_.add_argument("file", metavar="FILE")
    set_.set_defaults(func=_set)
    history = sub.add_parser("history", help="list the recorded versions")
    history.set_defaults(func=_history)
    return parser
