"""``dhr clients add|list|revoke`` and ``dhr keys rotate`` against a real database.

The issue's CLI: register public, confidential and backend clients (``--jwks FILE`` or
``--jwks-url``), allowed scopes, redirect URIs and a bound organisation; list and revoke them.
A confidential client's secret is printed once (SMART client-confidential-symmetric,
https://hl7.org/fhir/smart-app-launch/client-confidential-symmetric.html).
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dhr.auth.client_cli import add_parser
from dhr.auth.clients import get_client, verify_secret
from dhr.auth.keys import KeyRing
from dhr.auth.model import ClientKind
from dhr.config import Settings
from tests.dhr.auth.fixtures_clients import REDIRECT, jwks, rsa_key


@pytest.fixture
def settings(engine: Engine, database_url: str, tmp_path: Path) -> Settings:
    """Settings for the test database; the authorisation tables persist through the session,
    so each test uses client ids of its own."""
    return Settings(database_url=database_url, data_dir=tmp_path)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dhr")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args, settings)
    return code


def _field(out: str, name: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(name + ":"))


def test_add_confidential_prints_the_secret_once(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        settings,
        "clients",
        "add",
        "--name",
        "GP app",
        "--kind",
        "confidential",
        "--redirect-uri",
        REDIRECT,
        "--redirect-uri",
        "https://app.example.org/other",
        "--scope",
        "launch/patient patient/*.rs",
        "--scope",
        "offline_access",
        "--origin",
        "https://app.example.org",
    )
    assert code == 0
    out = capsys.readouterr().out
    client_id, secret = _field(out, "client_id"), _field(out, "client_secret")
    client = get_client(engine, client_id)
    assert client is not None
    assert client.kind == ClientKind.CONFIDENTIAL_SYMMETRIC
    assert client.redirect_uris == (REDIRECT, "https://app.example.org/other")
    assert client.scopes == "launch/patient patient/*.rs offline_access"
    assert client.origins == ("https://app.example.org",)
    assert verify_secret(secret, client.secret_hash)
    assert run(settings, "clients", "list") == 0
    listed = capsys.readouterr().out
    assert client_id in listed
    assert secret not in listed


def test_add_backend_with_jwks_file_and_organisation(
    settings: Settings, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jwks.json"
    keys = jwks(rsa_key("k1"))
    path.write_text(json.dumps(keys))
    emis = _unique("emis")
    code = run(
        settings,
        "clients",
        "add",
        "--name",
        "EMIS Web",
        "--kind",
        "backend",
        "--client-id",
        emis,
        "--scope",
        "system/*.cruds",
        "--org",
        "A81001",
        "--jwks",
        str(path),
    )
    assert code == 0
    out = capsys.readouterr().out
    assert _field(out, "client_id") == emis
    assert "client_secret" not in out
    client = get_client(engine, emis)
    assert client is not None
    assert client.jwks == keys
    assert client.organisation == "A81001"


def test_add_backend_with_jwks_url(settings: Settings, engine: Engine) -> None:
    url, tpp = "https://tpp.example.org/jwks.json", _unique("tpp")
    argv = ["clients", "add", "--name", "TPP", "--kind", "backend", "--client-id", tpp]
    assert run(settings, *argv, "--scope", "system/Patient.rs", "--jwks-url", url) == 0
    client = get_client(engine, tpp)
    assert client is not None
    assert client.jwks_url == url


def test_refused_registrations_exit_non_zero(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["clients", "add", "--name", "x", "--kind", "backend", "--scope", "system/*.rs"]
    assert run(settings, *argv) == 2
    assert "JWK Set" in capsys.readouterr().err
    assert run(settings, *argv, "--jwks", str(tmp_path / "missing.json")) == 2
    assert "cannot read" in capsys.readouterr().err
    public = ["clients", "add", "--name", "x", "--kind", "public", "--scope", "patient/*.rs"]
    assert run(settings, *public) == 2
    assert "redirect URI" in capsys.readouterr().err


def test_list_as_json_and_revoke(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _unique("app")
    argv = ["clients", "add", "--name", "app", "--kind", "public", "--client-id", app]
    assert run(settings, *argv, "--redirect-uri", REDIRECT, "--scope", "patient/*.rs") == 0
    capsys.readouterr()
    assert run(settings, "clients", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["client_id"], c["active"]) for c in listed if c["client_id"] == app] == [(app, True)]
    assert run(settings, "clients", "revoke", app) == 0
    client = get_client(engine, app)
    assert client is not None
    assert not client.active
    assert run(settings, "clients", "revoke", "nobody") == 1


def test_keys_rotate(settings: Settings, engine: Engine) -> None:
    before = KeyRing(engine).current().kid
    assert run(settings, "keys", "rotate") == 0
    ring = KeyRing(engine)
    assert ring.current().kid != before
    assert before in ring.kids()  # the old key keeps verifying during its grace period
