"""NHS numbers: Modulus 11, and every Patient write refusing an invalid one with a 422.

https://www.datadictionary.nhs.uk/attributes/nhs_number.html (the check digit) and
https://hl7.org/fhir/R4/http.html (create, update, patch, transaction, ``$validate``): a Patient
whose ``https://fhir.nhs.uk/Id/nhs-number`` identifier fails the check is refused with a 422
OperationOutcome naming ``Patient.identifier[i].value``, and nothing is written.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from dhr.errors import FhirError
from dhr.record.nhs_number import (
    check_digit,
    check_nhs_numbers,
    is_valid_nhs_number,
    patient_nhs_number,
)
from dhr.record.vocab import NHS_NUMBER_SYSTEM
from tests.helpers import assert_outcome, created_id, patient

# The first nine digits 900000005 weigh 9*10 + 5*2 = 100; 11 - 100 % 11 = 10: no valid number.
CHECK_DIGIT_TEN = "9000000050"


def random_nhs_number() -> str:
    """A valid NHS number in the 9xx test range, different on every call (almost surely)."""
    while True:
        first = "9" + "".join(random.choices("0123456789", k=8))
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)


def with_nhs(value: Any, **extra: Any) -> dict[str, Any]:
    ident = [{"system": "https://example.org/mrn", "value": "A1"}]
    return patient(identifier=[*ident, {"system": NHS_NUMBER_SYSTEM, "value": value}], **extra)


# -- Modulus 11 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["9434765919", "9000000009", "9000000017", "9449306168", "4010232137"]
)
def test_valid_numbers_pass(value: str) -> None:
    assert is_valid_nhs_number(value)


def test_check_digit_eleven_becomes_zero() -> None:
    # 9*10 + 1*3 + 3*2 = 99, 99 % 11 = 0, 11 - 0 = 11: the check digit is 0.
    assert check_digit("900000013") == 0
    assert is_valid_nhs_number("9000000130")
    assert not is_valid_nhs_number("9000000131")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (CHECK_DIGIT_TEN, "would be 10"),
        ("9434765918", "check digit is 8"),
        ("0000000000", "not an NHS number"),
        ("943 476 5919", "without spaces"),
        ("943-476-5919", "without spaces or dashes"),
        (" 9434765919", "without spaces"),
        ("94347659A9", "only the digits"),
        ("٩٤٣٤٧٦٥٩١٩", "only the digits"),  # Arabic-Indic digits are digits, not ASCII
        ("943476591", "has 9"),
        ("94347659190", "has 11"),
        ("", "has 0"),
    ],
)
def test_invalid_numbers_fail_saying_why(value: str, why: str) -> None:
    assert not is_valid_nhs_number(value)
    with pytest.raises(FhirError) as caught:
        check_nhs_numbers("Patient", with_nhs(value))
    err = caught.value
    assert (err.status, err.code, err.message_code) == (422, "value", "invalid-nhs-number")
    assert err.expression == ("Patient.identifier[1].value",)
    assert why in err.diagnostics
    assert repr(value) in err.diagnostics


def test_random_numbers_are_valid() -> None:
    assert all(is_valid_nhs_number(random_nhs_number()) for _ in range(200))


def test_only_patients_and_only_the_nhs_system_are_checked() -> None:
    check_nhs_numbers("Practitioner", with_nhs("1234567890"))
    check_nhs_numbers("Patient", patient(identifier=[{"system": "urn:x", "value": "1"}]))
    check_nhs_numbers("Patient", patient(identifier=[{"system": NHS_NUMBER_SYSTEM}]))
    check_nhs_numbers("Patient", patient())


def test_patient_nhs_number_is_the_first_nhs_identifier() -> None:
    body = with_nhs("9434765919")
    body["identifier"].append({"system": NHS_NUMBER_SYSTEM, "value": "9000000009"})
    assert patient_nhs_number(body) == "9434765919"
    assert patient_nhs_number(patient()) is None
    assert patient_nhs_number(patient(identifier=[{"system": NHS_NUMBER_SYSTEM}])) is None


# -- every Patient write, over HTTP ------------------------------------------------------------


def _refused(response: httpx.Response, index: int = 1) -> dict[str, Any]:
    body = assert_outcome(
        response, 422, code="value", expression=f"Patient.identifier[{index}].value"
    )
    codes = [c["code"] for i in body["issue"] for c in i.get("details", {}).get("coding", [])]
    assert "invalid-nhs-number" in codes
    return body


def _count(client: httpx.Client, family: str) -> int:
    found = client.get("Patient", params={"family": family, "_total": "accurate"})
    total: int = found.json()["total"]
    return total


def test_create_and_update_refuse_an_invalid_number(client: httpx.Client) -> None:
    family = f"Nhs{random.randrange(10**8)}"
    body = _refused(client.post("Patient", json=with_nhs("9434765918", name=[{"family": family}])))
    assert "9434765918" in body["issue"][0]["diagnostics"]
    _refused(client.put("Patient/nhs-put-new", json=with_nhs("0000000000", id="nhs-put-new")))
    assert client.get("Patient/nhs-put-new").status_code == 404
    assert _count(client, family) == 0

    good = random_nhs_number()
    pid = created_id(client.post("Patient", json=with_nhs(good, name=[{"family": family}])))
    _refused(client.put(f"Patient/{pid}", json=with_nhs("943 476 5919", id=pid)))
    stored = client.get(f"Patient/{pid}").json()
    assert patient_nhs_number(stored) == good
    assert stored["meta"]["versionId"] == "1"


def test_patch_resulting_in_an_invalid_number_is_refused(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=with_nhs(random_nhs_number())))
    ops = [{"op": "replace", "path": "/identifier/1/value", "value": CHECK_DIGIT_TEN}]
    response = client.patch(
        f"Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    _refused(response)
    assert client.get(f"Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_a_transaction_with_an_invalid_number_writes_nothing(client: httpx.Client) -> None:
    family = f"Txn{random.randrange(10**8)}"
    good = with_nhs(random_nhs_number(), name=[{"family": family}])
    bad = with_nhs("9434765918", name=[{"family": family}])
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": good, "request": {"method": "POST", "url": "Patient"}},
            {"resource": bad, "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    response = client.post("", json=bundle)
    assert response.status_code == 422, response.text
    issues = response.json()["issue"]
    assert any("invalid-nhs-number" in str(i.get("details")) for i in issues)
    assert any("9434765918" in i["diagnostics"] for i in issues)
    assert _count(client, family) == 0


def test_a_batch_refuses_only_the_invalid_entry(client: httpx.Client) -> None:
    family = f"Batch{random.randrange(10**8)}"
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": with_nhs(random_nhs_number(), name=[{"family": family}]),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": with_nhs("12345", name=[{"family": family}]),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    response = client.post("", json=bundle)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("201")
    assert statuses[1].startswith("422")
    outcome = response.json()["entry"][1]["response"]["outcome"]
    assert "Patient.identifier[1].value" in outcome["issue"][0]["expression"]
    assert _count(client, family) == 1


def test_validate_reports_an_invalid_number(client: httpx.Client) -> None:
    response = client.post("Patient/$validate", json=with_nhs("9434765918"))
    assert response.status_code == 200
    issue = response.json()["issue"][0]
    assert issue["severity"] == "error"
    assert issue["expression"] == ["Patient.identifier[1].value"]
    ok = client.post("Patient/$validate", json=with_nhs(random_nhs_number()))
    assert {i["severity"] for i in ok.json()["issue"]} == {"information"}
