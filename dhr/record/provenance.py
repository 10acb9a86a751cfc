"""Provenance of an ingest: who sent what, when, from which system and which bundle.

https://hl7.org/fhir/R4/provenance.html. One Provenance per patient compartment and activity
(so a Provenance never names two people's records, and the policy layer can judge it with the
patient's data): ``target`` is every version the ingest created, updated or deleted there
(version-specific references), ``recorded`` the time, ``activity`` a v3 DataOperation code
(CREATE, UPDATE, DELETE), ``agent`` the source's organisation (author, by ODS code) and the
sending system (assembler), ``entity`` the bundle, job or file sent (role ``source``).
``_revinclude=Provenance:target`` shows where any item came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dhr.access.system import record_service_principal
from dhr.context import RequestContext
from dhr.fhir.ids import new_id
from dhr.fhir.instant import format_instant
from dhr.record.attribution import controller_tags
from dhr.record.sources import Source
from dhr.record.vocab import (
    DATA_OPERATION_SYSTEM,
    INGEST_ID,
    ODS_CODE_SYSTEM,
    PROVENANCE_AGENT_TYPE_SYSTEM,
    SOURCE_SYSTEM_ID,
)

_ACTIVITY = {"CREATE": "create", "UPDATE": "update", "DELETE": "delete"}


@dataclass(frozen=True)
class Change:
    """One version an ingest wrote, and the compartment (Patient id) it belongs to."""

    res_type: str
    res_id: str
    version: int | None
    activity: str  # CREATE, UPDATE or DELETE
    compartment: str | None


def agents(source: Source) -> list[dict[str, Any]]:
    return [
        {
            "type": _agent_type("author"),
            "who": {
                "identifier": {"system": ODS_CODE_SYSTEM, "value": source.ods_code},
                "display": f"{source.name} (ODS {source.ods_code})",
            },
        },
        {
            "type": _agent_type("assembler"),
            "who": {
                "identifier": {"system": SOURCE_SYSTEM_ID, "value": source.source_id},
                "display": f"{source.supplier} system {source.source_id}",
            },
            "onBehalfOf": {"identifier": {"system": ODS_CODE_SYSTEM, "value": source.ods_code}},
        },
    ]


def _agent_type(code: str) -> dict[str, Any]:
    return {"coding": [{"system": PROVENANCE_AGENT_TYPE_SYSTEM, "code": code}]}


def build(
    source: Source, changes: list[Change], entity: str, now: int, national: str
) -> dict[str, Any]:
    """One Provenance over ``changes`` (all of one compartment and activity)."""
    activity = changes[0].activity
    return {
        "resourceType": "Provenance",
        "meta": {"source": source.uri, "tag": controller_tags(source.ods_code, national)},
        "target": [
            {
                "reference": f"{c.res_type}/{c.res_id}"
                + (f"/_history/{c.version}" if c.version is not None else "")
            }
            for c in changes
        ],
        "recorded": format_instant(now),
        "activity": {
            "coding": [
                {"system": DATA_OPERATION_SYSTEM, "code": activity, "display": _ACTIVITY[activity]}
            ]
        },
        "agent": agents(source),
        "entity": [
            {
                "role": "source",
                "what": {"identifier": {"system": INGEST_ID, "value": entity[:200]}},
            }
        ],
    }


def record(
    ctx: RequestContext, source: Source, changes: list[Change], entity: str, now: int
) -> list[str]:
    """Write the Provenances of an ingest's ``changes``; their ids."""
    groups: dict[tuple[str | None, str], list[Change]] = {}
    for change in changes:
        groups.setdefault((change.compartment, change.activity), []).append(change)
    if not groups:
        return []
    national = ctx.repo.national
    items = [
        ("Provenance", new_id(), build(source, group, entity, now, national))
        for group in groups.values()
    ]
    ctx.repo.for_principal(record_service_principal()).create_many(items)
    return [res_id for _, res_id, _ in items]
