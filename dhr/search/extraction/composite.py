"""Composite parameters (https://hl7.org/fhir/R4/search.html#composite).

The composite's expression selects elements (an Observation, each ``Observation.component``,
each ``useContext``...). For element *i* each component's expression is evaluated relative to
that element and extracted with the component parameter's type; the rows are stored under the
composite's code with ``grp = i`` (1-based) and ``comp = j`` (the component's 1-based position),
so a search can require all components to match within one element. An element where some
component has no value cannot match and adds nothing.
"""

from __future__ import annotations

from dhr.search.extraction.paths import Items
from dhr.search.extraction.plan import Plan, unwrap
from dhr.search.rows import IndexRow


def rows(plan: Plan, root: Items) -> list[IndexRow]:
    """The rows of composite ``plan`` for the resource ``root``."""
    out: list[IndexRow] = []
    for i, element in enumerate(plan.select(root, root), start=1):
        group: list[IndexRow] = []
        for j, (select, extractor) in enumerate(plan.components, start=1):
            found = [
                row
                for value, kind in unwrap(select([element], root))
                for row in extractor(plan.code, value, kind, i, j)
            ]
            if not found:
                group = []
                break
            group.extend(found)
        out.extend(group)
    return out
