"""The formula language of the compiled decision (consent.formula): the constructors fold
constants and flatten, and ``holds`` reads each atom as its docstring says."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consent.formula import (
    FALSE,
    TRUE,
    All,
    AnyOf,
    CodeIn,
    ControllerIn,
    ControllerOutside,
    DateIn,
    Formula,
    GlassBroken,
    IdIn,
    LabelIn,
    Not,
    OptedOut,
    PatientFacts,
    PatientIs,
    Related,
    TypeIn,
    all_of,
    any_of,
    assume,
    holds,
    negate,
)
from consent.model import DataItem, Label, Period

MH = Label("http://terminology.hl7.org/CodeSystem/v3-ActCode", "MH")
A, B, C = TypeIn(frozenset({"Observation"})), Related(), OptedOut()
OBS = DataItem(
    "Observation",
    "p1",
    labels=frozenset({MH}),
    controllers=("A81001", "X24"),
    date="2024-01-01T09:30:00Z",
    res_id="o1",
    codes=frozenset({"http://loinc.org|1"}),
)
NOTHING_KNOWN = PatientFacts()

# --- constructors ------------------------------------------------------------------------------


def test_all_of_nothing_is_true_and_any_of_nothing_is_false() -> None:
    assert all_of([]) == TRUE
    assert any_of([]) == FALSE


def test_true_drops_out_of_a_conjunction_and_false_decides_it() -> None:
    assert all_of([TRUE, A, TRUE]) == A
    assert all_of([A, FALSE, B]) == FALSE
    assert all_of([TRUE, TRUE]) == TRUE


def test_false_drops_out_of_a_disjunction_and_true_decides_it() -> None:
    assert any_of([FALSE, A, FALSE]) == A
    assert any_of([A, TRUE, B]) == TRUE
    assert any_of([FALSE, FALSE]) == FALSE


def test_nested_conjunctions_and_disjunctions_flatten_and_repeats_go() -> None:
    assert all_of([A, All((B, C)), A]) == All((A, B, C))
    assert any_of([AnyOf((A, B)), C, B]) == AnyOf((A, B, C))


def test_a_disjunction_inside_a_conjunction_stays_whole() -> None:
    assert all_of([A, AnyOf((B, C))]) == All((A, AnyOf((B, C))))
    assert any_of([A, All((B, C))]) == AnyOf((A, All((B, C))))


def test_negate_folds_constants_and_double_negation() -> None:
    assert negate(TRUE) == FALSE
    assert negate(FALSE) == TRUE
    assert negate(A) == Not(A)
    assert negate(negate(A)) == A


# --- holds: each atom --------------------------------------------------------------------------

ATOMS: list[tuple[str, Formula, DataItem, bool]] = [
    ("type matches", TypeIn(frozenset({"Observation", "Condition"})), OBS, True),
    ("type does not", TypeIn(frozenset({"Condition"})), OBS, False),
    ("one of the codes", CodeIn(frozenset({"http://loinc.org|1", "x|2"})), OBS, True),
    ("code system matters", CodeIn(frozenset({"http://snomed.info/sct|1"})), OBS, False),
    ("one of the labels", LabelIn(frozenset({MH})), OBS, True),
    ("no such label", LabelIn(frozenset({Label(MH.system, "HIV")})), OBS, False),
    ("date within, dateTime by its day", DateIn(Period("2024-01-01", "2024-01-01")), OBS, True),
    ("date before the start", DateIn(Period("2024-01-02", None)), OBS, False),
    ("date after the end", DateIn(Period(None, "2023-12-31")), OBS, False),
    ("open period, dated data", DateIn(Period(None, None)), OBS, True),
    ("undated data is in no period", DateIn(Period(None, None)), replace(OBS, date=None), False),
    ("the data is one of the refs", IdIn(frozenset({"Observation/o1"})), OBS, True),
    ("the id alone is not enough", IdIn(frozenset({"Condition/o1"})), OBS, False),
    ("a controller is listed", ControllerIn(frozenset({"X24"})), OBS, True),
    ("no controller is listed", ControllerIn(frozenset({"RRK"})), OBS, False),
    ("no codes: never in", ControllerIn(frozenset()), OBS, False),
    ("a controller outside", ControllerOutside(frozenset({"X24"})), OBS, True),
    ("every controller inside", ControllerOutside(frozenset({"X24", "A81001"})), OBS, False),
    ("outside nothing: has a controller", ControllerOutside(frozenset()), OBS, True),
    (
        "outside nothing: no controller, no",
        ControllerOutside(frozenset()),
        replace(OBS, controllers=()),
        False,
    ),
    ("the patient's own data", PatientIs("p1"), OBS, True),
    ("another patient's", PatientIs("p2"), OBS, False),
    ("TRUE", TRUE, OBS, True),
    ("FALSE", FALSE, OBS, False),
]


@pytest.mark.parametrize(
    ("formula", "item", "expected"),
    [pytest.param(f, i, e, id=name) for name, f, i, e in ATOMS],
)
def test_holds_reads_each_data_atom(formula: Formula, item: DataItem, expected: bool) -> None:
    assert holds(formula, item, NOTHING_KNOWN) is expected


@pytest.mark.parametrize(
    ("atom", "facts"),
    [
        (Related(), PatientFacts(related=True)),
        (OptedOut(), PatientFacts(opted_out=True)),
        (GlassBroken(), PatientFacts(glass_broken=True)),
    ],
)
def test_the_patient_atoms_are_the_patient_facts(atom: Formula, facts: PatientFacts) -> None:
    assert holds(atom, OBS, facts)
    assert not holds(atom, OBS, NOTHING_KNOWN)


def test_connectives_combine_as_and_or_not() -> None:
    related = PatientFacts(related=True)
    assert holds(All((A, B)), OBS, related)
    assert not holds(All((A, B)), OBS, NOTHING_KNOWN)
    assert holds(AnyOf((C, B)), OBS, related)
    assert not holds(AnyOf((C, B)), OBS, NOTHING_KNOWN)
    assert holds(Not(C), OBS, NOTHING_KNOWN)
    assert holds(All(()), OBS, NOTHING_KNOWN)
    assert not holds(AnyOf(()), OBS, NOTHING_KNOWN)


def test_anything_else_is_not_a_formula() -> None:
    with pytest.raises(TypeError, match="not a formula"):
        holds("Observation", OBS, NOTHING_KNOWN)  # type: ignore[arg-type]


def test_assume_replaces_the_atoms_it_knows_and_folds_the_rest() -> None:
    """``assume`` says what a formula means when some atoms are known: a clinician's decision
    with no care relationship and no break-glass leaves only its own controller's data."""
    own = ControllerIn(frozenset({"A1"}))
    decision = any_of([GlassBroken(), own, all_of([Related(), negate(LabelIn(frozenset({MH})))])])

    def unrelated(atom: object) -> bool | None:
        return False if isinstance(atom, Related | GlassBroken) else None

    assert assume(decision, unrelated) == own
    assert assume(decision, lambda atom: True if isinstance(atom, GlassBroken) else None) == TRUE
    assert assume(negate(Related()), unrelated) == TRUE
    assert assume(all_of([A, C]), unrelated) == all_of([A, C])
