"""The ``dhr`` command run as a real process: ``--help``, ``db upgrade`` and ``load``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import LiveServer
from tests.helpers import patient

ROOT = Path(__file__).resolve().parents[2]


def run_dhr(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DHR_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "dhr", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    result = run_dhr("--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "db", "load"):
        assert command in result.stdout


def test_db_upgrade_creates_the_schema_in_a_fresh_sqlite_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    result = run_dhr("db", "upgrade", DHR_DATA_DIR=str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "newest schema" in result.stdout
    assert (data_dir / "dhr.sqlite").is_file()
    again = run_dhr("db", "upgrade", DHR_DATA_DIR=str(data_dir))
    assert again.returncode == 0, again.stderr


def test_load_prints_a_summary_and_the_data_is_served(
    server: LiveServer, client: httpx.Client, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "p.ndjson"
    path.write_text(
        json.dumps(patient(id="cli1")) + "\n" + json.dumps(patient()) + "\n", encoding="utf-8"
    )
    result = run_dhr("load", str(path), DHR_DATABASE_URL=database_url, DHR_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 file(s), 2 resource(s) loaded, 0 failed" in result.stdout
    assert "resources/s" in result.stdout
    assert client.get("Patient/cli1").status_code == 200


def test_load_into_an_empty_sqlite_file_migrates_it_first(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_text(json.dumps(patient(id="fresh1")) + "\n{oops\n", encoding="utf-8")
    result = run_dhr("load", str(path), DHR_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 resource(s) loaded, 1 failed" in result.stdout
    assert f"{path} line 2: 400" in result.stdout


def test_load_of_a_missing_path_exits_2(tmp_path: Path) -> None:
    result = run_dhr("load", str(tmp_path / "missing.json"), DHR_DATA_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr
