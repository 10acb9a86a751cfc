"""``dhr audit verify | export | chain`` (dhr/audit/cli.py) as a real process: exit 0 for an
intact chain, 1 with the first break printed, NDJSON export to a file, chaining on demand. Also
that ``add_parser`` plugs into an argparse tree like the main ``dhr`` parser's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text

from dhr.audit.cli import add_parser
from dhr.config import Settings
from tests.dhr.audit import audit_db

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def engine() -> Engine:
    eng = audit_db.audit_engine()
    audit_db.reset(eng)
    return eng


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    return audit_db.settings_for(engine, tmp_path / "data")


def run_audit(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DHR_")}
    env.update(
        DHR_DATABASE_URL=settings.effective_database_url,
        DHR_DATA_DIR=str(settings.data_dir),
        DHR_BASE_URL=audit_db.BASE,
    )
    return subprocess.run(
        [sys.executable, "-m", "dhr.audit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def seqs(engine: Engine) -> list[int | None]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT seq FROM audit_event ORDER BY key"))]


def test_chain_then_verify_then_tamper_gives_exit_codes_0_and_1(
    engine: Engine, settings: Settings
) -> None:
    audit_db.insert(engine, 1, 6)
    chained = run_audit(settings, "chain")
    assert chained.returncode == 0, chained.stderr
    assert "chained 6" in chained.stdout
    assert seqs(engine) == [1, 2, 3, 4, 5, 6]
    intact = run_audit(settings, "verify")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "INTACT" in intact.stdout
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq = 4"))
    broken = run_audit(settings, "verify")
    assert broken.returncode == 1
    assert "first break: seq 4: deleted" in broken.stdout


def test_export_writes_ndjson_to_a_file_and_audits_itself(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    audit_db.insert(engine, 1, 3)
    out = tmp_path / "audit.ndjson"
    result = run_audit(settings, "export", "--since", "2025-11-24", "--out", str(out))
    assert result.returncode == 0, result.stderr
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [e["id"] for e in events[:3]] == ["evt-000001", "evt-000002", "evt-000003"]
    assert len(events) == 4  # and the export's own event, chained last
    assert events[3]["subtype"][0]["code"] == "audit-export"
    assert "exported 4" in result.stderr
    assert seqs(engine) == [1, 2, 3, 4]
    later = run_audit(settings, "export", "--since", "2999-01-01")
    assert later.returncode == 0
    assert later.stdout == ""


def test_export_refuses_a_bad_date(settings: Settings) -> None:
    result = run_audit(settings, "export", "--since", "last week")
    assert result.returncode == 2
    assert "not an ISO date" in result.stderr


def test_add_parser_registers_the_three_commands(engine: Engine, settings: Settings) -> None:
    parser = argparse.ArgumentParser(prog="dhr")
    add_parser(parser.add_subparsers(dest="command", required=True))
    audit_db.insert(engine, 1, 2)
    args = parser.parse_args(["audit", "chain"])
    assert args.func(args, settings) == 0
    args = parser.parse_args(["audit", "verify"])
    assert args.func(args, settings) == 0
    args = parser.parse_args(["audit", "export", "--since", "2025-01-01", "--out", os.devnull])
    assert args.func(args, settings) == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["audit", "export"])  # --since is required


def test_verify_that_cannot_read_the_database_exits_2(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'empty.sqlite'}")
    result = run_audit(settings, "verify")  # no schema: the check itself fails
    assert result.returncode == 2
    assert "could not check the audit" in result.stderr
