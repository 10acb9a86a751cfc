"""The resource types this server serves: every type ``fhir.resources.R4B`` models.

https://hl7.org/fhir/R4/resourcelist.html. R4 types that R4B dropped are refused with an
OperationOutcome that says so, rather than a bare "unknown type".
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from fhir.resources import R4B as r4b  # noqa: N811
from fhir.resources.R4B.resource import Resource

from dhr.errors import FhirError

# R4 (4.0.1) resource types that fhir.resources.R4B does not model (R4B removed or replaced them).
DROPPED_IN_R4B: frozenset[str] = frozenset(
    {
        "EffectEvidenceSynthesis",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "RiskEvidenceSynthesis",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
    }
)

_ABSTRACT = frozenset({"Resource", "DomainResource"})


@cache
def resource_types() -> frozenset[str]:
    """Names of all concrete resource types R4B models (computed once)."""
    names: set[str] = set()
    for info in pkgutil.iter_modules(r4b.__path__):
        module = importlib.import_module(f"{r4b.__name__}.{info.name}")
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, Resource)
                and value.__module__ == module.__name__
                and name.lower() == info.name
                and name not in _ABSTRACT
            ):
                names.add(name)
    return frozenset(names)


def model_class(type_name: str) -> type[Resource]:
    """The R4B model for a checked resource type."""
    return _model_class(check_type(type_name))


@cache
def _model_class(type_name: str) -> type[Resource]:
    cls = r4b.get_fhir_model_class(type_name)
    assert issubclass(cls, Resource)
    return cls


def check_type(type_name: str) -> str:
    """Return ``type_name`` if served here, else raise a 404 OperationOutcome saying why."""
    if type_name in resource_types():
        return type_name
    if type_name in DROPPED_IN_R4B:
        raise FhirError(
            404,
            "not-supported",
            f"Resource type {type_name} is an R4 type that FHIR R4B removed; this server "
            "validates with the R4B models and does not store it",
            "type-dropped-in-r4b",
        )
    raise FhirError(
        404,
        "not-supported",
        f"Unknown resource type {type_name[:80]!r}",
        "unknown-resource-type",
    )
