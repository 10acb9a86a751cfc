"""``dhr opt-out add|remove|list``: the national data opt-out registry.

https://digital.nhs.uk/services/national-data-opt-out: a patient may refuse that their
confidential data is used for research and planning (secondary uses); direct care is not
affected. DHR keeps the registry in ``data_opt_out`` (one row per NHS number,
:mod:`dhr.store.policy_store`), and the consent decision hides opted-out patients from
secondary-use requests unless their own Consent permits (docs/adr/0009).

NHS numbers are given as ten digits and checked with Modulus 11 (:mod:`dhr.record.nhs_number`)
before anything is recorded: one bad number refuses the whole command with exit code 2 and
says why. Adding a number already recorded, or removing one that is not, changes nothing and
says so. Each change is audited: one AuditEvent per command (subtype ``data-opt-out``, action
C or D, the ``cli:<os user>`` principal, the NHS numbers in the query entity), written in the
same transaction as the change.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from dhr.audit.model import Action
from dhr.cli_support import migrated_engine, print_table
from dhr.config import Settings
from dhr.fhir.ids import new_id
from dhr.record.nhs_number import problem

AUDIT_SUBTYPE = "data-opt-out"


def _when(recorded: int) -> str:
    return datetime.fromtimestamp(recorded / 1_000_000, UTC).isoformat(timespec="seconds")


def _checked(numbers: Sequence[str]) -> bool:
    """Print why each invalid NHS number is refused; whether all are valid."""
    valid = True
    for number in numbers:
        why = problem(number)
        if why is not None:
            print(f"{number!r} is not a valid NHS number: {why}", file=sys.stderr)
            valid = False
    if not valid:
        print("nothing was recorded", file=sys.stderr)
    return valid


def _audit(conn: Connection, settings: Settings, action: Action, changed: Sequence[str]) -> None:
    from dhr.access.system import cli_principal
    from dhr.audit.events import build_event
    from dhr.store import audit_store

    verb = "add" if action == "C" else "remove"
    event = build_event(
        event_id=new_id(),
        recorded=time.time_ns() // 1000,
        subtype=AUDIT_SUBTYPE,
        action=action,
        outcome="0",
        principal=cli_principal(),
        request_id=f"cli-{new_id()}",
        patient=None,
        entities=[],
        query=f"{verb}={','.join(changed)}",
        outcome_desc=None,
        purpose=None,
        break_glass=False,
        server=settings.fhir_base,
    )
    audit_store.insert_events(conn, [event])


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.policy_store import record_opt_out

    by = _by()
    now = time.time_ns() // 1000
    return _change(
        args,
        settings,
        "C",
        lambda conn, n: record_opt_out(conn, n, by, now),
        ("recorded", "already recorded, unchanged"),
    )


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.policy_store import withdraw_opt_out

    return _change(
        args, settings, "D", withdraw_opt_out, ("withdrawn", "was not recorded, unchanged")
    )


def _by() -> str:
    from dhr.access.system import cli_principal

    return cli_principal().subject


def _change(
    args: argparse.Namespace,
    settings: Settings,
    action: Action,
    apply: Callable[[Connection, str], bool],
    words: tuple[str, str],
) -> int:
    """Apply ``apply`` to each NHS number (all checked first), audit what changed in the same
    transaction, and say per number whether it changed (``words``: changed, unchanged)."""
    from dhr.store.db import unit_of_work

    numbers = list(dict.fromkeys(args.nhs_numbers))
    if not _checked(numbers):
        return 2
    with unit_of_work(migrated_engine(settings), write=True) as conn:
        changed = [n for n in numbers if apply(conn, n)]
        if changed:
            _audit(conn, settings, action, changed)
    for number in numbers:
        print(f"{number}: opt-out {words[0] if number in changed else words[1]}")
    return 0


def _list(_args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.db import unit_of_work
    from dhr.store.policy_store import opt_outs

    with unit_of_work(migrated_engine(settings), write=False) as conn:
        found = opt_outs(conn)
    if found:
        rows = [(n, _when(recorded), by) for n, recorded, by in found]
        print_table(("NHS NUMBER", "RECORDED (UTC)", "BY"), rows)
    print(f"{len(found)} national data opt-out(s) recorded")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``opt-out`` on the ``dhr`` subparsers (handlers take (args, settings))."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "opt-out", help="the national data opt-out registry (NHS numbers)"
    )
    sub = parser.add_subparsers(dest="opt_out_command", required=True)
    add = sub.add_parser("add", help="record opt-outs (ten-digit NHS numbers)")
    add.add_argument("nhs_numbers", nargs="+", metavar="NHS_NUMBER")
    add.set_defaults(func=_add)
    remove = sub.add_parser("remove", help="withdraw opt-outs")
    remove.add_argument("nhs_numbers", nargs="+", metavar="NHS_NUMBER")
    remove.set_defaults(func=_remove)
    list_ = sub.add_parser("list", help="list the recorded opt-outs")
    list_.set_defaults(func=_list)
    return parser
