"""One parsed value of one parameter type as a predicate on its index table's rows.

https://hl7.org/fhir/R4/search.html#ptypes; the per-type rules live in the sibling modules.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause, Table

from dhr.errors import bad_request
from dhr.search.registry import SearchParam
from dhr.search.sql import date, number, quantity, reference, string, token, uri
from dhr.search.sql.aliases import alias_of
from dhr.search.sql.values import Quantity, Range, Ref, Text, Token, Uri, Value
from dhr.store.models import INDEX_TABLES, Base

TABLE_OF = {
    "string": "string",
    "token": "token",
    "date": "date",
    "number": "number",
    "quantity": "quantity",
    "reference": "reference",
    "uri": "uri",
}

_TABLES: dict[str, Table] = {name: Base.metadata.tables[f"ix_{name}"] for name in INDEX_TABLES}


def index_table(name: str) -> FromClause:
    """A fresh alias of index table ``name`` (``token``, ``string``...)."""
    return _TABLES[name].alias()


def statement_index_table(name: str) -> FromClause:
    """An alias of index table ``name`` for the search statement being built, kept from one
    statement to the next (:mod:`dhr.search.sql.aliases`)."""
    return alias_of(_TABLES[name])


def table_name(param: SearchParam, modifier: str | None) -> str:
    """The index table holding ``param``'s rows (``:identifier`` references live in tokens)."""
    if param.type == "reference" and modifier == "identifier":
        return "token"
    return TABLE_OF[param.type]


def index_code(param: SearchParam, modifier: str | None) -> str:
    """The ``param`` column value the rows carry."""
    if param.type == "reference" and modifier == "identifier":
        return f"{param.code}:identifier"
    return param.code


def param_is(t: FromClause, codes: tuple[str, ...]) -> ColumnElement[bool]:
    """``t``'s rows are under one of ``codes`` (:func:`dhr.search.unions.stored_codes`)."""
    return t.c.param == codes[0] if len(codes) == 1 else t.c.param.in_(codes)


def value_match(
    t: FromClause, param: SearchParam, modifier: str | None, value: Value
) -> ColumnElement[bool]:
    if isinstance(value, Text):
        if param.type == "token":
            return token.match_text(t, value)
        return string.match(t, value, modifier)
    if isinstance(value, Token):
        return token.match(t, value)
    if isinstance(value, Range):
        if param.type == "date":
            return date.match(t.c.low, t.c.high, value)
        return number.match(t.c.value, value)
    if isinstance(value, Quantity):
        return quantity.match(t, value)
    if isinstance(value, Ref):
        targets = () if value.target_type else param.targets
        return reference.match(t, value, targets)
    if isinstance(value, Uri):
        return uri.match(t, value, modifier)
    raise bad_request(f"{param.code}: this value cannot be searched here", "bad-value")
