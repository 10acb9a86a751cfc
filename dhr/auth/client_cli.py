"""``dhr clients add|list|revoke`` and ``dhr keys rotate``: the authorisation server's registry.

Clients follow SMART App Launch 2.2 client types (https://hl7.org/fhir/smart-app-launch/):
public and confidential apps with redirect URIs, confidential-asymmetric apps and Backend
Services clients (https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-smart-backend-service-communicating-public-keys)
with a JWK Set file or URL. A confidential client's secret is printed once, when it is made.
``keys rotate`` retires the server's signing key (it keeps verifying for a grace period).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dhr.auth import clients
from dhr.auth.model import ClientKind
from dhr.cli_support import migrated_engine, print_table
from dhr.config import Settings

KINDS = {
    "public": ClientKind.PUBLIC,
    "confidential": ClientKind.CONFIDENTIAL_SYMMETRIC,
    "confidential-symmetric": ClientKind.CONFIDENTIAL_SYMMETRIC,
    "confidential-asymmetric": ClientKind.CONFIDENTIAL_ASYMMETRIC,
    "backend": ClientKind.BACKEND,
}


def _read_jwks(path: str) -> dict[str, Any] | None:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read the JWK Set {path}: {exc}", file=sys.stderr)
        return None
    if isinstance(value, dict) and "keys" not in value and "kty" in value:
        value = {"keys": [value]}  # a single JWK: wrap it in a set
    if not isinstance(value, dict):
        print(f"{path} is not a JWK Set", file=sys.stderr)
        return None
    return value


def _add(args: argparse.Namespace, settings: Settings) -> int:
    jwks = None
    if args.jwks:
        jwks = _read_jwks(args.jwks)
        if jwks is None:
            return 2
    try:
        client, secret = clients.register_client(
            migrated_engine(settings),
            client_id=args.client_id,
            name=args.name,
            kind=KINDS[args.kind],
            redirect_uris=args.redirect_uri,
            scopes=" ".join(args.scope),
            origins=args.origin,
            organisation=args.organisation,
            jwks=jwks,
            jwks_url=args.jwks_url,
            launch_uri=args.launch_uri,
        )
    except clients.ClientRegistrationError as exc:
        print(f"cannot add client: {exc}", file=sys.stderr)
        return 2
    print(f"client_id: {client.client_id}")
    if secret is not None:
        print(f"client_secret: {secret}")
        print("(the secret is shown only now; store it safely)")
    print(f"kind: {client.kind.value}; scopes: {client.scopes}")
    print(f"token endpoint: {settings.auth_base}/token")
    return 0


def _as_dict(client: clients.Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "kind": client.kind.value,
        "scopes": client.scopes,
        "redirect_uris": list(client.redirect_uris),
        "origins": list(client.origins),
        "organisation": client.organisation,
        "jwks_url": client.jwks_url,
        "jwks_kids": [k.get("kid") for k in (client.jwks or {}).get("keys", [])],
        "launch_uri": client.launch_uri,
        "active": client.active,
    }


def _list(args: argparse.Namespace, settings: Settings) -> int:
    found = clients.list_clients(migrated_engine(settings))
    if args.json:
        print(json.dumps([_as_dict(c) for c in found], indent=2))
        return 0
    rows = [
        (
            c.client_id,
            c.kind.value,
            c.name,
            c.organisation or "-",
            "yes" if c.active else "no",
            c.scopes,
        )
        for c in found
    ]
    header = ("CLIENT ID", "KIND", "NAME", "ORG", "ACTIVE", "SCOPES")
    print_table(header, rows)
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    if not clients.deactivate_client(migrated_engine(settings), args.client_id):
        print(f"no client {args.client_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.client_id}: it can no longer obtain or refresh tokens")
    return 0


def _rotate(_args: argparse.Namespace, settings: Settings) -> int:
    from dhr.auth.keys import KeyRing

    key = KeyRing(migrated_engine(settings)).rotate()
    print(f"new signing key {key.kid}; older keys keep verifying until their grace period ends")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``clients`` and ``keys`` on the ``dhr`` subparsers.

    Each handler takes (args, settings) and returns an exit code.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "clients", help="OAuth clients of the authorisation server (SMART apps, backends)"
    )
    sub = parser.add_subparsers(dest="clients_command", required=True)
    add = sub.add_parser("add", help="register a client and print its id (and secret, once)")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=sorted(KINDS))
    add.add_argument("--client-id", dest="client_id", help="default: a random id")
    add.add_argument(
        "--redirect-uri", dest="redirect_uri", action="append", default=[], help="repeatable"
    )
    add.add_argument(
        "--scope",
        action="append",
        required=True,
        help="the most the client may be granted (space-separated; repeatable)",
    )
    add.add_argument("--origin", action="append", default=[], help="CORS origin (repeatable)")
    add.add_argument("--organisation", "--org", dest="organisation", help="ODS code")
    keys = add.add_mutually_exclusive_group()
    keys.add_argument("--jwks", metavar="FILE", help="the client's public JWK Set (JSON file)")
    keys.add_argument("--jwks-url", dest="jwks_url", metavar="URL", help="where its JWK Set is")
    add.add_argument("--launch-uri", dest="launch_uri", help="the app's EHR launch URL")
    add.set_defaults(func=_add)
    lst = sub.add_parser("list", help="list clients")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    revoke = sub.add_parser("revoke", help="deactivate a client")
    revoke.add_argument("client_id")
    revoke.set_defaults(func=_revoke)
    keys_parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="the authorisation server's signing keys"
    )
    keys_sub = keys_parser.add_subparsers(dest="keys_command", required=True)
    rotate = keys_sub.add_parser("rotate", help="start signing with a new key")
    rotate.set_defaults(func=_rotate)
    return parser
