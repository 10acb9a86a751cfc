"""The patient key: which Patient's record a stored resource belongs to, kept on its resource row.

ARCHITECTURE.md "Storage": every row of clinical data carries the patient key of the compartment
it belongs to (https://hl7.org/fhir/R4/compartmentdefinition-patient.html). The key is worked out
at write time from the index rows the resource's search parameters give
(:func:`dhr.search.extract.extract`), as the consent decision reads the compartment
(:func:`dhr.access.policy_sql.patient_data`): the resource's type's membership parameters that
reference a Patient, and, for a Patient, itself and the Patients its ``link`` names.

* ``None``: no Patient's record (no membership reference to a Patient): not patient data.
* a Patient id: exactly one Patient, referenced relatively (``Patient/123``).
* :data:`SEVERAL`: more than one Patient, or a Patient named by an absolute URL (whether that is
  this server depends on the base URL, which the decision judges when it runs). The decision
  then reads the resource's references as before the key existed; so does every row whose key
  was never worked out (the column's default), so a missing key costs speed, never safety.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from dhr.search import compartment
from dhr.search.rows import IndexRow, ReferenceRow

OWNER = "Patient"
# Not an id (ids are [A-Za-z0-9.-]), so it can never name a Patient.
SEVERAL = "*"


@cache
def membership_params(res_type: str) -> frozenset[str]:
    """The reference parameters of ``res_type`` that put it in a Patient's record."""
    params = compartment.compartment(OWNER).params(res_type)
    return frozenset((*params, "link") if res_type == OWNER else params)


def patient_key(res_type: str, res_id: str, rows: Iterable[IndexRow]) -> str | None:
    """The patient key of ``res_type/res_id`` whose index rows are ``rows``."""
    params = membership_params(res_type)  # never empty for a Patient (its ``link``)
    if not params:
        return None
    found: set[str] = {res_id} if res_type == OWNER else set()
    for row in rows:
        if (
            type(row) is ReferenceRow
            and row.target_type == OWNER
            and row.target_id is not None
            and row.param in params
        ):
            if row.url is not None:
                return SEVERAL
            found.add(row.target_id)
    if not found:
        return None
    return found.pop() if len(found) == 1 else SEVERAL
