"""``dhr users add|list|revoke`` against the real test database.

The commands manage the local users of the SMART authorisation server
(https://hl7.org/fhir/smart-app-launch/); the password comes from standard input, never argv.
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dhr.auth import user_cli
from dhr.auth.users import check_login, get_user
from dhr.config import Settings

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(engine: Engine, database_url: str, tmp_path: Path) -> Settings:
    """Settings for the test database (users are shared between tests: names are unique)."""
    return Settings(database_url=database_url, data_dir=tmp_path)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run(settings: Settings, *argv: str, stdin: str = "") -> int:
    parser = argparse.ArgumentParser(prog="dhr")
    user_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    saved = user_cli.sys.stdin
    user_cli.sys.stdin = io.StringIO(stdin)
    try:
        return int(args.func(args, settings))
    finally:
        user_cli.sys.stdin = saved


def test_add_list_and_revoke_a_user(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    patel = name("dr.patel")
    code = run(
        settings,
        "users",
        "add",
        patel,
        "--role",
        "R8000",
        "--fhir-user",
        "Practitioner/77",
        "--org",
        "A81001",
        "--display",
        "Dr Patel",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0
    assert (
        f"added {patel}: Clinical Practitioner Access Role (R8000) at A81001"
        in capsys.readouterr().out
    )
    assert check_login(engine, patel, PASSWORD) is not None

    assert run(settings, "users", "list", "--json") == 0
    listed = [u for u in json.loads(capsys.readouterr().out) if u["username"] == patel]
    assert listed == [
        {
            "username": patel,
            "role": "R8000",
            "role_display": "Clinical Practitioner Access Role",
            "fhir_user": "Practitioner/77",
            "organisation": "A81001",
            "display": "Dr Patel",
            "active": True,
        }
    ]
    assert run(settings, "users", "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["USERNAME", "ROLE", "FHIR", "USER", "ORG", "ACTIVE"]
    assert [patel, "R8000", "Practitioner/77", "A81001", "yes"] in [r.split() for r in table]

    assert run(settings, "users", "revoke", patel) == 0
    assert check_login(engine, patel, PASSWORD) is None
    user = get_user(engine, patel)
    assert user is not None
    assert not user.active


def test_a_refused_user_explains_why_and_exits_2(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    pat = name("pat")
    code = run(
        settings, "users", "add", pat, "--role", "patient", "--password-stdin", stdin=PASSWORD
    )
    assert code == 2
    assert "must be linked to a Patient/<id>" in capsys.readouterr().err
    assert get_user(engine, pat) is None


def test_without_a_terminal_the_password_must_come_from_stdin(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    pat = name("pat")
    code = run(settings, "users", "add", pat, "--role", "patient", "--fhir-user", "Patient/1")
    assert code == 2
    assert "--password-stdin" in capsys.readouterr().out
    assert get_user(engine, pat) is None


def test_revoking_an_unknown_user_fails(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "users", "revoke", "ghost") == 1
    assert "no user 'ghost'" in capsys.readouterr().err
