"""JSON Patch (RFC 6902) over JSON Pointer (RFC 6901), as the FHIR patch interaction uses it.

https://hl7.org/fhir/R4/http.html#patch, https://www.rfc-editor.org/rfc/rfc6902,
https://www.rfc-editor.org/rfc/rfc6901. Malformed patches are 400s; patches that cannot apply to
the document are 422s.
"""

from __future__ import annotations

from typing import Any

import pytest

from dhr.errors import FhirError
from dhr.patch.jsonpatch import apply, json_equal, parse_pointer


def _fails(doc: Any, patch: Any, status: int, code: str | None = None) -> FhirError:
    with pytest.raises(FhirError) as caught:
        apply(doc, patch)
    assert caught.value.status == status, caught.value
    if code is not None:
        assert caught.value.message_code == code
    return caught.value


def test_pointers_unescape_tilde_one_before_tilde_zero() -> None:
    assert parse_pointer("") == []
    assert parse_pointer("/") == [""]
    assert parse_pointer("/a~1b/~01/0") == ["a/b", "~1", "0"]


@pytest.mark.parametrize("pointer", ["a/b", "/a~2", "/~", 7])
def test_malformed_pointers_are_400(pointer: object) -> None:
    _fails({}, [{"op": "remove", "path": pointer}], 400, "patch-invalid-pointer")


def test_add_sets_members_inserts_into_arrays_and_appends_with_dash() -> None:
    doc = {"a": [1, 3]}
    patch = [
        {"op": "add", "path": "/a/1", "value": 2},
        {"op": "add", "path": "/a/-", "value": 4},
        {"op": "add", "path": "/a/4", "value": 5},
        {"op": "add", "path": "/b", "value": {"c": None}},
    ]
    assert apply(doc, patch) == {"a": [1, 2, 3, 4, 5], "b": {"c": None}}
    assert doc == {"a": [1, 3]}, "the input is never modified"


def test_add_replaces_an_existing_member_and_the_empty_path_is_the_whole_document() -> None:
    assert apply({"a": 1}, [{"op": "add", "path": "/a", "value": 2}]) == {"a": 2}
    assert apply({"a": 1}, [{"op": "add", "path": "", "value": [1]}]) == [1]


def test_remove_and_replace_need_an_existing_target() -> None:
    assert apply({"a": [1, 2], "b": 1}, [{"op": "remove", "path": "/a/0"}]) == {"a": [2], "b": 1}
    assert apply({"a": 1}, [{"op": "replace", "path": "/a", "value": [1]}]) == {"a": [1]}
    _fails({"a": 1}, [{"op": "remove", "path": "/b"}], 422, "patch-no-target")
    _fails({"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], 422, "patch-no-target")
    _fails({"a": [1]}, [{"op": "remove", "path": "/a/1"}], 422, "patch-index-out-of-range")
    _fails({"a": [1]}, [{"op": "remove", "path": "/a/-"}], 400, "patch-invalid-index")
    _fails({"a": 1}, [{"op": "remove", "path": ""}], 422, "patch-remove-root")


@pytest.mark.parametrize("index", ["01", "-1", "x", "1.0", "\u0661"])
def test_array_indexes_must_be_plain_decimals(index: str) -> None:
    _fails({"a": [1, 2]}, [{"op": "replace", "path": f"/a/{index}", "value": 0}], 400)


def test_add_past_the_end_of_an_array_or_under_a_missing_parent_is_422() -> None:
    _fails({"a": [1]}, [{"op": "add", "path": "/a/2", "value": 0}], 422, "patch-index-out-of-range")
    _fails({"a": 1}, [{"op": "add", "path": "/b/c", "value": 0}], 422, "patch-no-target")
    _fails({"a": 1}, [{"op": "add", "path": "/a/c", "value": 0}], 422, "patch-no-parent")


def test_move_and_copy() -> None:
    doc = {"a": {"x": 1}, "b": [1, 2, 3]}
    patch = [
        {"op": "move", "from": "/a/x", "path": "/y"},
        {"op": "copy", "from": "/b", "path": "/c"},
        {"op": "move", "from": "/b/0", "path": "/b/-"},
        {"op": "move", "from": "/y", "path": "/y"},
    ]
    assert apply(doc, patch) == {"a": {}, "b": [2, 3, 1], "c": [1, 2, 3], "y": 1}
    _fails(doc, [{"op": "move", "from": "/a", "path": "/a/b"}], 400, "patch-move-into-itself")
    _fails(doc, [{"op": "copy", "from": "/nope", "path": "/z"}], 422, "patch-no-target")


def test_copies_are_independent_of_their_source() -> None:
    result = apply(
        {"a": {"b": 1}},
        [
            {"op": "copy", "from": "/a", "path": "/c"},
            {"op": "replace", "path": "/c/b", "value": 2},
        ],
    )
    assert result == {"a": {"b": 1}, "c": {"b": 2}}


def test_test_compares_json_values_strictly() -> None:
    doc = {"n": 1, "t": True, "o": {"a": [1.0, "x"]}}
    ok = [
        {"op": "test", "path": "/n", "value": 1.0},
        {"op": "test", "path": "/o", "value": {"a": [1, "x"]}},
        {"op": "test", "path": "/t", "value": True},
    ]
    assert apply(doc, ok) == doc
    _fails(doc, [{"op": "test", "path": "/t", "value": 1}], 422, "patch-test-failed")
    _fails(doc, [{"op": "test", "path": "/n", "value": "1"}], 422, "patch-test-failed")
    _fails(doc, [{"op": "test", "path": "/missing", "value": 1}], 422, "patch-no-target")
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal([1], [1, 1])


def test_a_failure_part_way_leaves_the_input_untouched() -> None:
    doc = {"a": 1}
    patch = [{"op": "replace", "path": "/a", "value": 2}, {"op": "test", "path": "/a", "value": 3}]
    error = _fails(doc, patch, 422)
    assert "operation 1 (test)" in error.diagnostics
    assert doc == {"a": 1}


@pytest.mark.parametrize(
    "patch",
    [
        {"op": "add", "path": "/a", "value": 1},
        "add",
        [1],
        [{"path": "/a"}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": "/a"}],
        [{"op": "replace", "path": "/a"}],
        [{"op": "test", "path": "/a"}],
        [{"op": "move", "path": "/a"}],
        [{"op": "copy", "path": "/a"}],
    ],
)
def test_malformed_patch_documents_are_400(patch: Any) -> None:
    _fails({"a": 1}, patch, 400)


def test_unknown_members_of_an_operation_are_ignored() -> None:
    assert apply({}, [{"op": "add", "path": "/a", "value": 1, "extra": True}]) == {"a": 1}


def test_a_value_nested_too_deeply_to_copy_is_400_not_a_crash() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    _fails({"a": 1}, [{"op": "add", "path": "/b", "value": deep}], 400, "json-too-deep")
