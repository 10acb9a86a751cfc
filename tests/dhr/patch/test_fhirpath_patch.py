"""FHIRPath Patch: operations carried in a Parameters resource.

https://hl7.org/fhir/R4/fhirpatch.html. Malformed Parameters are 400s; operations that cannot
apply to the resource are 422s.
"""

from __future__ import annotations

from typing import Any

import pytest

from dhr.errors import FhirError
from dhr.patch.fhirpath_patch import apply


def op(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    """One ``operation`` parameter; keyword arguments are parts (``value``: a value[x] dict)."""
    out: list[dict[str, Any]] = [
        {"name": "type", "valueCode": kind},
        {"name": "path", "valueString": path},
    ]
    for name, value in parts.items():
        if name in ("index", "source", "destination"):
            out.append({"name": name, "valueInteger": value})
        elif name == "name":
            out.append({"name": "name", "valueString": value})
        else:
            out.append({"name": "value", **value})
    return {"name": "operation", "part": out}


def params(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p", **extra}


def _fails(resource: dict[str, Any], parameters: dict[str, Any], status: int) -> FhirError:
    with pytest.raises(FhirError) as caught:
        apply(resource, parameters)
    assert caught.value.status == status, caught.value
    return caught.value


IDS = [{"value": "a"}, {"value": "b"}, {"value": "c"}]


def test_add_appends_to_a_repeating_element_and_creates_the_list() -> None:
    result = apply(
        patient(),
        params(
            op("add", "Patient", name="identifier", value={"valueIdentifier": {"value": "a"}}),
            op("add", "Patient", name="identifier", value={"valueIdentifier": {"value": "b"}}),
            op("add", "Patient", name="active", value={"valueBoolean": True}),
        ),
    )
    assert result == patient(identifier=[{"value": "a"}, {"value": "b"}], active=True)


def test_add_to_a_set_non_repeating_element_is_422() -> None:
    _fails(
        patient(active=True),
        params(op("add", "Patient", name="active", value={"valueBoolean": False})),
        422,
    )


def test_add_names_a_choice_element_by_its_base_name() -> None:
    result = apply(
        patient(), params(op("add", "Patient", name="deceased", value={"valueBoolean": True}))
    )
    assert result == patient(deceasedBoolean=True)


def test_add_builds_anonymous_types_from_parts_with_list_cardinality() -> None:
    value = {
        "part": [
            {"name": "name", "valueHumanName": {"family": "Doe"}},
            {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "1"}},
            {"name": "relationship", "valueCodeableConcept": {"text": "friend"}},
        ]
    }
    result = apply(patient(), params(op("add", "Patient", name="contact", value=value)))
    assert result["contact"] == [
        {
            "name": {"family": "Doe"},
            "telecom": [{"system": "phone", "value": "1"}],
            "relationship": [{"text": "friend"}],
        }
    ]


def test_add_on_a_path_that_finds_nothing_or_a_primitive_is_422() -> None:
    _fails(
        patient(),
        params(op("add", "Patient.contact[0]", name="gender", value={"valueCode": "male"})),
        422,
    )
    _fails(
        patient(active=True),
        params(op("add", "Patient.active", name="id", value={"valueString": "x"})),
        422,
    )


def test_insert_at_an_index_and_refuse_out_of_range() -> None:
    result = apply(
        patient(identifier=IDS[:2]),
        params(
            op("insert", "Patient.identifier", index=1, value={"valueIdentifier": {"value": "x"}})
        ),
    )
    assert [i["value"] for i in result["identifier"]] == ["a", "x", "b"]
    result = apply(
        patient(),
        params(
            op("insert", "Patient.identifier", index=0, value={"valueIdentifier": {"value": "x"}})
        ),
    )
    assert result["identifier"] == [{"value": "x"}]
    _fails(
        patient(identifier=IDS[:2]),
        params(op("insert", "Patient.identifier", index=3, value={"valueIdentifier": {}})),
        422,
    )
    _fails(
        patient(), params(op("insert", "Patient.gender", index=0, value={"valueCode": "male"})), 422
    )
    _fails(
        patient(identifier=IDS),
        params(op("insert", "Patient.identifier[0]", index=0, value={"valueIdentifier": {}})),
        422,
    )


def test_delete_removes_one_element_and_ignores_a_missing_one() -> None:
    result = apply(
        patient(identifier=IDS, gender="male"),
        params(
            op("delete", "Patient.identifier[1]"),
            op("delete", "Patient.gender"),
            op("delete", "Patient.birthDate"),
        ),
    )
    assert result == patient(identifier=[IDS[0], IDS[2]])
    assert (
        apply(patient(identifier=[IDS[0]]), params(op("delete", "Patient.identifier[0]")))
        == patient()
    )
    _fails(patient(identifier=IDS), params(op("delete", "Patient.identifier")), 422)
    _fails(patient(), params(op("delete", "Patient")), 422)


def test_delete_and_move_keep_primitive_extensions_aligned() -> None:
    ext = {"extension": [{"url": "http://example.org/x", "valueString": "e"}]}
    name = {"given": ["a", "b", "c"], "_given": [None, ext, None]}
    moved = apply(
        patient(name=[name]), params(op("move", "Patient.name[0].given", source=1, destination=0))
    )
    assert moved["name"][0] == {"given": ["b", "a", "c"], "_given": [ext, None, None]}
    deleted = apply(patient(name=[name]), params(op("delete", "Patient.name[0].given[1]")))
    assert deleted["name"][0] == {"given": ["a", "c"]}
    gone = apply(
        patient(birthDate="2000-01-01", _birthDate=ext), params(op("delete", "Patient.birthDate"))
    )
    assert gone == patient()


def test_replace_a_primitive_a_complex_value_and_a_choice() -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": 1},
    }
    result = apply(
        obs,
        params(
            op("replace", "Observation.value", value={"valueQuantity": {"value": 2}}),
            op("replace", "Observation.status", value={"valueCode": "amended"}),
        ),
    )
    assert result["valueQuantity"] == {"value": 2}
    assert result["status"] == "amended"
    _fails(obs, params(op("replace", "Observation.subject", value={"valueReference": {}})), 422)


def test_where_selects_elements_with_any_fhirpath_criteria() -> None:
    ids = [{"use": "usual", "value": "a"}, {"use": "official", "value": "b"}]
    result = apply(
        patient(identifier=ids),
        params(
            op(
                "replace",
                "Patient.identifier.where(use = 'official' and value.exists()).value",
                value={"valueString": "z"},
            )
        ),
    )
    assert result["identifier"][1]["value"] == "z"
    _fails(
        patient(identifier=ids),
        params(
            op(
                "replace",
                "Patient.identifier.where(use = 'temp').value",
                value={"valueString": "z"},
            )
        ),
        422,
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Patient.identifier.first().value", ["z", "b", "c"]),
        ("Patient.identifier.last().value", ["a", "b", "z"]),
        ("Patient.identifier.skip(1).first().value", ["a", "z", "c"]),
        ("Patient.identifier.tail().take(1).value", ["a", "z", "c"]),
        ("identifier[2].value", ["a", "b", "z"]),
        ("Patient.identifier.where($this.value = 'b').single().value", ["a", "z", "c"]),
    ],
)
def test_path_navigation_functions(path: str, expected: list[str]) -> None:
    result = apply(patient(identifier=IDS), params(op("replace", path, value={"valueString": "z"})))
    assert [i["value"] for i in result["identifier"]] == expected


def test_move_reorders_a_list_and_refuses_bad_indexes() -> None:
    result = apply(
        patient(identifier=IDS), params(op("move", "Patient.identifier", source=2, destination=0))
    )
    assert [i["value"] for i in result["identifier"]] == ["c", "a", "b"]
    _fails(
        patient(identifier=IDS),
        params(op("move", "Patient.identifier", source=3, destination=0)),
        422,
    )
    _fails(
        patient(identifier=IDS),
        params(op("move", "Patient.identifier", source=0, destination=-1)),
        422,
    )


def test_paths_reach_into_contained_resources() -> None:
    org = {"resourceType": "Organization", "id": "o", "name": "Old"}
    result = apply(
        patient(contained=[org]),
        params(
            op(
                "replace",
                "Patient.contained.ofType(Organization).name",
                value={"valueString": "New"},
            )
        ),
    )
    assert result["contained"][0]["name"] == "New"


def test_a_failing_operation_names_its_parameter_and_leaves_the_input_untouched() -> None:
    before = patient(gender="male")
    error = _fails(
        before,
        params(
            op("replace", "Patient.gender", value={"valueCode": "female"}), op("delete", "Patient")
        ),
        422,
    )
    assert error.expression == ("Parameters.parameter[1]",)
    assert before == patient(gender="male")


@pytest.mark.parametrize(
    "parameters",
    [
        {"resourceType": "Patient"},
        {"resourceType": "Parameters", "parameter": [{"name": "op"}]},
        params({"name": "operation"}),
        params({"name": "operation", "part": [{"name": "path", "valueString": "Patient"}]}),
        params(op("upsert", "Patient")),
        params(op("delete", "Patient.name[")),
        params(op("delete", "Patient.name.descendants()")),
        params(op("delete", "Patient.name.where(")),
        params(op("delete", "Patient.name where")),
        params(op("add", "Patient", value={"valueBoolean": True})),
        params(op("replace", "Patient.active")),
        params(op("insert", "Patient.identifier", value={"valueIdentifier": {}})),
        params(op("move", "Patient.identifier", source=0)),
        params(op("replace", "Patient.active", value={"valueBoolean": True, "valueString": "x"})),
        params(op("replace", "Patient.active", value={"part": [{"valueString": "x"}]})),
        params(
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "delete"},
                    {"name": "path", "valueString": "Patient"},
                    {"name": "colour", "valueString": "red"},
                ],
            }
        ),
        params(
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "move"},
                    {"name": "path", "valueString": "Patient.name"},
                    {"name": "source", "valueString": "1"},
                    {"name": "destination", "valueInteger": 0},
                ],
            }
        ),
    ],
)
def test_malformed_patches_are_400(parameters: dict[str, Any]) -> None:
    _fails(patient(name=[{"family": "x"}]), parameters, 400)


def test_an_empty_parameters_changes_nothing() -> None:
    assert apply(patient(gender="male"), {"resourceType": "Parameters"}) == patient(gender="male")


def test_element_names_that_are_fhirpath_operators_are_reachable() -> None:
    text = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">a</div>'}
    new = '<div xmlns="http://www.w3.org/1999/xhtml">b</div>'
    result = apply(
        patient(text=text), params(op("replace", "Patient.text.div", value={"valueString": new}))
    )
    assert result["text"]["div"] == new


def test_a_value_nested_too_deeply_is_400_not_a_crash() -> None:
    deep: Any = {}
    for _ in range(5000):
        deep = {"part": [{"name": "x", **deep}]} if deep else {"valueString": "x"}
    error = _fails(patient(), params(op("add", "Patient", name="contact", value=deep)), 400)
    assert error.message_code == "json-too-deep"


def test_replace_may_change_the_type_of_a_choice_element() -> None:
    obs = {"resourceType": "Observation", "valueQuantity": {"value": 1}}
    result = apply(obs, params(op("replace", "Observation.value", value={"valueString": "high"})))
    assert result == {"resourceType": "Observation", "valueString": "high"}
