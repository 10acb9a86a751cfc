"""Decision time for ``bench/consent.py``: the consent policy of one request, and one decision.

* :func:`dhr.access.policy.request_policy`, as every request that touches patient data pays it:
  kept compiled (one query reads the Consent and arrangement generations) and cold (the process
  caches emptied, as after a Consent or arrangement write: the arrangement, every active Consent
  and the patient-fact subqueries are read and compiled again);
* one search request with those caches cold, next to the same request warm;
* :func:`consent.pdp.decide` for one data item (ARCHITECTURE.md "The policy layer"), without a
  Consent, and with a Consent denying the requester's organisation and an MH label.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from consent_data import ACT_CODE, deny_org

from consent.model import DataItem, Facts, Label
from consent.pdp import decide
from consent.provisions import parse_consent
from dhr.access import policy as access_policy
from dhr.access.policy import arrangement_of, request_policy, requester_of
from dhr.api.dispatch import Services, handle
from dhr.api.message import FhirRequest
from dhr.auth.model import Principal
from dhr.fhir.instant import now_micros
from dhr.store import policy_store


def median_seconds(func: Callable[[], object], n: int) -> float:
    times: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def forget_compiled() -> None:
    """Empty the process caches a Consent or arrangement write invalidates."""
    access_policy._COMPILED.clear()
    policy_store._CACHE.clear()


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def decision_rows(services: Services, who: Principal, url: str) -> list[tuple[str, ...]]:
    settings = services.settings
    base, national = settings.fhir_base, settings.national_controller_ods
    implicit = settings.consent_implicit
    rows: list[tuple[str, ...]] = []
    with services.engine.connect() as conn:

        def policy() -> object:
            return request_policy(conn, who, base, national, now_micros(), True, implicit)

        policy()
        rows.append(("request_policy, kept compiled", us(median_seconds(policy, 200)), "request"))

        def cold() -> object:
            forget_compiled()
            return policy()

        rows.append(
            (
                "request_policy, cold (after a Consent write)",
                us(median_seconds(cold, 20)),
                "request",
            )
        )
        arrangement = arrangement_of(conn, national)
    get = FhirRequest.from_url("GET", url)
    warm = median_seconds(lambda: handle(services, get, who), 20)

    def cold_request() -> object:
        forget_compiled()
        return handle(services, get, who)

    rows.append((f"GET {url.split('?', maxsplit=1)[0]}?..., warm", us(warm), "request"))
    rows.append(
        (
            f"GET {url.split('?', maxsplit=1)[0]}?..., caches cold",
            us(median_seconds(cold_request, 10)),
            "request",
        )
    )
    requester = requester_of(who)
    controllers = tuple(dict.fromkeys(("R0BEN", national)))
    facts = Facts(
        relationship="registered",
        controller_purposes={ods: arrangement.purposes_of(ods) for ods in controllers},
        today="2026-01-01",
        national=national,
    )
    item = DataItem("Observation", "p1", frozenset(), controllers, "2020-01-01", None, "o1")
    rows.append(
        (
            "consent.pdp.decide, no Consent",
            us(median_seconds(lambda: decide(requester, item, facts), 5000)),
            "item",
        )
    )
    body = {
        "resourceType": "Consent",
        "id": "c1",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "provision": deny_org(requester.organisation or ""),
    }
    parsed = parse_consent(body)
    assert parsed is not None
    denied = Facts(**{**facts.__dict__, "consents": (parsed,)})
    labelled = DataItem(
        "Observation",
        "p1",
        frozenset({Label(ACT_CODE, "MH")}),
        controllers,
        "2020-01-01",
        None,
        "o1",
    )
    verdict = decide(requester, labelled, denied).effect
    rows.append(
        (
            f"consent.pdp.decide, deny Consent + MH ({verdict})",
            us(median_seconds(lambda: decide(requester, labelled, denied), 5000)),
            "item",
        )
    )
    return rows
