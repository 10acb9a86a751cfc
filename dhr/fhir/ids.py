"""Logical ids and version ids (https://hl7.org/fhir/R4/datatypes.html#id)."""

from __future__ import annotations

import re
import uuid

from dhr.errors import bad_request

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a FHIR id, else raise a 400."""
    if not is_valid_id(value):
        raise bad_request(
            f"{what} {value[:80]!r} is not a FHIR id ([A-Za-z0-9-.]{{1,64}})", "invalid-id"
        )
    return value


def new_id() -> str:
    """A fresh server-assigned id."""
    return str(uuid.uuid4())


def parse_version_id(value: str) -> int | None:
    """Our version ids are positive integers; anything else names no version here (None)."""
    if not value.isdigit() or len(value) > 12 or int(value) < 1:
        return None
    return int(value)
