"""Token matching (https://hl7.org/fhir/R4/search.html#token).

``code`` matches any system, ``system|code`` both, ``|code`` a code with no system and
``system|`` any code in the system. ``:text`` is starts-with on the normalised display text.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause, and_

from dhr.search.sql.values import Text, Token


def match(t: FromClause, value: Token) -> ColumnElement[bool]:
    conds: list[ColumnElement[bool]] = []
    if value.code is not None:
        conds.append(t.c.code == value.code[:255])
    if value.system == "":
        conds.append(t.c.system.is_(None))
    elif value.system is not None:
        conds.append(t.c.system == value.system)
    return and_(*conds)


def match_text(t: FromClause, value: Text) -> ColumnElement[bool]:
    return t.c.text.startswith(value.text, autoescape=True)
