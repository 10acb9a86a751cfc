"""``dhr users add|list|revoke``: manage the local users of the embedded authorisation server.

Users and roles follow :mod:`dhr.auth.users` and :mod:`dhr.auth.roles` (national RBAC codes;
SMART App Launch 2.2 ``fhirUser``, https://hl7.org/fhir/smart-app-launch/). The password is
never a command-line argument (it would show in ``ps``): it is read from standard input with
``--password-stdin`` or prompted for.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from dhr.auth import users
from dhr.auth.roles import all_roles
from dhr.cli_support import migrated_engine, print_table
from dhr.config import Settings


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        print("no terminal: pass the password on standard input with --password-stdin")
        return None
    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        print("the passwords differ")
        return None
    return first


def _add(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    if password is None:
        return 2
    try:
        user = users.add_user(
            migrated_engine(settings),
            username=args.username,
            password=password,
            role=args.role,
            fhir_user=args.fhir_user,
            organisation=args.organisation,
            display=args.display,
        )
    except users.UserError as exc:
        print(f"cannot add user: {exc}", file=sys.stderr)
        return 2
    where = f" at {user.organisation}" if user.organisation else ""
    print(f"added {user.username}: {user.role_info.display} ({user.role}){where}")
    return 0


def _as_dict(user: users.User) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role,
        "role_display": user.role_info.display,
        "fhir_user": user.fhir_user,
        "organisation": user.organisation,
        "display": user.display,
        "active": user.active,
    }


def _list(args: argparse.Namespace, settings: Settings) -> int:
    found = users.list_users(migrated_engine(settings))
    if args.json:
        print(json.dumps([_as_dict(u) for u in found], indent=2))
        return 0
    rows = [
        (u.username, u.role, u.fhir_user or "-", u.organisation or "-", "yes" if u.active else "no")
        for u in found
    ]
    header = ("USERNAME", "ROLE", "FHIR USER", "ORG", "ACTIVE")
    print_table(header, rows)
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    if not users.deactivate_user(migrated_engine(settings), args.username):
        print(f"no user {args.username!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.username}: the user can no longer sign in; their sessions are ended")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``users`` on the ``dhr`` command's subparsers; handlers take (args, settings)."""
    roles = ", ".join(f"{r.code} ({r.display})" for r in all_roles() if r.user_assignable)
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "users", help="local users of the authorisation server"
    )
    sub = parser.add_subparsers(dest="users_command", required=True)
    add = sub.add_parser("add", help="add a user", description=f"Roles: {roles}.")
    add.add_argument("username")
    add.add_argument("--role", required=True, help="RBAC code or DHR role (R8000, patient...)")
    add.add_argument(
        "--fhir-user", dest="fhir_user", help="Patient/<id>, Practitioner/<id> or PractitionerRole"
    )
    add.add_argument("--org", dest="organisation", help="ODS code of the user's organisation")
    add.add_argument("--display", default="", help="the name shown to the user")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(func=_add)
    lst = sub.add_parser("list", help="list users")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    revoke = sub.add_parser("revoke", help="deactivate a user and end their sessions")
    revoke.add_argument("username")
    revoke.set_defaults(func=_revoke)
    return parser
