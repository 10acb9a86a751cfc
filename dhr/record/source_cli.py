"""``dhr sources add|list|activate|deactivate``: the registry of source systems.

ARCHITECTURE.md "The unified record", Source systems: each feeding system (EMIS Web, TPP
SystmOne, a trust EPR, a pharmacy...) is a registered SMART Backend Services client
(https://hl7.org/fhir/smart-app-launch/backend-services.html, ``dhr clients add --kind backend``)
bound to an organisation (ODS code) and a supplier. What it sends carries ``meta.source`` =
``urn:dhr:source:<id>``. Rules: :func:`dhr.record.sources.register_source`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dhr.cli_support import migrated_engine, print_table
from dhr.config import Settings
from dhr.record.sources import SUPPLIERS, Source, SourceRegistrationError, register_source


def _as_dict(source: Source) -> dict[str, Any]:
    return {
        "source_id": source.source_id,
        "name": source.name,
        "supplier": source.supplier,
        "ods_code": source.ods_code,
        "client_id": source.client_id,
        "identifier_systems": list(source.identifier_systems),
        "active": source.active,
        "meta_source": source.uri,
    }


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.db import unit_of_work

    try:
        with unit_of_work(migrated_engine(settings), write=True) as conn:
            source = register_source(
                conn,
                source_id=args.source_id,
                name=args.name,
                supplier=args.supplier,
                ods_code=args.ods,
                client_id=args.client_id,
                identifier_systems=args.identifier_system,
            )
    except SourceRegistrationError as exc:
        print(f"cannot add source: {exc}", file=sys.stderr)
        return 2
    print(f"source_id: {source.source_id}")
    print(f"name: {source.name}")
    print(f"supplier: {source.supplier}; organisation (ODS): {source.ods_code}")
    print(f"client_id: {source.client_id}")
    for system in source.identifier_systems:
        print(f"identifier system: {system}")
    print(f"meta.source: {source.uri}")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store.db import unit_of_work
    from dhr.store.source_store import list_sources

    with unit_of_work(migrated_engine(settings), write=False) as conn:
        found = list_sources(conn)
    if args.json:
        print(json.dumps([_as_dict(s) for s in found], indent=2))
        return 0
    rows = [
        (
            s.source_id,
            s.supplier,
            s.ods_code,
            s.client_id,
            "yes" if s.active else "no",
            s.uri,
            s.name,
        )
        for s in found
    ]
    print_table(("SOURCE ID", "SUPPLIER", "ODS", "CLIENT", "ACTIVE", "META.SOURCE", "NAME"), rows)
    return 0


def _set_active(args: argparse.Namespace, settings: Settings, active: bool) -> int:
    from dhr.store.db import unit_of_work
    from dhr.store.source_store import set_source_active

    with unit_of_work(migrated_engine(settings), write=True) as conn:
        found = set_source_active(conn, args.source_id, active)
    if not found:
        print(f"no source {args.source_id!r}", file=sys.stderr)
        return 1
    if active:
        print(f"activated {args.source_id}: what its client sends is attributed to it again")
    else:
        print(f"deactivated {args.source_id}: its client can no longer write as this source")
    return 0


def _activate(args: argparse.Namespace, settings: Settings) -> int:
    return _set_active(args, settings, True)


def _deactivate(args: argparse.Namespace, settings: Settings) -> int:
    return _set_active(args, settings, False)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sources`` on the ``dhr`` subparsers (handlers take (args, settings))."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sources", help="source systems feeding the unified record (EMIS, TPP, ...)"
    )
    sub = parser.add_subparsers(dest="sources_command", required=True)
    add = sub.add_parser("add", help="register a source system bound to a backend client")
    add.add_argument("source_id", metavar="SOURCE_ID", help="a slug: a-z, 0-9 and hyphens")
    add.add_argument("--name", required=True)
    add.add_argument(
        "--supplier",
        required=True,
        metavar="SUPPLIER",
        help=f"one of {', '.join(SUPPLIERS)} (any case)",
    )
    add.add_argument("--ods", required=True, help="ODS code of the originating organisation")
    add.add_argument(
        "--client", dest="client_id", required=True, help="the backend client it authenticates as"
    )
    add.add_argument(
        "--identifier-system",
        dest="identifier_system",
        action="append",
        default=[],
        metavar="URI",
        help="a system of the source's own identifiers (repeatable)",
    )
    add.set_defaults(func=_add)
    lst = sub.add_parser("list", help="list source systems")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    deactivate = sub.add_parser("deactivate", help="stop attributing writes to a source")
    deactivate.add_argument("source_id", metavar="SOURCE_ID")
    deactivate.set_defaults(func=_deactivate)
    activate = sub.add_parser("activate", help="reactivate a source")
    activate.add_argument("source_id", metavar="SOURCE_ID")
    activate.set_defaults(func=_activate)
    return parser
