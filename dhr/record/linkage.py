"""One patient, one compartment: master Patients and the links of sources' Patient records.

ARCHITECTURE.md "One patient, one compartment"; Patient.link
(https://hl7.org/fhir/R4/patient-definitions.html#Patient.link): a source's record links to its
master with type ``refer``, the master back to each record with ``seealso``.

The master of an NHS number is composed by the server (the record service principal) from the
records linked to it:

* identifier: the NHS number; ``generalPractitioner`` and ``managingOrganization``: from the
  record of the **latest registration** (the record that most recently named a new practice);
* name, telecom, address, gender, birth date: from that record too, except that where linked
  records **disagree on birth date or gender** the master keeps the value it already had (never
  silently overwritten), is tagged ``demographics-conflict`` and gets an active ``Flag`` that
  names each source's value for a person to review; the flag turns inactive once they agree.

Every change of a record's master is logged in ``patient_link_event`` (who, when, before, after).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dhr.access.system import record_service_principal
from dhr.context import RequestContext
from dhr.enforce import EnforcingRepository
from dhr.fhir import jsonio
from dhr.record.provenance import Change
from dhr.record.sources import Source
from dhr.record.vocab import (
    NHS_NUMBER_SYSTEM,
    RECORD_ROLE_SYSTEM,
    REVIEW_DEMOGRAPHICS,
    REVIEW_SYSTEM,
    ROLE_MASTER,
)
from dhr.store import record_store

_FROM_LATEST = ("name", "telecom", "gender", "birthDate", "address", "maritalStatus")
_REGISTRATION = ("generalPractitioner", "managingOrganization")
_CONFLICTING = ("birthDate", "gender")


@dataclass(frozen=True)
class RecordChange:
    """A source's Patient record as an ingest left it."""

    record_id: str
    nhs_number: str | None
    master_id: str | None
    changed: bool


def service(ctx: RequestContext) -> EnforcingRepository:
    """The repository as the record service (same unit of work, same audit)."""
    return ctx.repo.for_principal(record_service_principal())


def _current(repo: EnforcingRepository, res_type: str, res_id: str) -> dict[str, Any] | None:
    stored = repo.read_current(res_type, res_id)
    if stored is None or stored.data is None:
        return None
    data = jsonio.loads(stored.data)
    return data if isinstance(data, dict) else None


def _registration(body: dict[str, Any] | None) -> Any:
    return [(body or {}).get(k) for k in _REGISTRATION]


def record_links(
    ctx: RequestContext, source: Source, records: list[RecordChange], now: int
) -> set[str]:
    """Save each record's link (and log changes); the masters whose content may have changed."""
    conn = ctx.repo.conn
    rows = record_store.link_rows(conn, [r.record_id for r in records])
    repo = service(ctx)
    masters: set[str] = set()
    for rec in records:
        row = rows.get(rec.record_id)
        before = str(row.master_id) if row is not None and row.master_id is not None else None
        if row is not None and not rec.changed and before == rec.master_id:
            continue
        registered = now
        if row is not None:
            registered = int(row.registered_at)
            if rec.changed and _moved(repo, rec.record_id):
                registered = now
        record_store.save_link(
            conn, rec.record_id, source.source_id, rec.nhs_number, rec.master_id, registered, now
        )
        if before != rec.master_id:
            record_store.add_link_event(
                conn,
                rec.record_id,
                "auto-link" if rec.master_id else "unlink",
                rec.master_id,
                before,
                f"source {source.source_id}",
                "NHS number" if rec.master_id else "the record no longer carries an NHS number",
                now,
            )
            if before is not None:
                masters.add(before)
        if rec.master_id is not None:
            masters.add(rec.master_id)
    return masters


def _moved(repo: EnforcingRepository, record_id: str) -> bool:
    """Whether the record's latest version names another practice than the one before."""
    now = repo.read_current("Patient", record_id)
    if now is None or now.version_id < 2 or now.data is None:
        return True
    before = repo.read_version("Patient", record_id, now.version_id - 1)
    old = jsonio.loads(before.data) if before is not None and before.data else None
    return bool(_registration(jsonio.loads(now.data)) != _registration(old))


def refresh_masters(
    ctx: RequestContext, masters: set[str], claimed: dict[str, bool] | None = None
) -> list[Change]:
    """Recompose each master from its linked records; the versions written."""
    out: list[Change] = []
    for master_id in sorted(masters):
        out += refresh_master(ctx, master_id)
    return out


def refresh_master(ctx: RequestContext, master_id: str) -> list[Change]:
    conn = ctx.repo.conn
    repo = service(ctx)
    nhs = record_store.master_nhs_number(conn, master_id)
    rows = record_store.records_of_master(conn, master_id)
    records: list[tuple[int, str, dict[str, Any]]] = []
    for row in rows:
        body = _current(repo, "Patient", str(row.record_id))
        if body is not None:
            records.append((int(row.registered_at), str(row.record_id), body))
    records.sort(key=lambda r: (r[0], r[1]))
    previous = _current(repo, "Patient", master_id)
    master, conflicts = compose(master_id, nhs, records, previous)
    changes = _put(ctx, repo, "Patient", master_id, master, master_id)
    flag = _flag(master_id, conflicts, records, _current(repo, "Flag", f"{master_id}-review"))
    if flag is not None:
        changes += _put(ctx, repo, "Flag", flag["id"], flag, master_id)
    return changes


def compose(
    master_id: str,
    nhs: str | None,
    records: list[tuple[int, str, dict[str, Any]]],
    previous: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The master's content from its records (oldest registration first) and the conflicts
    (element -> {record id: value})."""
    latest = records[-1][2] if records else (previous or {})
    master: dict[str, Any] = {"resourceType": "Patient", "id": master_id}
    tags = [{"system": RECORD_ROLE_SYSTEM, "code": ROLE_MASTER}]
    if nhs is not None:
        master["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": nhs}]
    master["active"] = bool(records)
    for element in (*_FROM_LATEST, *_REGISTRATION):
        if latest.get(element) is not None:
            master[element] = latest[element]
    conflicts: dict[str, dict[str, Any]] = {}
    for element in _CONFLICTING:
        values = {rid: body[element] for _, rid, body in records if body.get(element) is not None}
        if len(set(map(str, values.values()))) > 1:
            conflicts[element] = values
            kept = (previous or {}).get(element)
            if kept is not None:
                master[element] = kept
    if conflicts:
        tags.append({"system": REVIEW_SYSTEM, "code": REVIEW_DEMOGRAPHICS})
    master["meta"] = {"tag": tags}
    if records:
        master["link"] = [
            {"other": {"reference": f"Patient/{rid}"}, "type": "seealso"} for _, rid, _ in records
        ]
    return master, conflicts


def _flag(
    master_id: str,
    conflicts: dict[str, dict[str, Any]],
    records: list[tuple[int, str, dict[str, Any]]],
    existing: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The review Flag of a master: active while its records disagree (None: never needed)."""
    if not conflicts and existing is None:
        return None
    sources = {rid: (body.get("meta") or {}).get("source", "?") for _, rid, body in records}
    parts = [
        f"{element}: "
        + "; ".join(f"{value} (Patient/{rid} from {sources.get(rid)})" for rid, value in values.items())
        for element, values in sorted(conflicts.items())
    ]
    text = (
        "Linked records disagree - " + " | ".join(parts)
        if conflicts
        else "Linked records agree again"
    )
    return {
        "resourceType": "Flag",
        "id": f"{master_id}-review",
        "status": "active" if conflicts else "inactive",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "admin",
                        "display": "Administrative",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": REVIEW_SYSTEM, "code": REVIEW_DEMOGRAPHICS}],
            "text": text,
        },
        "subject": {"reference": f"Patient/{master_id}"},
    }


def _put(
    ctx: RequestContext,
    repo: EnforcingRepository,
    res_type: str,
    res_id: str,
    body: dict[str, Any],
    compartment: str,
) -> list[Change]:
    """Store ``body`` unless it equals the current version; the change written, if any."""
    unchanged_before = set(ctx.repo.ingest.unchanged) if ctx.repo.ingest is not None else set()
    stored, created = repo.put(res_type, res_id, body, None)
    if ctx.repo.ingest is not None and (res_type, res_id) in ctx.repo.ingest.unchanged - unchanged_before:
        return []
    return [
        Change(res_type, res_id, stored.version_id, "CREATE" if created else "UPDATE", compartment)
    ]
