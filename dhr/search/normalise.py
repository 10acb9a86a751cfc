"""String normalisation shared by index extraction and query values.

https://hl7.org/fhir/R4/search.html#string: string search is case- and accent-insensitive by
default. Both sides go through :func:`normalise` so they compare equal. Index columns hold 255
characters; longer values are cut there (a starts-with search on a longer prefix still works up
to that length).
"""

from __future__ import annotations

import unicodedata

MAX_INDEXED = 255


def normalise(value: str) -> str:
    """Lower-case, strip accents (NFKD without combining marks), collapse white space."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())[:MAX_INDEXED]
