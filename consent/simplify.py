"""Smaller formulas for the same decision: fewer conditions for the database to plan and run.

:func:`consent.compile.policy` restates the combining rule of :mod:`consent.pdp` literally, so
its formula repeats atoms (the relationship, the requester's own controller code, the sensitive
labels) across the deny and permit sides. Each repetition becomes one more correlated subquery
in every search (``dhr.access.policy_sql``), which PostgreSQL plans and runs per row. For a
clinician without Consents the literal formula has ten atom occurrences; it means
``GlassBroken or ControllerIn(own) or (Related and not LabelIn(sensitive))``, which has four.

:func:`simplify` finds that form by treating the distinct atoms as independent variables: the
truth table of the formula over them, its prime implicants (Quine-McCluskey, W. V. Quine,
"A way to simplify truth functions", 1955), a cover of the true rows (essential implicants
first, then greedily), and common literals factored out of the resulting sum of products. The
result agrees with the input for every assignment of the atoms, hence for every data item and
patient (atoms that are not independent, like ``ControllerIn`` and ``ControllerOutside``, only
rule out some assignments). The smaller of the two is returned; a formula with more than
``max_atoms`` distinct atoms is returned as it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from consent.formula import (
    FALSE,
    TRUE,
    All,
    AnyOf,
    Atom,
    Const,
    Formula,
    Not,
    all_of,
    any_of,
    evaluate,
    negate,
)

MAX_ATOMS = 10

# An implicant: (bits, care) over the atoms' positions; a position outside ``care`` is free.
Implicant = tuple[int, int]
# A literal: (atom position, wanted value).
Literal = tuple[int, bool]


def atoms_of(formula: Formula) -> list[Atom]:
    """The distinct atoms of ``formula``, in order of first appearance."""
    found: dict[Atom, None] = {}

    def walk(part: Formula) -> None:
        match part:
            case Const():
                return
            case All(parts) | AnyOf(parts):
                for p in parts:
                    walk(p)
            case Not(inner):
                walk(inner)
            case _:
                found.setdefault(part, None)

    walk(formula)
    return list(found)


def size(formula: Formula) -> int:
    """How many atom occurrences ``formula`` has (each one a condition in SQL)."""
    match formula:
        case Const():
            return 0
        case All(parts) | AnyOf(parts):
            return sum(size(p) for p in parts)
        case Not(inner):
            return size(inner)
    return 1


def _values(index: dict[Atom, int], row: int) -> Callable[[Atom], bool]:
    """The atoms' values in truth-table row ``row`` (atom ``i`` is bit ``i``)."""
    return lambda atom: bool(row >> index[atom] & 1)


def _primes(minterms: Iterable[int], width: int) -> set[Implicant]:
    full = (1 << width) - 1
    current = {(m, full) for m in minterms}
    primes: set[Implicant] = set()
    while current:
        merged: set[Implicant] = set()
        used: set[Implicant] = set()
        by_care: dict[int, list[Implicant]] = {}
        for imp in current:
            by_care.setdefault(imp[1], []).append(imp)
        for care, group in by_care.items():
            present = {bits for bits, _ in group}
            for bits, _ in group:
                for pos in range(width):
                    flag = 1 << pos
                    if care & flag and not bits & flag and bits | flag in present:
                        merged.add((bits, care & ~flag))
                        used.add((bits, care))
                        used.add((bits | flag, care))
        primes |= current - used
        current = merged
    return primes


def _covers(imp: Implicant, minterm: int) -> bool:
    bits, care = imp
    return minterm & care == bits


def _cover(primes: set[Implicant], minterms: list[int]) -> list[Implicant]:
    """Essential prime implicants first, then the one covering most of what is left."""
    left = set(minterms)
    chosen: list[Implicant] = []
    for m in minterms:
        covering = [p for p in primes if _covers(p, m)]
        if len(covering) == 1 and covering[0] not in chosen:
            chosen.append(covering[0])
    for p in chosen:
        left -= {m for m in left if _covers(p, m)}
    ordered = sorted(primes, key=lambda p: (-bin(p[1]).count("0"), p))
    while left:
        best = max(ordered, key=lambda p: sum(1 for m in left if _covers(p, m)))
        chosen.append(best)
        left -= {m for m in left if _covers(best, m)}
    return chosen


def _literals(imp: Implicant, width: int) -> frozenset[Literal]:
    bits, care = imp
    return frozenset((pos, bool(bits >> pos & 1)) for pos in range(width) if care >> pos & 1)


def _factor(terms: list[frozenset[Literal]], atoms: list[Atom]) -> Formula:
    """A sum of products with literals shared by several products taken out once."""

    def lit(literal: Literal) -> Formula:
        pos, wanted = literal
        return atoms[pos] if wanted else negate(atoms[pos])

    if any(not t for t in terms):
        return TRUE
    counts = Counter(literal for t in terms for literal in t)
    if not counts:
        return FALSE
    common, seen = counts.most_common(1)[0]
    if seen < 2:
        return any_of(all_of(lit(x) for x in sorted(t)) for t in terms)
    with_it = [t - {common} for t in terms if common in t]
    without = [t for t in terms if common not in t]
    factored = all_of([lit(common), _factor(with_it, atoms)])
    return any_of([factored, _factor(without, atoms)]) if without else factored


def simplify(formula: Formula, max_atoms: int = MAX_ATOMS) -> Formula:
    """A formula equal to ``formula`` for every data item and patient, usually smaller."""
    atoms = atoms_of(formula)
    width = len(atoms)
    if width == 0 or width > max_atoms:
        return formula
    index = {atom: pos for pos, atom in enumerate(atoms)}
    minterms = [row for row in range(1 << width) if evaluate(formula, _values(index, row))]
    if not minterms:
        return FALSE
    if len(minterms) == 1 << width:
        return TRUE
    chosen = _cover(_primes(minterms, width), minterms)
    smaller = _factor([_literals(p, width) for p in chosen], atoms)
    return smaller if size(smaller) < size(formula) else formula
