"""``dhr sources ...`` and ``dhr controllers ...`` run as the real ``dhr`` command, in a separate
process, against the test database (``DHR_DATABASE_URL``).

ARCHITECTURE.md "The unified record": source systems are registered backend clients bound to an
organisation and a supplier; the joint-controller arrangement is versioned data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete

from dhr.auth.model import ClientKind
from dhr.record.arrangement import load_default
from dhr.store import arrangement_store, source_store
from tests.dhr.auth.fixtures_clients import jwks, register, rsa_key

ROOT = Path(__file__).resolve().parents[3]
_SCRIPT = Path(sys.executable).with_name("dhr")  # the console script pyproject.toml installs
DHR = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "dhr"]


@dataclass(frozen=True)
class Dhr:
    """Runs ``dhr`` with the test database and a data directory of its own."""

    database_url: str
    data_dir: Path

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DHR_")}
        clean.update(DHR_DATABASE_URL=self.database_url, DHR_DATA_DIR=str(self.data_dir), **env)
        return subprocess.run(
            [*DHR, *args],
            capture_output=True,
            text=True,
            env=clean,
            cwd=ROOT,
            timeout=120,
            check=False,
        )


@pytest.fixture
def dhr(engine: Engine, database_url: str, tmp_path: Path) -> Dhr:
    """No sources and no recorded arrangement at the start of each test."""
    with engine.begin() as conn:
        conn.execute(delete(source_store.SOURCE))
        conn.execute(delete(arrangement_store.ARRANGEMENT))
    return Dhr(database_url, tmp_path / "data")


def client(engine: Engine, kind: ClientKind = ClientKind.BACKEND) -> str:
    """A fresh client of this kind (the authorisation tables outlive each test)."""
    client_id = f"cli-{uuid.uuid4().hex[:8]}"
    extra: dict[str, Any] = {"jwks": jwks(rsa_key())} if kind == ClientKind.BACKEND else {}
    register(engine, kind, client_id=client_id, **extra)
    return client_id


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# --- dhr sources -----------------------------------------------------------------------------


def test_sources_add_prints_the_registration_and_list_shows_it(dhr: Dhr, engine: Engine) -> None:
    emis = client(engine)
    out = ok(
        dhr(
            "sources",
            "add",
            "orchard-emis",
            "--name",
            "Orchard Surgery EMIS Web",
            "--supplier",
            "emis",
            "--ods",
            "a81001",
            "--client",
            emis,
            "--identifier-system",
            "https://emis.example/Id/patient",
        )
    )
    assert "source_id: orchard-emis" in out
    assert "supplier: EMIS; organisation (ODS): A81001" in out
    assert f"client_id: {emis}" in out
    assert "identifier system: https://emis.example/Id/patient" in out
    assert "meta.source: urn:dhr:source:orchard-emis" in out
    table = ok(dhr("sources", "list")).splitlines()
    assert table[0].split()[:5] == ["SOURCE", "ID", "SUPPLIER", "ODS", "CLIENT"]
    assert table[1].split()[:6] == [
        "orchard-emis",
        "EMIS",
        "A81001",
        emis,
        "yes",
        "urn:dhr:source:orchard-emis",
    ]
    listed = json.loads(ok(dhr("sources", "list", "--json")))
    assert listed == [
        {
            "source_id": "orchard-emis",
            "name": "Orchard Surgery EMIS Web",
            "supplier": "EMIS",
            "ods_code": "A81001",
            "client_id": emis,
            "identifier_systems": ["https://emis.example/Id/patient"],
            "active": True,
            "meta_source": "urn:dhr:source:orchard-emis",
        }
    ]


def test_sources_add_refusals_exit_2(dhr: Dhr, engine: Engine) -> None:
    emis, public = client(engine), client(engine, ClientKind.PUBLIC)
    base = ["sources", "add", "--name", "GP", "--ods", "A81001"]
    ok(dhr(*base, "orchard", "--supplier", "TPP", "--client", emis))
    cases = [
        (["orchard", "--supplier", "TPP", "--client", client(engine)], "already registered"),
        (["other", "--supplier", "TPP", "--client", emis], "already the client of source"),
        (["other", "--supplier", "TPP", "--client", public], "is a public client"),
        (["other", "--supplier", "TPP", "--client", "nobody"], "no client 'nobody'"),
        (["other", "--supplier", "ACME", "--client", client(engine)], "unknown supplier"),
        (["other", "--supplier", "TPP", "--client", client(engine), "--ods", "A-1"], "not an ODS"),
    ]
    for argv, message in cases:
        result = dhr(*base, *argv)
        assert result.returncode == 2, (argv, result.stdout, result.stderr)
        assert "cannot add source" in result.stderr
        assert message in result.stderr
    assert [s["source_id"] for s in json.loads(ok(dhr("sources", "list", "--json")))] == ["orchard"]


def test_sources_deactivate_and_activate(dhr: Dhr, engine: Engine) -> None:
    tpp = client(engine)
    ok(
        dhr(
            "sources",
            "add",
            "riverside",
            "--name",
            "Riverside",
            "--supplier",
            "tpp",
            "--ods",
            "B82002",
            "--client",
            tpp,
        )
    )
    assert "deactivated riverside" in ok(dhr("sources", "deactivate", "riverside"))
    assert json.loads(ok(dhr("sources", "list", "--json")))[0]["active"] is False
    assert "activated riverside" in ok(dhr("sources", "activate", "riverside"))
    missing = dhr("sources", "deactivate", "nowhere")
    assert missing.returncode == 1
    assert "no source 'nowhere'" in missing.stderr


# --- dhr controllers -------------------------------------------------------------------------


def _write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_controllers_show_set_and_history(dhr: Dhr, tmp_path: Path) -> None:
    shown = dhr("controllers", "show")
    default = json.loads(ok(shown))
    assert default == load_default().model_dump(mode="json")
    assert "version 0 (the packaged default)" in shown.stderr
    first = dict(default, controllers=[{"ods": "A81001", "purposes": ["TREAT", "HRESCH"]}])
    out = ok(dhr("controllers", "set", _write(tmp_path / "v1.json", first)))
    assert out.startswith("recorded controller arrangement version 1\n")
    assert json.loads(out.split("\n", 1)[1])["controllers"][0]["purposes"] == ["TREAT", "HRESCH"]
    second = dict(default, controllers=[{"ods": "A81001", "contact": "dpo@orchard.example"}])
    out = ok(dhr("controllers", "set", _write(tmp_path / "v2.json", second)))
    assert out.startswith("recorded controller arrangement version 2\n")
    in_force = json.loads(ok(dhr("controllers", "show")))
    assert in_force["controllers"] == [
        {"ods": "A81001", "name": None, "purposes": None, "contact": "dpo@orchard.example"}
    ]
    old = json.loads(ok(dhr("controllers", "show", "--version", "1")))
    assert old["controllers"][0]["purposes"] == ["TREAT", "HRESCH"]
    history = ok(dhr("controllers", "history")).splitlines()
    assert [line.split()[0] for line in history[1:4]] == ["0", "1", "2"]
    assert history[-1] == "in force: version 2"
    missing = dhr("controllers", "show", "--version", "9")
    assert missing.returncode == 1
    assert "no controller arrangement version 9" in missing.stderr


def test_controllers_set_refuses_invalid_documents(dhr: Dhr, tmp_path: Path) -> None:
    doc = load_default().model_dump(mode="json")
    doc["originating_default"]["purposes"] = ["TREAT", "XYZ"]
    result = dhr("controllers", "set", _write(tmp_path / "bad.json", doc))
    assert result.returncode == 2
    assert "is not a valid controller arrangement" in result.stderr
    assert "originating_default.purposes: unknown purpose 'XYZ'" in result.stderr
    good = _write(tmp_path / "good.json", load_default().model_dump(mode="json"))
    foreign = dhr("controllers", "set", good, DHR_NATIONAL_CONTROLLER_ODS="Y56")
    assert foreign.returncode == 2
    assert "this server's national controller is Y56" in foreign.stderr
    unreadable = dhr("controllers", "set", str(tmp_path / "missing.json"))
    assert unreadable.returncode == 2
    assert "cannot read" in unreadable.stderr
    assert ok(dhr("controllers", "history")).splitlines()[-1] == "in force: version 0"
