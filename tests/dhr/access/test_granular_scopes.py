"""SMART v2 granular scopes: "Finer-grained resource constraints using search parameters".

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html: the scope
``patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory``
allows laboratory Observations only. Searches AND the restriction into the SQL (totals stay
true); several granular scopes for one type are OR-ed; a read must satisfy one of them (else
404, like a resource the token cannot see); writes must satisfy them too (else 403).
"""

from __future__ import annotations

import httpx

from tests.dhr.access.conftest import LAB, VITALS, Connect, World, ids_of, observation
from tests.helpers import assert_outcome

LAB_SCOPE = f"patient/Observation.rs?category={LAB}"
VITALS_SCOPE = f"patient/Observation.rs?category={VITALS}"


def test_a_category_scope_limits_search_and_read(world: World, connect: Connect) -> None:
    alice = connect(LAB_SCOPE, patient=world.alice)
    bundle = alice.get("Observation").json()
    assert bundle["total"] == 1
    assert ids_of(bundle) == {f"Observation/{world.alice_lab}"}
    assert alice.get(f"Observation/{world.alice_lab}").status_code == 200
    assert_outcome(alice.get(f"Observation/{world.alice_vitals}"), 404)
    assert_outcome(alice.get(f"Observation/{world.bob_lab}"), 404)
    # The restriction is ANDed with the query, never replaced by it.
    asked = alice.get("Observation", params={"category": VITALS}).json()
    assert asked["total"] == 0
    # Other types are not granted at all.
    assert_outcome(alice.get(f"Patient/{world.alice}"), 403, code="forbidden")


def test_two_granular_scopes_for_one_type_are_ored(world: World, connect: Connect) -> None:
    alice = connect(f"{LAB_SCOPE} {VITALS_SCOPE}", patient=world.alice)
    bundle = alice.get("Observation", params={"_count": "1"}).json()
    assert bundle["total"] == 2
    assert alice.get(f"Observation/{world.alice_vitals}").status_code == 200
    assert alice.get(f"Observation/{world.alice_lab}").status_code == 200
    assert_outcome(alice.get(f"Observation/{world.bob_vitals}"), 404)
    # A code-only value matches any system, as in a search.
    plain = connect("user/Observation.rs?category=laboratory")
    assert ids_of(plain.get("Observation").json()) == {
        f"Observation/{world.alice_lab}",
        f"Observation/{world.bob_lab}",
    }


def test_a_restriction_the_matcher_leaves_to_sql_still_decides_reads(
    world: World, connect: Connect, client: httpx.Client
) -> None:
    old = observation(f"Patient/{world.alice}", "laboratory", effectiveDateTime="2010-01-01")
    old.pop("performer")
    old_id = client.post("Observation", json=old).headers["location"].split("/")[-3]
    recent = connect("user/Observation.rs?date=ge2020-01-01")
    assert recent.get(f"Observation/{world.alice_lab}").status_code == 200
    assert_outcome(recent.get(f"Observation/{old_id}"), 404)
    assert recent.get("Observation").json()["total"] == 4


def test_granular_write_scopes_check_the_content(world: World, connect: Connect) -> None:
    alice = connect(f"patient/Observation.c?category={LAB}", patient=world.alice)
    lab = observation(f"Patient/{world.alice}", "laboratory")
    lab.pop("performer")
    assert alice.post("Observation", json=lab).status_code == 201
    vitals = observation(f"Patient/{world.alice}", "vital-signs")
    vitals.pop("performer")
    assert_outcome(alice.post("Observation", json=vitals), 403, code="forbidden")


def test_a_granular_parameter_the_type_lacks_grants_nothing(world: World, connect: Connect) -> None:
    odd = connect("user/Observation.rs?no-such-param=1")
    assert_outcome(odd.get("Observation"), 403, code="forbidden")
    assert_outcome(odd.get(f"Observation/{world.alice_lab}"), 403, code="forbidden")
