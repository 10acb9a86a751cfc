"""FHIRPath-style element paths for OperationOutcome.issue.expression (https://hl7.org/fhir/R4/fhirpath.html)."""

from __future__ import annotations


def element_path(type_name: str, loc: tuple[int | str, ...]) -> str:
    """``('name', 0, 'family')`` -> ``Patient.name[0].family``."""
    path = type_name
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}"
    return path
