"""Index rows: what extraction produces for one resource, one row type per index table.

https://hl7.org/fhir/R4/search.html#ptypes. Every row names its search parameter ``param`` (the
code). Composite parameters (https://hl7.org/fhir/R4/search.html#composite) store each
component as an ordinary row under the composite's code, with ``grp`` numbering the element the
components came from (1, 2, ...) and ``comp`` the component's position (1, 2, ...), so a search
can demand that all components match within one element. Plain rows have ``grp = comp = 0``.
Times are microseconds since the epoch (UTC); ``low``/``high`` bound the value's precision range.

Rows are named tuples: a Bundle of a hundred resources makes a couple of thousand of them, and a
tuple is built, hashed (duplicates are dropped) and handed to the driver in C, where a frozen
dataclass ran Python for each (about 0.8 µs to build and 0.3 µs to hash a row). Rows of different
tables never compare equal: their lengths or the types of their values differ.
"""

from __future__ import annotations

from typing import NamedTuple


class StringRow(NamedTuple):
    param: str
    norm: str  # lower-cased, accents removed, whitespace collapsed (starts-with / contains)
    exact: str  # as written (for :exact)
    grp: int = 0
    comp: int = 0


class TokenRow(NamedTuple):
    param: str
    system: str | None
    code: str | None
    text: str | None = None  # normalised display / CodeableConcept.text, for :text
    grp: int = 0
    comp: int = 0


class DateRow(NamedTuple):
    param: str
    low: int  # inclusive
    high: int  # exclusive
    grp: int = 0
    comp: int = 0


class NumberRow(NamedTuple):
    param: str
    value: float
    low: float  # implicit precision range of the value as written
    high: float
    grp: int = 0
    comp: int = 0


class QuantityRow(NamedTuple):
    param: str
    value: float
    low: float
    high: float
    system: str | None
    code: str | None
    unit: str | None
    grp: int = 0
    comp: int = 0


class ReferenceRow(NamedTuple):
    param: str
    target_type: str | None  # for local references Type/id (and absolute URLs of this server)
    target_id: str | None
    target_version: str | None
    url: str | None  # absolute or canonical references that are not local
    grp: int = 0
    comp: int = 0


class UriRow(NamedTuple):
    param: str
    uri: str
    grp: int = 0
    comp: int = 0


IndexRow = StringRow | TokenRow | DateRow | NumberRow | QuantityRow | ReferenceRow | UriRow
