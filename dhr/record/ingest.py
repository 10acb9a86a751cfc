"""Ingest from a registered source: idempotent, one patient per NHS number, with provenance.

ARCHITECTURE.md "The unified record". Whatever a source sends as writes (a transaction or batch
Bundle, a single create or update, ``$import``, ``dhr load --source``) is planned here and then
run as an ordinary FHIR transaction (https://hl7.org/fhir/R4/http.html#transaction) through the
enforcing repository, in the caller's unit of work (all or nothing):

1. **Identity.** Each resource's source-local keys (``id:<the id the source gave it>``, else
   ``url:<its urn:uuid fullUrl>``, plus ``ident:<system>|<value>`` for identifiers in the source's
   own identifier systems) map to a server id (``source_identity``). A known key makes the entry
   an update of that resource, which stores a new version only if the content changed; an
   unknown one a create with a new server id. Re-sending a bundle therefore changes nothing.
2. **Linkage.** A Patient with a valid NHS number (Modulus 11, :mod:`dhr.record.nhs_number`;
   an invalid one fails the whole ingest with 422) is kept as the source's own record, tagged
   ``source-record`` and linked (``Patient.link`` type ``refer``) to the one master Patient of
   that number (:mod:`dhr.record.linkage`); a Patient without one is kept, tagged ``unlinked``
   and flagged ``no-nhs-number`` until an administrator links it.
3. **References.** Every reference to one of the source's resources (by fullUrl or by its local
   ``Type/id``, in this request or sent before) is rewritten to the server id; a reference to the
   source's Patient lands on the master, so all sources' data about a person share one
   compartment.
4. **Attribution** (:mod:`dhr.record.attribution`): ``meta.source`` and the controller tags come
   from the source's credentials.
5. **Provenance** (:mod:`dhr.record.provenance`): one per patient compartment and activity,
   targeting every version this ingest created or updated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from dhr.api.message import FhirResponse
from dhr.context import RequestContext
from dhr.enforce import IngestState, forbidden
from dhr.errors import FhirError, conflict
from dhr.fhir.ids import new_id
from dhr.fhir.instant import now_micros
from dhr.fhir.types import check_type
from dhr.interactions.bundle_entries import BundleEntry
from dhr.interactions.bundle_refs import (
    Found,
    find_references,
    needs_resolution,
    rewrite_found,
)
from dhr.interactions.bundle_transaction import Transaction
from dhr.record import linkage, provenance
from dhr.record.nhs_number import check_nhs_numbers, patient_nhs_number
from dhr.record.sources import Source
from dhr.record.vocab import (
    RECORD_ROLE_SYSTEM,
    REVIEW_NO_NHS_NUMBER,
    REVIEW_SYSTEM,
    ROLE_SOURCE_RECORD,
    ROLE_UNLINKED,
)
from dhr.store import record_store

_RELATIVE = re.compile(r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})$")
_MAX_KEY = 500


@dataclass
class _Item:
    """One resource the source sends (create or update) or deletes."""

    entry: BundleEntry
    res_type: str
    body: dict[str, Any] | None
    url_id: str | None
    keys: list[str]
    server_id: str = ""
    existing: bool = False
    record: str | None = None  # the source's Patient record this is (Patient) or is about
    compartment: str | None = None  # the Patient whose compartment it lands in
    nhs_number: str | None = None  # Patients: a valid NHS number
    references: list[Found] = field(default_factory=list)  # in body, found once (planning)


@dataclass
class IngestOutcome:
    """What one ingest did: per entry, whether it created, updated, left alone or deleted."""

    created: list[tuple[str, str]] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)


def ingesting(ctx: RequestContext) -> Source | None:
    """The source to ingest for, when this write should be planned (not while one runs)."""
    if ctx.repo.ingest is not None:
        return None
    return ctx.repo.source()


def ingest_entries(
    ctx: RequestContext, entries: list[BundleEntry], entity: str
) -> dict[int, FhirResponse]:
    """Plan and run ``entries`` sent by the principal's source; responses by entry index."""
    return ingest(ctx, entries, entity)[0]


def ingest(
    ctx: RequestContext, entries: list[BundleEntry], entity: str
) -> tuple[dict[int, FhirResponse], IngestOutcome]:
    source = ctx.repo.source()
    if source is None:
        raise forbidden("Only a registered source system can ingest")
    planner = _Planner(ctx, source)
    planned = planner.plan(entries)
    ctx.repo.ingest = IngestState(set())
    try:
        results = Transaction(ctx, planned).run()
        outcome = planner.finish(results, entity)
    finally:
        ctx.repo.ingest = None
    return results, outcome


def local_keys(
    source: Source, body: dict[str, Any] | None, url_id: str | None, full_url: str | None
) -> list[str]:
    """The source's own keys for one resource (see the module docstring)."""
    keys: list[str] = []
    given = url_id or (body or {}).get("id")
    if isinstance(given, str) and given:
        keys.append(f"id:{given}")
    elif full_url and full_url.startswith(("urn:uuid:", "urn:oid:")):
        keys.append(f"url:{full_url}")
    raw = (body or {}).get("identifier")
    identifiers = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    for ident in identifiers:
        if not isinstance(ident, dict):
            continue
        system, value = ident.get("system"), ident.get("value")
        if system in source.identifier_systems and isinstance(value, str) and value:
            keys.append(f"ident:{system}|{value}")
    return [
        k if len(k) <= _MAX_KEY else "sha256:" + hashlib.sha256(k.encode()).hexdigest()
        for k in keys
    ]


class _Planner:
    def __init__(self, ctx: RequestContext, source: Source) -> None:
        self.ctx = ctx
        self.source = source
        self.conn = ctx.repo.conn
        self.items: list[_Item] = []
        self.refs: dict[str, str] = {}  # fullUrl or local "Type/id" -> server "Type/id"
        self.ref_record: dict[str, str] = {}  # a reference to a source Patient -> its record id
        self.now = now_micros()
        self.new_masters: set[str] = set()  # claimed by this ingest: no version to read yet
        self.links: dict[str, record_store.LinkRow] = {}  # the sent Patients' links, before

    # -- planning ------------------------------------------------------------------------

    def plan(self, entries: list[BundleEntry]) -> list[BundleEntry]:
        for entry in entries:
            item = self._item(entry)
            if item is not None:
                self.items.append(item)
        self._assign_ids()
        self._link_patients()
        self._map_references()
        planned = {item.entry.index: self._planned(item) for item in self.items}
        return [planned.get(e.index, e) for e in entries]

    def _item(self, entry: BundleEntry) -> _Item | None:
        """The resource an entry writes or deletes (None: the entry runs as sent)."""
        seg = entry.segments()
        if "?" in entry.url or not seg:
            return None
        if entry.method == "POST" and len(seg) == 1 and "if-none-exist" not in entry.headers:
            url_id = None
        elif entry.method in ("PUT", "DELETE") and len(seg) == 2:
            url_id = seg[1]
        else:
            return None
        res_type = check_type(seg[0])
        body = entry.resource if entry.method != "DELETE" else None
        if body is not None and res_type == "Patient":
            try:
                check_nhs_numbers(res_type, body)
            except FhirError as exc:
                raise _at(entry, exc) from None
        return _Item(
            entry, res_type, body, url_id, local_keys(self.source, body, url_id, entry.full_url)
        )

    def _assign_ids(self) -> None:
        by_type: dict[str, list[_Item]] = {}
        for item in self.items:
            by_type.setdefault(item.res_type, []).append(item)
        source_id = self.source.source_id
        all_known = record_store.lookup_keys(
            self.conn,
            source_id,
            {t: [k for i in items for k in i.keys] for t, items in by_type.items()},
        )
        all_owned = record_store.source_owns(
            self.conn,
            source_id,
            {t: [i.url_id for i in items if i.url_id is not None] for t, items in by_type.items()},
        )
        for res_type, items in by_type.items():
            known, owned = all_known[res_type], all_owned[res_type]
            for item in items:
                ids = {known[k] for k in item.keys if k in known}
                if len(ids) > 1:
                    raise _at(
                        item.entry,
                        conflict(
                            f"This {res_type}'s identifiers name {len(ids)} different resources "
                            f"already sent by source {self.source.source_id}: "
                            + ", ".join(sorted(ids)),
                            "ingest-identity-conflict",
                        ),
                    )
                if ids:
                    item.server_id, item.existing = ids.pop(), True
                elif item.url_id is not None and item.url_id in owned:
                    item.server_id, item.existing = item.url_id, True
                elif item.url_id is not None and self._someone_elses(res_type, item.url_id):
                    raise _at(
                        item.entry,
                        forbidden(
                            f"{res_type}/{item.url_id} was not sent by source "
                            f"{self.source.source_id}; a source may only change the data it "
                            "originates"
                        ),
                    )
                else:
                    item.server_id = new_id()

    def _someone_elses(self, res_type: str, res_id: str) -> bool:
        """Whether ``res_id`` is a stored resource (which this source did not send)."""
        stored = self.ctx.repo.read_current(res_type, res_id)
        return stored is not None and not stored.deleted

    def _link_patients(self) -> None:
        patients = [i for i in self.items if i.res_type == "Patient" and i.body is not None]
        links = self.links = record_store.link_rows(self.conn, [i.server_id for i in patients])
        for item in patients:
            assert item.body is not None
            item.nhs_number = patient_nhs_number(item.body)
        numbers = {i.nhs_number for i in patients if i.nhs_number is not None}
        claimed = record_store.claim_masters(self.conn, {n: new_id() for n in numbers}, self.now)
        self.new_masters = {master for master, created in claimed.values() if created}
        for item in patients:
            item.record = item.server_id
            row = links.get(item.server_id)
            if item.nhs_number is not None:
                item.compartment = claimed[item.nhs_number][0]
            elif row is not None and row.master_id is not None:
                item.compartment = str(row.master_id)  # linked by an administrator
            else:
                item.compartment = item.server_id
        for item in self.items:  # what the source deletes keeps its compartment's record
            if item.res_type == "Patient" and item.body is None:
                item.record = item.server_id

    def _target(self, item: _Item) -> str:
        """What a reference to this item points at (a Patient: its compartment)."""
        if item.res_type == "Patient" and item.compartment is not None:
            return f"Patient/{item.compartment}"
        return f"{item.res_type}/{item.server_id}"

    def _map_references(self) -> None:
        for item in self.items:
            target = self._target(item)
            names = [item.entry.full_url] if item.entry.full_url else []
            local = item.url_id or (item.body or {}).get("id")
            if isinstance(local, str) and local:
                names.append(f"{item.res_type}/{local}")
            for name in names:
                self.refs.setdefault(name, target)
                if item.res_type == "Patient" and item.record is not None:
                    self.ref_record.setdefault(name, item.record)
        wanted: dict[str, set[str]] = {}
        for item in self.items:
            if item.body is not None:
                item.references = find_references(item.body)
                for _, ref in item.references:
                    self._want(ref, wanted)
        keys_of = {t: {f"id:{i}": i for i in ids} for t, ids in wanted.items()}
        all_known = record_store.lookup_keys(
            self.conn, self.source.source_id, {t: list(keys) for t, keys in keys_of.items()}
        )
        for res_type, keys in keys_of.items():
            known = all_known[res_type]
            if res_type == "Patient":
                links = record_store.link_rows(self.conn, list(known.values()))
            for key, server_id in known.items():
                name, target = f"{res_type}/{keys[key]}", f"{res_type}/{server_id}"
                if res_type == "Patient":
                    row = links.get(server_id)
                    if row is not None and row.master_id is not None:
                        target = f"Patient/{row.master_id}"
                    self.ref_record[name] = server_id
                self.refs[name] = target

    def _want(self, ref: str, wanted: dict[str, set[str]]) -> None:
        if ref not in self.refs:
            m = _RELATIVE.match(ref)
            if m is not None:
                wanted.setdefault(m.group(1), set()).add(m.group(2))

    def _rewrite(self, item: _Item) -> tuple[dict[str, Any], bool]:
        """The body to write, and whether every reference in it is final (none needs the
        transaction's resolution: no ``urn:`` placeholder, no conditional reference)."""
        assert item.body is not None
        about: list[tuple[str, str]] = []
        final = True

        def fix(ref: str) -> str:
            nonlocal final
            target = self.refs.get(ref, ref)
            record = self.ref_record.get(ref)
            if record is not None:
                about.append((record, target.split("/", 1)[1]))
            if final and needs_resolution(target):
                final = False
            return target

        body = rewrite_found(item.body, item.references, fix)
        if item.res_type == "Patient":
            body = self._patient_record(item, body)
            # _patient_record may add a link to Patient/{compartment}, a server id.
            if item.compartment is not None and needs_resolution(f"Patient/{item.compartment}"):
                final = False
        elif about:
            item.record, item.compartment = about[0]
        body["id"] = item.server_id
        return body, final

    def _patient_record(self, item: _Item, body: dict[str, Any]) -> dict[str, Any]:
        """The source's own Patient: linked to its master, or kept unlinked and flagged."""
        meta = dict(body.get("meta") or {})
        tags = [
            t
            for t in meta.get("tag") or []
            if not (isinstance(t, dict) and t.get("system") in (RECORD_ROLE_SYSTEM, REVIEW_SYSTEM))
        ]
        links = [
            link
            for link in body.get("link") or []
            if not (isinstance(link, dict) and link.get("type") == "refer")
        ]
        if item.compartment is not None and item.compartment != item.server_id:
            tags.append({"system": RECORD_ROLE_SYSTEM, "code": ROLE_SOURCE_RECORD})
            links.append({"other": {"reference": f"Patient/{item.compartment}"}, "type": "refer"})
        else:
            tags.append({"system": RECORD_ROLE_SYSTEM, "code": ROLE_UNLINKED})
            if item.nhs_number is None:
                tags.append({"system": REVIEW_SYSTEM, "code": REVIEW_NO_NHS_NUMBER})
        meta["tag"] = tags
        out = {**body, "meta": meta}
        if links:
            out["link"] = links
        else:
            out.pop("link", None)
        return out

    def _planned(self, item: _Item) -> BundleEntry:
        entry = item.entry
        headers = {k: v for k, v in entry.headers.items() if k != "if-none-exist"}
        url = f"{item.res_type}/{item.server_id}"
        if item.body is None:
            return BundleEntry(entry.index, "DELETE", url, None, None, headers)
        body, final = self._rewrite(item)
        if item.existing:
            return BundleEntry(
                entry.index,
                "PUT",
                url,
                None,
                body,
                headers,
                validated=entry.validated,
                references_final=final,
            )
        planned = BundleEntry(
            entry.index,
            "POST",
            item.res_type,
            None,
            body,
            headers,
            validated=entry.validated,
            references_final=final,
        )
        planned.assigned_id = item.server_id
        return planned

    # -- after the writes ------------------------------------------------------------------

    def finish(self, results: dict[int, FhirResponse], entity: str) -> IngestOutcome:
        state = self.ctx.repo.ingest
        unchanged = state.unchanged if state is not None else set()
        outcome = IngestOutcome()
        changes: list[provenance.Change] = []
        keys: list[record_store.IdentityRow] = []
        source_id = self.source.source_id
        for item in self.items:
            response = results.get(item.entry.index)
            if response is None or response.status >= 300:
                continue
            ref = (item.res_type, item.server_id)
            if item.body is None:
                outcome.deleted.append(ref)
                activity = "DELETE"
            elif response.status == 201:
                outcome.created.append(ref)
                activity = "CREATE"
            elif ref in unchanged:
                outcome.unchanged.append(ref)
                activity = ""
            else:
                outcome.updated.append(ref)
                activity = "UPDATE"
            if activity:
                changes.append(
                    provenance.Change(
                        item.res_type,
                        item.server_id,
                        _version(response),
                        activity,
                        item.compartment,
                    )
                )
            keys += [
                (source_id, item.res_type, key, item.server_id, item.record) for key in item.keys
            ]
        record_store.insert_keys(self.conn, keys)
        patients = self._patients(outcome)
        touched = linkage.record_links(self.ctx, self.source, patients, self.now, self.links)
        changes += linkage.refresh_masters(self.ctx, touched, self.new_masters)
        outcome.provenance = provenance.record(self.ctx, self.source, changes, entity, self.now)
        return outcome

    def _patients(self, outcome: IngestOutcome) -> list[linkage.RecordChange]:
        changed = {i for i in outcome.created + outcome.updated if i[0] == "Patient"}
        return [
            linkage.RecordChange(
                item.server_id,
                item.nhs_number,
                item.compartment if item.compartment != item.server_id else None,
                ("Patient", item.server_id) in changed,
            )
            for item in self.items
            if item.res_type == "Patient" and item.body is not None
        ]


def _version(response: FhirResponse) -> int | None:
    location = response.headers.get("Location") or ""
    tail = location.rpartition("/_history/")[2]
    return int(tail) if tail.isdigit() else None


def _at(entry: BundleEntry, exc: FhirError) -> FhirError:
    """``exc`` placed at ``entry`` (its expression prefixed with the entry's path)."""
    where = f"{entry.where}.resource"
    return FhirError(
        exc.status,
        exc.code,
        f"{entry.where}: {exc.diagnostics}",
        exc.message_code,
        tuple(f"{where}.{e.split('.', 1)[1]}" if "." in e else where for e in exc.expression)
        or (where,),
        exc.extra_issues,
    )
