"""Demo data for ``make run`` (``dhr serve --demo``): load :mod:`dhr.demo_data` once.

Each resource goes through :func:`dhr.api.dispatch.handle` like any API request: a read
(https://hl7.org/fhir/R4/http.html#read) to see whether it is already there unchanged, and an
update with its fixed id (https://hl7.org/fhir/R4/http.html#update) only when it is missing or
different, so starting the server again adds no versions and never duplicates.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Engine

from dhr.access.system import cli_principal
from dhr.api.dispatch import Services, handle
from dhr.api.http import FHIR_JSON
from dhr.api.message import FhirRequest
from dhr.auth.model import Principal
from dhr.config import Settings
from dhr.demo_auth import ORCHARD_ODS
from dhr.demo_data import demo_resources
from dhr.demo_record import seed_unified_record
from dhr.fhir import jsonio
from dhr.loader import outcome_text


class DemoLoadError(RuntimeError):
    """A demo resource was refused: a bug in the demo data or in the server."""


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def _sync(services: Services, principal: Principal, resource: dict[str, Any]) -> str:
    """Make the stored resource equal the demo one: ``created``, ``updated`` or ``unchanged``."""
    path = f"{resource['resourceType']}/{resource['id']}"
    current = handle(services, FhirRequest("GET", path), principal)
    stored = _without_meta(current.body_json() or {})
    if current.status == 200 and jsonio.canonical(stored) == jsonio.canonical(resource):
        return "unchanged"
    headers = {"content-type": FHIR_JSON, "prefer": "return=minimal"}
    request = FhirRequest("PUT", path, headers=headers, parsed_body=resource)
    response = handle(services, request, principal)
    if response.status >= 300:
        raise DemoLoadError(f"PUT {path}: {response.status} {outcome_text(response.body_json())}")
    return "created" if response.status == 201 else "updated"


def load_demo(settings: Settings, engine: Engine) -> str:
    """Load the demo set (idempotently) and return the start-up text that describes it."""
    from dhr.store import db

    if db.is_empty(engine):
        db.upgrade(engine)
    services = Services(settings, engine)
    resources = demo_resources()
    # The demo loads through the enforced API, like `dhr load`, as the Orchard practice's record
    principal = cli_principal(organisation=ORCHARD_ODS)
    outcomes = Counter(_sync(services, principal, dict(r)) for r in resources)
    per_type = Counter(str(r["resourceType"]) for r in resources)
    base = settings.fhir_base
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    done = ", ".join(f"{n} {k}" for k, n in outcomes.items())
    lines = [
        f"Demo data: {len(resources)} resources ({done}):",
        "  " + ", ".join(f"{n} {t}" for t, n in per_type.items()),
        "  Patients: "
        + "; ".join(
            f"{p['name'][0]['given'][0]} {p['name'][0]['family']} "
            f"(NHS {p['identifier'][0]['value']}, Patient/{p['id']})"
            for p in patients
        ),
        f"  CapabilityStatement (open): curl {base}/metadata",
    ]
    seed_unified_record(services, lines)  # two simulated GP systems, as registered sources
    return "\n".join(lines)
