"""The ``dhr`` command: ``serve``, ``db upgrade``, ``load``, ``clients``, ``users``, ``keys``,
``token``, ``keygen``, ``audit``, ``sources``, ``controllers``, ``opt-out``.

Configuration comes from ``DHR_*`` environment variables through :class:`dhr.config.Settings`;
flags override host and port.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from dhr.config import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from dhr.app import create_app
    from dhr.store import db

    host = args.host or settings.host
    port = args.port or settings.port
    if args.host or args.port:
        settings = settings.model_copy(update={"host": host, "port": port})
        if "base_url" not in settings.model_fields_set:
            settings = settings.model_copy(update={"base_url": f"http://{host}:{port}/fhir"})
    engine = db.engine_for(settings)
    app = create_app(settings, engine)
    if args.demo:
        from dhr.demo import load_demo
        from dhr.demo_auth import ensure_demo_credentials

        print(load_demo(settings, engine), flush=True)
        print(ensure_demo_credentials(settings, engine), flush=True)
    print(
        f"DHR FHIR R4 server: {settings.fhir_base} (database: {engine.url.render_as_string()})",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0


def _db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    from dhr.store import db

    engine = db.engine_for(settings)
    db.upgrade(engine)
    print(f"database at {engine.url.render_as_string()} is at the newest schema")
    return 0


def _load(args: argparse.Namespace, settings: Settings) -> int:
    from dhr.loader import run_load

    return run_load(settings, args.paths, source_id=args.source)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dhr", description="DHR FHIR R4 server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the FHIR server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--demo", action="store_true", help="load demo data first (idempotent)")
    serve.set_defaults(func=_serve)
    dbp = sub.add_parser("db", help="database administration")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="migrate to the newest schema")
    up.set_defaults(func=_db_upgrade)
    load = sub.add_parser("load", help="load Bundle JSON and NDJSON files through the write path")
    load.add_argument("paths", nargs="+")
    load.add_argument(
        "--source",
        metavar="SOURCE_ID",
        default=None,
        help="load as this registered source system (attributed to it, through the ingest "
        "planner; an NDJSON file is one all-or-nothing $import)",
    )
    load.set_defaults(func=_load)
    from dhr.auth import client_cli, token_cli, user_cli

    client_cli.add_parser(sub)  # dhr clients add|list|revoke, dhr keys rotate
    user_cli.add_parser(sub)  # dhr users add|list|revoke
    token_cli.add_parser(sub)  # dhr token, dhr keygen (backend clients, by hand)
    from dhr.audit import cli as audit_cli

    audit_cli.add_parser(sub)  # dhr audit verify|export|chain
    from dhr.record import arrangement_cli, source_cli

    source_cli.add_parser(sub)  # dhr sources add|list|activate|deactivate
    arrangement_cli.add_parser(sub)  # dhr controllers show|set|history
    from dhr.access import opt_out_cli

    opt_out_cli.add_parser(sub)  # dhr opt-out add|remove|list
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    settings = Settings()
    code = args.func(args, settings)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
