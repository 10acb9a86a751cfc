"""A simplified formula decides exactly as the formula it came from, and is no larger.

:mod:`consent.simplify` shrinks the formulas :func:`consent.compile.policy` writes (each atom
occurrence is one more subquery per row in every search). Property: for any formula over a pool
of atoms and any assignment of those atoms, the simplified formula has the same truth value; its
size never grows. Examples: the clinician's formula without Consents shrinks to its meaning.
"""

from __future__ import annotations

from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from consent.compile import policy
from consent.formula import (
    FALSE,
    TRUE,
    All,
    AnyOf,
    Atom,
    ControllerIn,
    ControllerOutside,
    Formula,
    GlassBroken,
    LabelIn,
    Not,
    OptedOut,
    Related,
    TypeIn,
    all_of,
    any_of,
    evaluate,
    negate,
)
from consent.model import Arrangement, Label, Requester
from consent.simplify import atoms_of, simplify, size

POOL: list[Atom] = [
    Related(),
    GlassBroken(),
    OptedOut(),
    ControllerIn(frozenset({"A81001"})),
    ControllerOutside(frozenset()),
    LabelIn(frozenset({Label("http://terminology.hl7.org/CodeSystem/v3-ActCode", "MH")})),
    TypeIn(frozenset({"Observation"})),
]


def formulas() -> st.SearchStrategy[Formula]:
    leaves = st.sampled_from(POOL) | st.sampled_from([TRUE, FALSE])
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=4).map(lambda ps: All(tuple(ps))),
            st.lists(inner, min_size=2, max_size=4).map(lambda ps: AnyOf(tuple(ps))),
            inner.map(Not),
        ),
        max_leaves=14,
    )


@settings(max_examples=300, deadline=None)
@given(formulas())
def test_a_simplified_formula_agrees_with_the_original_on_every_assignment(
    formula: Formula,
) -> None:
    smaller = simplify(formula)
    assert size(smaller) <= size(formula)
    assert set(atoms_of(smaller)) <= set(atoms_of(formula))
    for bits in product([False, True], repeat=len(POOL)):
        values = dict(zip(POOL, bits, strict=True))
        assert evaluate(smaller, values.__getitem__) == evaluate(formula, values.__getitem__), (
            formula,
            smaller,
            values,
        )


def test_the_clinicians_formula_without_consents_shrinks_to_its_meaning() -> None:
    own = ControllerIn(frozenset({"A81001"}))
    clinician = Requester("dr", ("R8000",), "A81001", purpose="TREAT")
    arrangement = Arrangement("X24", {}, frozenset({"TREAT"}))
    formula = policy(clinician, arrangement, "2026-11-26")
    sensitive = next(a for a in atoms_of(formula) if isinstance(a, LabelIn))
    assert formula == any_of([GlassBroken(), all_of([Related(), negate(sensitive)]), own])
    assert size(formula) == 4  # the literal restatement of the rule has 10


def test_a_tautology_and_a_contradiction_become_constants() -> None:
    assert simplify(any_of([Related(), negate(Related())])) == TRUE
    assert simplify(All((Related(), Not(Related())))) == FALSE


def test_a_formula_over_too_many_atoms_is_left_as_it_is() -> None:
    many = any_of(TypeIn(frozenset({f"T{i}"})) for i in range(12))
    assert simplify(many, max_atoms=10) == many
