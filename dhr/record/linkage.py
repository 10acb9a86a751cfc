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

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from dhr.access.system import record_service_principal
from dhr.context import RequestContext
from dhr.enforce import EnforcingRepository
from dhr.fhir import jsonio
from dhr.interactions.bundle_refs import walk_references
from dhr.record.provenance import Change
from dhr.record.sources import Source
from dhr.record.vocab import (
    NHS_NUMBER_SYSTEM,
    RECORD_ROLE_SYSTEM,
    REVIEW_DEMOGRAPHICS,
    REVIEW_NO_NHS_NUMBER,
    REVIEW_SYSTEM,
    ROLE_MASTER,
    ROLE_SOURCE_RECORD,
    ROLE_UNLINKED,
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
    ctx: RequestContext,
    source: Source,
    records: list[RecordChange],
    now: int,
    rows: Mapping[str, record_store.LinkRow],
) -> set[str]:
    """Save each record's link (and log changes); the masters whose content may have changed.

    ``rows``: the records' link rows as this unit of work read them before its writes. The
    links of records new to the store, and every change's log entry, go in one statement
    each."""
    conn = ctx.repo.conn
    repo = service(ctx)
    masters: set[str] = set()
    added: dict[str, dict[str, Any]] = {}  # by record (a record sent twice: its last link)
    events: list[dict[str, Any]] = []
    for rec in records:
        row = rows.get(rec.record_id)
        before = str(row.master_id) if row is not None and row.master_id is not None else None
        if row is not None and not rec.changed and before == rec.master_id:
            continue
        if row is None:
            added[rec.record_id] = {
                "record_id": rec.record_id,
                "source_id": source.source_id,
                "nhs_number": rec.nhs_number,
                "master_id": rec.master_id,
                "registered_at": now,
                "updated": now,
            }
        else:
            moved = rec.changed and _moved(repo, rec.record_id)
            registered = now if moved else int(row.registered_at)
            record_store.save_link(
                conn,
                rec.record_id,
                source.source_id,
                rec.nhs_number,
                rec.master_id,
                registered,
                now,
            )
        if before != rec.master_id:
            events.append(
                {
                    "record_id": rec.record_id,
                    "action": "auto-link" if rec.master_id else "unlink",
                    "master_id": rec.master_id,
                    "previous_master_id": before,
                    "actor": f"source {source.source_id}",
                    "reason": "NHS number"
                    if rec.master_id
                    else "the record no longer carries an NHS number",
                    "at": now,
                }
            )
            if before is not None:
                masters.add(before)
        if rec.master_id is not None:
            masters.add(rec.master_id)
    record_store.add_links(conn, list(added.values()))
    record_store.add_link_events(conn, events)
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
    ctx: RequestContext, masters: set[str], new: AbstractSet[str] = frozenset()
) -> list[Change]:
    """Recompose each master from its linked records; the versions written.

    ``new``: masters claimed in this unit of work, which have no version and no review flag
    to read yet. The masters' NHS numbers and linked records are read in one statement each.
    """
    conn = ctx.repo.conn
    ids = sorted(masters)
    numbers = record_store.master_nhs_numbers(conn, ids)
    linked = record_store.records_of_masters(conn, ids)
    out: list[Change] = []
    for master_id in ids:
        out += _refresh(ctx, master_id, numbers.get(master_id), linked[master_id], new)
    return out


def _refresh(
    ctx: RequestContext,
    master_id: str,
    nhs: str | None,
    rows: list[record_store.LinkRow],
    new: AbstractSet[str],
) -> list[Change]:
    repo = service(ctx)
    records: list[tuple[int, str, dict[str, Any]]] = []
    for row in rows:
        body = _current(repo, "Patient", str(row.record_id))
        if body is not None:
            records.append((int(row.registered_at), str(row.record_id), body))
    records.sort(key=lambda r: (r[0], r[1]))
    fresh = master_id in new
    previous = None if fresh else _current(repo, "Patient", master_id)
    master, conflicts = compose(master_id, nhs, records, previous)
    if fresh:  # its first version: created as a PUT with this id would be, in one statement
        stored = repo.create("Patient", master_id, master, method="PUT")
        changes = [Change("Patient", master_id, stored.version_id, "CREATE", master_id)]
    else:
        changes = _put(ctx, repo, "Patient", master_id, master, master_id)
    flagged = None if fresh else _current(repo, "Flag", f"{master_id}-review")
    flag = _flag(master_id, conflicts, records, flagged)
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
        + "; ".join(
            f"{value} (Patient/{rid} from {sources.get(rid)})" for rid, value in values.items()
        )
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
    if (
        ctx.repo.ingest is not None
        and (res_type, res_id) in ctx.repo.ingest.unchanged - unchanged_before
    ):
        return []
    return [
        Change(res_type, res_id, stored.version_id, "CREATE" if created else "UPDATE", compartment)
    ]


def relink(
    ctx: RequestContext,
    record_id: str,
    master_id: str | None,
    action: str,
    actor: str,
    reason: str,
    now: int,
) -> tuple[str | None, list[Change]]:
    """Link a source's Patient record to ``master_id`` (None: unlink it), moving exactly the data
    sent about it between compartments; returns the previous master and the versions written.

    The record's own version changes (``link``, role tags), every resource its source sent about
    it is rewritten to reference the new compartment (a new version, so history shows the move),
    both masters are recomposed, and the change is logged with who and why.
    """
    conn = ctx.repo.conn
    repo = service(ctx)
    row = record_store.link_rows(conn, [record_id]).get(record_id)
    if row is None:
        raise ValueError(record_id)
    before = str(row.master_id) if row.master_id is not None else None
    old_home, new_home = before or record_id, master_id or record_id
    record_store.save_link(
        conn,
        record_id,
        row.source_id,
        row.nhs_number,
        master_id,
        int(row.registered_at) if before == master_id else now,
        now,
    )
    record_store.add_link_event(conn, record_id, action, master_id, before, actor, reason, now)
    changes: list[Change] = []
    record = _current(repo, "Patient", record_id)
    if record is not None:
        changes += _put(ctx, repo, "Patient", record_id, _record_body(record, master_id), new_home)
    if old_home != new_home:
        for res_type, res_id in record_store.resources_about(conn, record_id):
            if res_type == "Patient":
                continue
            body = _current(repo, res_type, res_id)
            if body is None:
                continue
            moved = _moved_references(body, old_home, new_home)
            if moved is not body:
                changes += _put(ctx, repo, res_type, res_id, moved, new_home)
    masters = {m for m in (before, master_id) if m is not None}
    changes += refresh_masters(ctx, masters)
    return before, changes


def _record_body(record: dict[str, Any], master_id: str | None) -> dict[str, Any]:
    meta = dict(record.get("meta") or {})
    tags = [
        t
        for t in meta.get("tag") or []
        if not (isinstance(t, dict) and t.get("system") == RECORD_ROLE_SYSTEM)
        and not (
            isinstance(t, dict) and t == {"system": REVIEW_SYSTEM, "code": REVIEW_NO_NHS_NUMBER}
        )
    ]
    links = [
        link
        for link in record.get("link") or []
        if not (isinstance(link, dict) and link.get("type") == "refer")
    ]
    if master_id is not None:
        tags.append({"system": RECORD_ROLE_SYSTEM, "code": ROLE_SOURCE_RECORD})
        links.append({"other": {"reference": f"Patient/{master_id}"}, "type": "refer"})
    else:
        tags.append({"system": RECORD_ROLE_SYSTEM, "code": ROLE_UNLINKED})
        if not any(
            isinstance(i, dict) and i.get("system") == NHS_NUMBER_SYSTEM
            for i in record.get("identifier") or []
        ):
            tags.append({"system": REVIEW_SYSTEM, "code": REVIEW_NO_NHS_NUMBER})
    meta["tag"] = tags
    out = {**record, "meta": meta}
    if links:
        out["link"] = links
    else:
        out.pop("link", None)
    return out


def _moved_references(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``body`` with references to ``Patient/old`` pointing at ``Patient/new`` (``body`` itself
    when none did)."""
    before, after = f"Patient/{old}", f"Patient/{new}"
    seen = False

    def fix(ref: str) -> str:
        nonlocal seen
        if ref == before:
            seen = True
            return after
        return ref

    out = walk_references(body, fix)
    return out if seen else body
