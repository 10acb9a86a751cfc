"""NHS numbers: the Modulus 11 check and the Patient identifiers that carry them.

https://www.datadictionary.nhs.uk/attributes/nhs_number.html. An NHS number is ten ASCII digits;
the tenth is a check digit over the first nine: multiply them by the weights 10, 9, ... 2, sum,
take the remainder of dividing by 11 and subtract it from 11. A result of 11 gives check digit 0,
a result of 10 means the number is not valid (no NHS number is ever issued with it). 0000000000
passes the arithmetic but is not an NHS number and is refused.

NHS numbers are stored as the ten digits only (UK Core, https://simplifier.net/hl7fhirukcorer4,
identifier system ``https://fhir.nhs.uk/Id/nhs-number``): a value written with spaces or dashes
("943 476 5919") is refused, saying so. Only Patients are checked (the identifiers of other
resource types are left alone); an NHS-number identifier without a ``value`` carries no number
and is not checked.
"""

from __future__ import annotations

from typing import Any

from dhr.errors import FhirError
from dhr.record.vocab import NHS_NUMBER_SYSTEM

LENGTH = 10
_WEIGHTS = range(10, 1, -1)  # 10, 9, ... 2 on the first nine digits
_NOT_A_NUMBER = "0000000000"


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit of nine ASCII digits (None: 10, so no valid number exists)."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def problem(value: str) -> str | None:
    """Why ``value`` is not a valid NHS number, or None when it is."""
    if value.strip() != value or " " in value or "-" in value:
        return "an NHS number is stored as ten digits without spaces or dashes"
    if value and not (value.isascii() and value.isdigit()):
        return "an NHS number has only the digits 0-9"
    if len(value) != LENGTH:
        return f"an NHS number has {LENGTH} digits, this has {len(value)}"
    if value == _NOT_A_NUMBER:
        return "0000000000 is not an NHS number"
    expected = check_digit(value[:9])
    if expected is None:
        return "no valid NHS number starts with these nine digits (the check digit would be 10)"
    if expected != int(value[9]):
        return f"the check digit is {value[9]} but Modulus 11 gives {expected}"
    return None


def is_valid_nhs_number(value: str) -> bool:
    """Whether ``value`` is ten digits passing the Modulus 11 check (and not 0000000000)."""
    return problem(value) is None


def _nhs_identifiers(body: dict[str, Any]) -> list[tuple[int, Any]]:
    idents = body.get("identifier")
    if not isinstance(idents, list):
        return []
    return [
        (i, ident.get("value"))
        for i, ident in enumerate(idents)
        if isinstance(ident, dict) and ident.get("system") == NHS_NUMBER_SYSTEM
    ]


def patient_nhs_number(body: dict[str, Any]) -> str | None:
    """The value of the first NHS-number identifier of a Patient body (None: there is none)."""
    for _, value in _nhs_identifiers(body):
        if isinstance(value, str) and value:
            return value
    return None


def check_nhs_numbers(res_type: str, body: dict[str, Any]) -> None:
    """422 (issue ``value``, message ``invalid-nhs-number``) naming the first NHS-number
    identifier of a Patient whose value is not a valid NHS number; other types pass."""
    if res_type != "Patient":
        return
    for i, value in _nhs_identifiers(body):
        if value is None:
            continue
        why = problem(value) if isinstance(value, str) else "the value is not a string"
        if why is not None:
            shown = str(value)[:40]
            raise FhirError(
                422,
                "value",
                f"Patient.identifier[{i}].value {shown!r} is not a valid NHS number: {why}",
                "invalid-nhs-number",
                (f"Patient.identifier[{i}].value",),
            )
