"""Every resource row lists its data controllers, and the decision reads them as it read the tags.

ARCHITECTURE.md "The unified record" (joint controllers); ADR 0010 item 11. The consent decision
asks whether a resource has a controller in a set of ODS codes, or outside one. It answers from
the row's ``controllers`` column, and from the ``_tag`` index rows when that says "unknown"; both
must give the same answer for every resource and every set, case-sensitively, as the index did.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from dhr.access.policy_sql import _controllers
from dhr.record.vocab import CONTROLLER_SYSTEM
from dhr.search.rows import TokenRow
from dhr.store.controller_codes import UNKNOWN, controller_codes
from dhr.store.db import unit_of_work
from dhr.store.models import ResourceRow
from dhr.store.repository import ResourceRepository


def tag(code: str) -> TokenRow:
    return TokenRow("_tag", CONTROLLER_SYSTEM, code)


def test_the_codes_are_sorted_between_single_spaces() -> None:
    assert controller_codes([tag("X24"), tag("A81001"), tag("X24")]) == " A81001 X24 "
    assert controller_codes([TokenRow("_tag", "http://other", "A81001")]) is None
    assert controller_codes([]) is None


def test_a_code_that_does_not_fit_leaves_the_row_to_its_tags() -> None:
    assert controller_codes([tag("X24"), tag("two words")]) == UNKNOWN
    assert controller_codes([tag("A" * 64), *(tag(f"B{n}") for n in range(60))]) == UNKNOWN


def organisation(codes: tuple[str, ...]) -> dict[str, Any]:
    tags = [{"system": CONTROLLER_SYSTEM, "code": c} for c in codes]
    return (
        {"resourceType": "Organization", "meta": {"tag": tags}}
        if tags
        else {"resourceType": "Organization"}
    )


TAGGED = [(), ("A81001",), ("A81001", "X24"), ("B82002", "X24"), ("X24",), ("a81001",)]
ASKED = [frozenset(s) for n in range(3) for s in itertools.combinations(["A81001", "X24", "Z9"], n)]


@pytest.mark.parametrize("inside", [True, False], ids=["in", "outside"])
def test_the_column_answers_as_the_tags_do(engine: Engine, inside: bool) -> None:
    prefix = f"ctl-{uuid.uuid4().hex[:8]}"
    with unit_of_work(engine, write=True) as conn:
        repo = ResourceRepository(conn)
        repo.create_many(
            [("Organization", f"{prefix}-{n}", organisation(c)) for n, c in enumerate(TAGGED)]
        )
    res = ResourceRow.__table__.alias()
    mine = res.c.res_id.startswith(prefix)

    def answers(codes: frozenset[str]) -> dict[str, bool]:
        with unit_of_work(engine, write=False) as conn:
            rows = conn.execute(select(res.c.res_id, _controllers(res, codes, inside)).where(mine))
            return {str(i): bool(v) for i, v in rows}

    by_column = {codes: answers(codes) for codes in ASKED}
    with unit_of_work(engine, write=True) as conn:
        conn.execute(
            update(ResourceRow)
            .where(ResourceRow.res_id.startswith(prefix))
            .values(controllers=UNKNOWN)
        )
    by_tags = {codes: answers(codes) for codes in ASKED}
    assert by_column == by_tags
    # and the answers are the ones the definition gives
    for codes in ASKED:
        for n, tagged in enumerate(TAGGED):
            expected = bool(set(tagged) & codes) if inside else bool(set(tagged) - codes)
            assert by_column[codes][f"{prefix}-{n}"] is expected, (codes, tagged)
