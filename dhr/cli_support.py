"""Small helpers the administration commands (``dhr clients``, ``dhr users``) share."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from dhr.config import Settings


def migrated_engine(settings: Settings) -> Engine:
    """The configured database, migrated to the newest schema first."""
    from dhr.store import db

    engine = db.engine_for(settings)
    db.upgrade(engine)
    return engine


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, as wide as their widest cell."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
