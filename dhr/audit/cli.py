"""``dhr audit verify | export | chain``: check, archive and chain the audit from the shell.

- ``dhr audit verify``: walk the chain and its signed checkpoints (:mod:`dhr.audit.verify`);
  exit 0 when intact, 1 at the first break (printed), 2 on a usage or setup error.
- ``dhr audit export --since ISO-DATE [--out FILE]``: NDJSON of the AuditEvents recorded since
  then, in chain order (:mod:`dhr.audit.export`), to FILE or standard output. The export is
  itself audited (an ``audit-export`` event by :func:`dhr.access.system.cli_principal`).
- ``dhr audit chain``: chain the pending events now (and sign a checkpoint when one is due).

Issue 7; https://hl7.org/fhir/R4/auditevent.html, https://profiles.ihe.net/ITI/BALP/.
``python -m dhr.audit.cli ...`` runs the same commands without the main ``dhr`` parser.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from dhr.config import Settings
from dhr.fhir.ids import new_id


def _engine(settings: Settings) -> Engine:
    from dhr.store import db

    return db.engine_for(settings)


def _verify(_args: argparse.Namespace, settings: Settings) -> int:
    from dhr.audit.verify import verify

    engine = _engine(settings)
    try:
        report = verify(engine, settings)
    except Exception as exc:  # exit 1 means "broken": a failure to check must not look like it
        print(f"dhr audit verify: could not check the audit: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(report.summary())
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.first_break is not None:
        print(f"first break: {report.first_break}")
        return 1
    return 0


def _chain(_args: argparse.Namespace, settings: Settings) -> int:
    from dhr.audit.chain import chain_all

    engine = _engine(settings)
    try:
        chained = chain_all(engine, settings)
    finally:
        engine.dispose()
    print(f"chained {chained} pending audit events")
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.audit.chain import chain_all
    from dhr.audit.export import export_ndjson, parse_since

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"dhr audit export: {exc}", file=sys.stderr)
        return 2
    engine = _engine(settings)
    try:
        _audit_export(engine, settings, args.since)
        chain_all(engine, settings)
        if args.out:
            with Path(args.out).open("wb") as out:
                written = export_ndjson(engine, since, out)
        else:
            written = export_ndjson(engine, since, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    finally:
        engine.dispose()
    print(f"exported {written} audit events", file=sys.stderr)
    return 0


def _audit_export(engine: Engine, settings: Settings, since: str) -> None:
    """Record that the audit was exported (reading the audit is itself audited)."""
    from dhr.access.system import cli_principal
    from dhr.audit.events import build_event
    from dhr.store import audit_store
    from dhr.store.db import unit_of_work

    event = build_event(
        event_id=new_id(),
        recorded=time.time_ns() // 1000,
        subtype="audit-export",
        action="E",
        outcome="0",
        principal=cli_principal(),
        request_id=f"cli-{new_id()}",
        patient=None,
        entities=[],
        query=f"since={since}",
        outcome_desc=None,
        purpose=None,
        break_glass=False,
        server=settings.fhir_base,
    )
    with unit_of_work(engine, write=True) as conn:
        audit_store.insert_events(conn, [event])


def add_parser(subparsers: Any) -> None:
    """Register ``dhr audit verify|export|chain``."""
    audit = subparsers.add_parser("audit", help="verify, export and chain the audit trail")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = sub.add_parser("verify", help="check the chain and signed checkpoints")
    verify.set_defaults(func=_verify)
    export = sub.add_parser("export", help="write AuditEvents as NDJSON (chain order)")
    export.add_argument("--since", required=True, help="ISO date or date-time (UTC)")
    export.add_argument("--out", default=None, help="output file (default: standard output)")
    export.set_defaults(func=_export)
    chain = sub.add_parser("chain", help="chain pending events now")
    chain.set_defaults(func=_chain)


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dhr")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args, settings or Settings()))


if __name__ == "__main__":
    sys.exit(main())
