"""``GET Patient/[id]/$access-log``: who looked at a patient's record, in plain terms.

A DHR operation (https://hl7.org/fhir/R4/operations.html) answering a ``Parameters`` resource
(https://hl7.org/fhir/R4/parameters.html) with one ``access`` parameter per AuditEvent about the
patient (https://hl7.org/fhir/R4/auditevent.html, shaped by IHE BALP, :mod:`dhr.audit.events`),
newest first. Each has the parts a person can read: ``when`` (valueDateTime), ``who`` (the name
on the user's Practitioner or Patient resource, else the app's or organisation's name), ``role``
(the role's display, :mod:`dhr.auth.roles`), ``organisation`` (the organisation's name, else its
ODS code), ``data`` (kinds of data, "observations, conditions"), ``action`` ("looked at",
"searched", "created", "changed", "deleted"), ``allowed`` (false when the access was refused),
``purpose`` ("direct care"...) and ``breakGlass``. A declaration about the record
(``$break-glass``, ``$claim-relationship``) is an ``access`` too, whose ``action`` says what was
declared ("declared emergency access (break-glass)", "said they are caring for you (to be
checked)") about ``data`` "your whole record", with the ``reason`` they gave and ``until``
(valueDateTime) when it lapses. No ids, hashes, tokens, client ids or request ids (GDPR art. 15
right of access: the recipients of the data, in an intelligible form).

Who may call it: the patient (a token whose user is a patient, or whose resource scopes are all
``patient/`` scopes) for their own id only (another id answers 404, like any compartment
denial), and whoever may search the audit (:func:`dhr.audit.view.may_read_audit`: privacy
officers, system clients); anybody else gets 403. ``_count`` and the ``_page`` cursor page it; a
``next`` parameter (valueUri) names the following page. Showing the log is itself audited.
Names are looked up with a directory principal that may read only Practitioner, PractitionerRole,
Patient and Organization (through the enforcing repository, like any other read), and the
request's audit names the resources those lookups read.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from dhr.access.policy import POLICY_SERVICE_ROLE
from dhr.api.message import FhirRequest, FhirResponse
from dhr.audit import view
from dhr.auth import roles as rbac
from dhr.auth.model import Principal, Scope
from dhr.context import RequestContext
from dhr.enforce import EnforcingRepository, forbidden
from dhr.errors import FhirError, not_found
from dhr.fhir import jsonio
from dhr.fhir.instant import format_instant
from dhr.interactions.audit_read import page_count, page_cursor
from dhr.search.params import parse_search
from dhr.store import policy_store

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
_ORGANISATION_EXTENSION = "audit-agent-organisation"
_USER_AGENT = "IRCP"
_QUERY_ROLE = "24"
_SEARCHES = frozenset(
    {"search-type", "search-system", "search-compartment", "history-type", "history-system"}
)
_ACTIONS = {"C": "created", "U": "changed", "D": "deleted"}
# Declarations about the record (audit subtype -> access_claim kind, what the patient reads).
_DECLARATIONS = {
    "break-glass": (policy_store.BREAK_GLASS, "declared emergency access (break-glass)"),
    "claim-relationship": (
        policy_store.RELATIONSHIP,
        "said they are caring for you (to be checked)",
    ),
}
_PURPOSES = {
    "TREAT": "direct care",
    "ETREAT": "emergency care",
    "BTG": "emergency access (break-glass)",
    "PATRQT": "your own request",
    "HCOMPL": "checking that your record is handled lawfully",
    "PATADMIN": "administration of your care",
    "HOPERAT": "running the health service",
    "HRESCH": "research",
    "PUBHLTH": "public health",
    "HPAYMT": "payment for care",
}
_DATA = {
    "Patient": "personal details",
    "Observation": "observations",
    "Condition": "conditions",
    "MedicationRequest": "prescriptions",
    "MedicationStatement": "medicines",
    "MedicationAdministration": "medicines given",
    "MedicationDispense": "medicines dispensed",
    "AllergyIntolerance": "allergies",
    "Immunization": "vaccinations",
    "Encounter": "visits",
    "Appointment": "appointments",
    "Procedure": "procedures",
    "DiagnosticReport": "test results",
    "DocumentReference": "documents",
    "CarePlan": "care plans",
    "Consent": "consent choices",
    "AuditEvent": "records of who accessed your record",
    "Flag": "alerts",
    "FamilyMemberHistory": "family history",
}
_DIRECTORY_TYPES = ("Practitioner", "PractitionerRole", "Patient", "Organization")
_DIRECTORY = Principal(
    subject="dhr:access-log-directory",
    scopes=tuple(
        Scope("system", t, frozenset("rs"), (), f"system/{t}.rs") for t in _DIRECTORY_TYPES
    ),
    scope_text=" ".join(f"system/{t}.rs" for t in _DIRECTORY_TYPES),
    roles=("system", POLICY_SERVICE_ROLE),
)


def access_log(ctx: RequestContext, req: FhirRequest, patient_id: str) -> FhirResponse:
    """``GET Patient/[id]/$access-log``."""
    _check_access(ctx.repo.principal, patient_id)
    pairs = list(req.query)
    count = page_count(pairs, ctx.settings.default_page_size, ctx.settings.max_page_size)
    after = page_cursor(pairs)
    rows = []
    if count > 0:
        rows = ctx.repo.audit_events(
            patient=patient_id, limit=count + 1, after_key=after, newest_first=True
        )
    more = len(rows) > count
    rows = rows[:count]
    names = _Names(ctx.repo)
    claims = (
        policy_store.claims_for_patient(ctx.repo.conn, patient_id)
        if any(row.subtype in _DECLARATIONS for row in rows)
        else []
    )
    params: list[dict[str, Any]] = [_access(names, row, claims) for row in rows]
    if more:
        qs = urlencode([("_count", str(count)), ("_page", str(rows[-1].key))], quote_via=quote)
        url = f"{ctx.base}/Patient/{patient_id}/$access-log?{qs}"
        params.append({"name": "next", "valueUri": url})
    view.touched(ctx, rows)
    body: dict[str, Any] = {"resourceType": "Parameters"}
    if params:
        body["parameter"] = params
    return FhirResponse(200, None, body, {}, "Parameters")


def _check_access(principal: Principal, patient_id: str) -> None:
    """The patient for their own id (404 for another), auditors for any, 403 otherwise."""
    if view.may_read_audit(principal, "s") is True:
        return
    own = _own_patient(principal)
    if own is None:
        raise forbidden(
            "The access log is shown to the patient it is about and to privacy officers"
        )
    if own != patient_id:
        raise not_found(f"Patient/{patient_id} is not known")


def _own_patient(principal: Principal) -> str | None:
    """The patient's own id when the principal is a patient (user or patient-only scopes)."""
    fhir_user = principal.fhir_user or ""
    if fhir_user.startswith("Patient/"):
        return fhir_user.removeprefix("Patient/")
    patient_only = bool(principal.scopes) and all(s.context == "patient" for s in principal.scopes)
    if "patient" in principal.roles or patient_only:
        return principal.patient
    return None


def _access(names: _Names, row: Any, claims: Sequence[Any]) -> dict[str, Any]:
    event: dict[str, Any] = jsonio.loads(bytes(row.data))
    user = _agent(event, _USER_AGENT)
    parts: list[dict[str, Any]] = [
        {"name": "when", "valueDateTime": format_instant(int(row.recorded))},
        {"name": "who", "valueString": names.who(user, row.client_id, str(row.patient))},
        {"name": "role", "valueString": _role(user)},
    ]
    organisation = names.organisation(_ods(user), row.client_id)
    if organisation:
        parts.append({"name": "organisation", "valueString": organisation})
    parts += [
        {"name": "data", "valueString": _data(event)},
        {"name": "action", "valueString": _action(row.action, row.subtype)},
        {"name": "allowed", "valueBoolean": row.outcome == "0"},
        {"name": "purpose", "valueString": _purpose(row.purpose, user)},
        {"name": "breakGlass", "valueBoolean": bool(row.break_glass)},
    ]
    if row.subtype in _DECLARATIONS:
        parts = _declared(parts, row, claims)
    return {"name": "access", "part": parts}


def _declared(parts: list[dict[str, Any]], row: Any, claims: Sequence[Any]) -> list[dict[str, Any]]:
    """A declaration's access entry: what was declared, its reason and when it lapses (the
    claim recorded with the event: same subject and kind, the newest started before it)."""
    kind, said = _DECLARATIONS[str(row.subtype)]
    plain = {"action": said, "data": "your whole record"}
    out = [
        {"name": p["name"], "valueString": plain[p["name"]]} if p["name"] in plain else p
        for p in parts
    ]
    if row.outcome != "0":
        return out
    claim = next(
        (
            c
            for c in claims  # newest first
            if c.kind == kind and c.subject == row.agent and int(c.started) <= int(row.recorded)
        ),
        None,
    )
    if claim is not None:
        out.append({"name": "reason", "valueString": str(claim.reason)})
        out.append({"name": "until", "valueDateTime": format_instant(int(claim.expires))})
    return out


def _agent(event: dict[str, Any], code: str) -> dict[str, Any] | None:
    for agent in event.get("agent", []):
        codings = agent.get("type", {}).get("coding", [])
        if any(c.get("code") == code for c in codings):
            found: dict[str, Any] = agent
            return found
    return None


def _role(user: dict[str, Any] | None) -> str:
    found = _role_of(user)
    if found is not None:
        return found.display
    texts = [str(c["text"]) for c in (user or {}).get("role", []) if c.get("text")]
    return texts[0] if texts else "not recorded"


def _ods(user: dict[str, Any] | None) -> str | None:
    for ext in (user or {}).get("extension", []):
        if str(ext.get("url", "")).endswith(_ORGANISATION_EXTENSION):
            value = ext.get("valueReference", {}).get("identifier", {}).get("value")
            return str(value) if value else None
    return None


def _action(action: str, subtype: str) -> str:
    if subtype in _SEARCHES:
        return "searched"
    return _ACTIONS.get(action, "looked at")


def _purpose(code: str | None, user: dict[str, Any] | None) -> str:
    """The purpose recorded, else the purpose of use the user's role declares (roles.json)."""
    role = _role_of(user)
    if not code and role is not None:
        code = role.purpose_of_use
    if not code:
        return "not stated"
    return _PURPOSES.get(code, code.lower())


def _role_of(user: dict[str, Any] | None) -> rbac.Role | None:
    if user is None:  # a system acting on its own (SMART Backend Services)
        return rbac.role("system")
    for concept in user.get("role", []):
        for coding in concept.get("coding", []):
            try:
                return rbac.role(str(coding.get("code", "")))
            except rbac.UnknownRoleError:
                continue
    return None


def _data(event: dict[str, Any]) -> str:
    """Kinds of data touched, from the entities (else the searched type, else the patient)."""
    kinds: list[str] = []
    searched = False
    for entity in event.get("entity", []):
        ref = str(entity.get("what", {}).get("reference", ""))
        role = entity.get("role", {}).get("code")
        if role == _QUERY_ROLE:
            searched = True
            ref = _query_type(str(entity.get("query", "")))
        elif role != "4":
            continue
        res_type = ref.split("/", 1)[0]
        if res_type:
            kind = _DATA.get(res_type) or _plain_plural(res_type)
            if kind not in kinds:
                kinds.append(kind)
    if kinds:
        return ", ".join(kinds)
    return "your record (a search that found nothing)" if searched else _DATA["Patient"]


def _query_type(encoded: str) -> str:
    try:
        text = base64.b64decode(encoded).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""
    head = text.split("?", 1)[0].strip("/").split("/")
    found = [part for part in head if re.fullmatch(r"[A-Z][A-Za-z]+", part)]
    return found[-1] if found else ""


def _plain_plural(res_type: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", res_type).lower()
    return words if words.endswith("s") else f"{words}s"


def _human_name(resource: dict[str, Any]) -> str | None:
    names = [n for n in resource.get("name", []) if isinstance(n, dict)]
    names.sort(key=lambda n: {"official": 0, "usual": 1}.get(str(n.get("use")), 2))
    for name in names:
        if name.get("text"):
            return str(name["text"])
        words = [*name.get("prefix", []), *name.get("given", []), name.get("family")]
        text = " ".join(str(w) for w in words if w)
        if text:
            return text
    if isinstance(resource.get("name"), str):  # Organization.name
        return str(resource["name"])
    return None


class _Names:
    """Names of people, apps and organisations for one answer (each looked up once)."""

    def __init__(self, repo: EnforcingRepository) -> None:
        self.repo = repo
        self.base = repo.base
        # The names read here are part of this request: the request's recorder audits them.
        self.directory = repo.for_principal(_DIRECTORY)
        self._cache: dict[str, str | None] = {}

    def _once(self, key: str, find: Any) -> str | None:
        if key not in self._cache:
            self._cache[key] = find()
        return self._cache[key]

    def who(self, user: dict[str, Any] | None, client_id: str | None, patient: str) -> str:
        ref = str(((user or {}).get("who") or {}).get("reference") or "")
        if ref.startswith("Patient/") and ref != f"Patient/{patient}":
            return "another patient"  # their name is theirs to keep
        person = self._once(f"user:{ref}", lambda: self._person(ref)) if ref else None
        if person:
            return person
        app = self._once(f"client:{client_id}", lambda: self._client(client_id, "name"))
        return app or "an unnamed application"

    def organisation(self, ods: str | None, client_id: str | None) -> str | None:
        if ods is None:
            ods = self._once(f"client-org:{client_id}", lambda: self._client(client_id, "org"))
        if ods is None:
            return None
        code = ods
        return self._once(f"ods:{code}", lambda: self._organisation(code)) or code

    def _read(self, ref: str) -> dict[str, Any] | None:
        res_type, _, res_id = ref.partition("/")
        if res_type not in _DIRECTORY_TYPES or not res_id or "/" in res_id:
            return None
        try:
            stored = self.directory.read_current(res_type, res_id)
        except FhirError:
            return None
        if stored is None or stored.deleted or stored.data is None:
            return None
        found: dict[str, Any] = jsonio.loads(stored.data)
        return found

    def _person(self, ref: str) -> str | None:
        resource = self._read(ref)
        if resource is None:
            return None
        if resource.get("resourceType") == "PractitionerRole":
            inner = str(resource.get("practitioner", {}).get("reference", ""))
            practitioner = self._read(inner) if inner else None
            if practitioner is not None:
                return _human_name(practitioner)
            display = resource.get("practitioner", {}).get("display")
            return str(display) if display else None
        return _human_name(resource)

    def _client(self, client_id: str | None, what: str) -> str | None:
        if not client_id:
            return None
        row = self.repo.client_record(client_id)
        if row is None:
            return None
        value = row.name if what == "name" else row.organisation
        return str(value) if value else None

    def _organisation(self, ods: str) -> str | None:
        try:
            sreq = parse_search(
                "Organization", [("identifier", f"{ODS_SYSTEM}|{ods}")], self.base, 1
            )
            rows = self.directory.search("Organization", sreq.criteria, (), 1, None)
        except FhirError:
            return None
        if not rows:
            return None
        first: Sequence[Any] = rows[0]  # (key, res_type, res_id, data, ...)
        return _human_name(jsonio.loads(bytes(first[3])))
