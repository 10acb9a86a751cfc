"""The policy enforcement point: every interaction reaches storage only through this class.

STYLE.md hop 5. Until the SMART issue lands the server runs open: the only principal is the
anonymous open-access one, and every request is permitted. The seam stays here so that the
authorisation, consent and audit issues change one class, not every interaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select

from dhr.auth.model import OPEN_ACCESS, Principal
from dhr.store.repository import ResourceRepository, StoredVersion

__all__ = ["OPEN_ACCESS", "EnforcingRepository", "Principal"]


class EnforcingRepository:
    """Storage as one principal may see and change it (today: open access)."""

    def __init__(self, store: ResourceRepository, principal: Principal) -> None:
        self._store = store
        self.principal = principal

    def read_current(self, res_type: str, res_id: str) -> StoredVersion | None:
        return self._store.read_current(res_type, res_id)

    def read_version(self, res_type: str, res_id: str, version_id: int) -> StoredVersion | None:
        return self._store.read_version(res_type, res_id, version_id)

    def create(
        self, res_type: str, res_id: str, body: dict[str, Any], method: str = "POST"
    ) -> StoredVersion:
        return self._store.create(res_type, res_id, body, method)

    def create_many(
        self, items: Sequence[tuple[str, str, dict[str, Any]]], method: str = "POST"
    ) -> list[StoredVersion]:
        return self._store.create_many(items, method)

    def put(
        self,
        res_type: str,
        res_id: str,
        body: dict[str, Any],
        if_match: int | None,
        method: str = "PUT",
    ) -> tuple[StoredVersion, bool]:
        return self._store.put(res_type, res_id, body, if_match, method)

    def delete(
        self, res_type: str, res_id: str, if_match: int | None = None
    ) -> StoredVersion | None:
        return self._store.delete(res_type, res_id, if_match)

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        since: int | None,
        at: tuple[int, int] | None,
        count: int,
        before_key: int | None,
    ) -> list[StoredVersion]:
        return self._store.history(res_type, res_id, since, at, count, before_key)

    def search(self, stmt: Select[Any]) -> list[Row[Any]]:
        return self._store.search(stmt)

    def count(self, stmt: Select[Any]) -> int:
        return self._store.count(stmt)
