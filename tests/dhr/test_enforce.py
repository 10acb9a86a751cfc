"""The enforcement point as a truth table: SMART scope x FHIR interaction -> 2xx or 403.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html),
"Scopes for requesting clinical data": ``c`` type-level create; ``r`` read, vread and
instance-level history; ``u`` update (including an update that creates) and patch; ``d``
delete; ``s`` type-level search and history. Conditional interactions also need ``s`` for their
criteria. v1 ``read`` means ``rs``, ``write`` means ``cud`` and ``*`` means ``cruds``. Every row
runs over real HTTP with a real token minted by the server for that one scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import LiveServer
from tests.helpers import TokenIssuer, bearer, created_id, patient

JSON_PATCH = {"content-type": "application/json-patch+json"}


@dataclass(frozen=True)
class Interaction:
    name: str
    needs: frozenset[str]
    run: Callable[[httpx.Client, str, str], httpx.Response]  # (http, patient id, family)


def _body(pid: str | None, family: str) -> dict[str, object]:
    extra: dict[str, object] = {"name": [{"family": family}]}
    if pid is not None:
        extra["id"] = pid
    return patient(**extra)


INTERACTIONS = [
    Interaction("read", frozenset("r"), lambda h, p, f: h.get(f"Patient/{p}")),
    Interaction("vread", frozenset("r"), lambda h, p, f: h.get(f"Patient/{p}/_history/1")),
    Interaction("history-instance", frozenset("r"), lambda h, p, f: h.get(f"Patient/{p}/_history")),
    Interaction("everything", frozenset("r"), lambda h, p, f: h.get(f"Patient/{p}/$everything")),
    Interaction("search", frozenset("s"), lambda h, p, f: h.get("Patient", params={"family": f})),
    Interaction(
        "search-post",
        frozenset("s"),
        lambda h, p, f: h.post(
            "Patient/_search",
            content=f"family={f}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
    ),
    Interaction("history-type", frozenset("s"), lambda h, p, f: h.get("Patient/_history")),
    Interaction("create", frozenset("c"), lambda h, p, f: h.post("Patient", json=_body(None, f))),
    Interaction(
        "create-conditional",
        frozenset("cs"),
        lambda h, p, f: h.post(
            "Patient", json=_body(None, f), headers={"if-none-exist": f"family={f}-new"}
        ),
    ),
    Interaction("update", frozenset("u"), lambda h, p, f: h.put(f"Patient/{p}", json=_body(p, f))),
    Interaction(
        "update-as-create",
        frozenset("u"),
        lambda h, p, f: h.put(f"Patient/{p}-new", json=_body(f"{p}-new", f)),
    ),
    Interaction(
        "update-conditional",
        frozenset("us"),
        lambda h, p, f: h.put("Patient", params={"family": f}, json=_body(p, f)),
    ),
    Interaction(
        "patch",
        frozenset("u"),
        lambda h, p, f: h.patch(
            f"Patient/{p}",
            json=[{"op": "replace", "path": "/gender", "value": "male"}],
            headers=JSON_PATCH,
        ),
    ),
    Interaction("delete", frozenset("d"), lambda h, p, f: h.delete(f"Patient/{p}")),
    Interaction(
        "delete-conditional",
        frozenset("ds"),
        lambda h, p, f: h.delete("Patient", params={"family": f}),
    ),
]

# scope -> the letters it grants on Patient
SCOPES = {
    "system/Patient.c": "c",
    "system/Patient.r": "r",
    "system/Patient.u": "u",
    "system/Patient.d": "d",
    "system/Patient.s": "s",
    "system/Patient.rs": "rs",
    "system/Patient.cud": "cud",
    "system/Patient.cruds": "cruds",
    "user/Patient.cruds": "cruds",
    "system/Observation.cruds": "",
    "system/*.read": "rs",
    "system/*.write": "cud",
    "system/*.*": "cruds",
    "user/*.rs": "rs",
}


@pytest.mark.parametrize("scope", list(SCOPES))
def test_each_interaction_is_allowed_exactly_by_its_scope_letters(
    scope: str, server: LiveServer, client: httpx.Client, issue_token: TokenIssuer
) -> None:
    granted = frozenset(SCOPES[scope])
    token = issue_token(scope, subject="truth-table")
    expected: dict[str, str] = {}
    actual: dict[str, str] = {}
    with httpx.Client(base_url=server.base + "/", timeout=30, headers=bearer(token)) as http:
        for interaction in INTERACTIONS:
            family = f"T{uuid.uuid4().hex[:10]}"
            pid = created_id(client.post("Patient", json=_body(None, family)))
            response = interaction.run(http, pid, family)
            expected[interaction.name] = "ok" if interaction.needs <= granted else "403"
            if response.status_code in (200, 201):
                actual[interaction.name] = "ok"
            elif response.status_code == 403:
                assert response.json()["issue"][0]["code"] == "forbidden"
                actual[interaction.name] = "403"
            else:
                actual[interaction.name] = f"{response.status_code}: {response.text[:200]}"
    assert actual == expected


def test_a_token_with_no_resource_scope_may_do_nothing(
    server: LiveServer, client: httpx.Client, issue_token: TokenIssuer
) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    token = issue_token("openid fhirUser")
    with httpx.Client(base_url=server.base + "/", timeout=30, headers=bearer(token)) as http:
        assert http.get(f"Patient/{pid}").status_code == 403
        assert http.get("Patient").status_code == 403
        assert http.get("_history").status_code == 403
        assert http.post("Patient", json=patient()).status_code == 403
        # The CapabilityStatement stays public.
        assert http.get("metadata").status_code == 200
