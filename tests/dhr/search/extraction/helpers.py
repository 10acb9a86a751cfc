"""Shared helpers: run ``extract`` and pick the rows of one parameter."""

from __future__ import annotations

from typing import Any

from dhr.search.extract import extract
from dhr.search.rows import IndexRow


def rows_of(res_type: str, body: dict[str, Any], param: str) -> list[IndexRow]:
    return [r for r in extract(res_type, {"resourceType": res_type, **body}) if r.param == param]
