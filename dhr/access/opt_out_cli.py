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
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from dhr.audit.model import Action
from dhr.cli_support import migrated_engine, print_table
from dhr.config import Settings
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
        event_id=str(uuid.uuid4()),
        recorded=time.time_ns() // 1000,
        subtype=AUDIT_SUBTYPE,
        action=action,
        outcome="0",
        principal=cli_principal(),
        request_id=f"cli-{uuid.uuid4()}",
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
    from dhr.access.system import cli_principal
    from dhr.store.db import unit_of_work
    from dhr.store.policy_store import record_opt_out

    numbers = list(dict.fromkeys(args.nhs_numbers))
    if not _checked(numbers):
        return 2
    by = cli_principal().subject
    now = time.time_ns() // 1000
    with unit_of_work(migrated_engine(settings), write=True) as conn:
        added = [n for n in numbers if record_opt_out(conn, n, by, now)]
        if added:
            _audit(conn, settings, "C", added)
    for number in numbers:
        said = "recorded" if number in added else "already recorded, unchanged"
        print(f"{number}: opt-out {said}")
    return 0


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.db import unit_of_work
    from dhr.store.policy_store import withdraw_opt_out

    numbers = list(dict.fromkeys(args.nhs_numbers))
    if not _checked(numbers):
        return 2
    with unit_of_work(migrated_engine(settings), write=True) as conn:
        removed = [n for n in numbers if withdraw_opt_out(conn, n)]
        if removed:
            _audit(conn, settings, "D", removed)
    for number in numbers:
        said = "withdrawn" if number in removed else "was not recorded, unchanged"
        print(f"{number}: opt-out {said}")
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
