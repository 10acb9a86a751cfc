"""Demo data for ``make run`` (in progress)."""

from __future__ import annotations

from sqlalchemy import Engine

from dhr.config import Settings


def load_demo(settings: Settings, engine: Engine) -> str:
    del engine
    return f"No demo data yet. Try: curl {settings.fhir_base}/metadata"
