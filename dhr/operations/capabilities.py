"""The CapabilityStatement served at ``/metadata``. https://hl7.org/fhir/R4/capabilitystatement.html

It lists only what works: per type read, vread, update, patch, delete, create, history; system
history, batch and transaction; ``$validate``; type-level search with each type's parameters,
``_include``/``_revinclude`` and (for Patient) ``$everything`` and DHR's Patient operations
(``$access-log``, ``$link``, ``$unlink``, ``$break-glass``, ``$claim-relationship``).
Conditional interactions state their limits. With authorisation on, ``rest[0].security`` names
SMART-on-FHIR and carries the ``oauth-uris`` extension
(https://hl7.org/fhir/smart-app-launch/conformance.html#declaring-support-for-oauth2-endpoints).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from dhr import __version__
from dhr.auth.discovery import endpoints
from dhr.config import Settings
from dhr.fhir.types import resource_types
from dhr.search.registry import registry

_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]


def _search_params(res_type: str) -> list[dict[str, str]]:
    """The type's searchable parameters (https://hl7.org/fhir/R4/search.html): every registered
    one the search compiler answers (not ``special`` ones, nor those without an expression)."""
    out = []
    for code, param in sorted(registry().for_type(res_type).items()):
        if param.type == "special" or (param.expression is None and code != "_id"):
            continue
        out.append({"name": code, "definition": param.url, "type": param.type})
    return out


_AIMED = 8


def _includes(res_type: str) -> list[str]:
    """``_include`` values (https://hl7.org/fhir/R4/search.html#include): each reference
    parameter of the type, and ``*``."""
    codes = sorted(
        code
        for code, p in registry().for_type(res_type).items()
        if p.type == "reference" and p.expression is not None
    )
    return ["*", *(f"{res_type}:{code}" for code in codes)]


def _revincludes(res_type: str) -> list[str]:
    """``_revinclude`` values: ``*`` and the reference parameters aimed at this type (at most
    :data:`_AIMED` target types). Any reference parameter that can point here is accepted; the
    ones that can point almost anywhere (``Provenance:target``...) are left out for size."""
    out = ["*"]
    for source in sorted(resource_types()):
        for code, p in sorted(registry().for_type(source).items()):
            aimed = res_type in p.targets and len(p.targets) <= _AIMED
            if p.type == "reference" and p.expression is not None and aimed:
                out.append(f"{source}:{code}")
    return out


_EVERYTHING = {
    "name": "everything",
    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
}


# Patient-level operations beyond $everything: $match (FHIR); $access-log, $link, $unlink,
# $break-glass and $claim-relationship (DHR).
_PATIENT_OPERATIONS = [
    _EVERYTHING,
    {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"},
    {
        "name": "access-log",
        "definition": "https://dhr.nhs.example/fhir/OperationDefinition/access-log",
    },
    {"name": "link", "definition": "https://dhr.nhs.example/fhir/OperationDefinition/Patient-link"},
    {
        "name": "unlink",
        "definition": "https://dhr.nhs.example/fhir/OperationDefinition/Patient-unlink",
    },
    {
        "name": "break-glass",
        "definition": "https://dhr.nhs.example/fhir/OperationDefinition/Patient-break-glass",
    },
    {
        "name": "claim-relationship",
        "definition": "https://dhr.nhs.example/fhir/OperationDefinition/Patient-claim-relationship",
    },
]
_ACCESS_CHECK = {
    "name": "access-check",
    "definition": "https://dhr.nhs.example/fhir/OperationDefinition/access-check",
}
_IMPORT = {
    "name": "import",
    "definition": "https://dhr.nhs.example/fhir/OperationDefinition/import",
}

_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def _security(base: str, auth_base: str) -> dict[str, Any]:
    """``rest.security``: SMART-on-FHIR; the OAuth endpoints in the ``oauth-uris`` extension."""
    urls = endpoints(auth_base)
    discovery = f"{base}/.well-known/smart-configuration"
    return {
        "extension": [
            {
                "url": _OAUTH_URIS,
                "extension": [
                    {"url": name, "valueUri": urls[name]}
                    for name in ("authorize", "token", "introspect", "revoke")
                ],
            }
        ],
        "cors": True,
        "service": [
            {
                "coding": [
                    {
                        "system": _SECURITY_SERVICE,
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "description": f"SMART App Launch 2.2 and Backend Services; discovery at {discovery}",
    }


def capability_statement(settings: Settings) -> dict[str, Any]:
    auth_base = settings.auth_base if settings.auth_enabled else None
    return _statement(settings.fhir_base, auth_base)


@cache
def _statement(base: str, auth_base: str | None) -> dict[str, Any]:
    validate_op = {
        "name": "validate",
        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    }
    resources = [
        {
            "type": name,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{name}",
            "interaction": [{"code": code} for code in _INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchInclude": _includes(name),
            "searchRevInclude": _revincludes(name),
            "searchParam": _search_params(name),
            "operation": [validate_op, *(_PATIENT_OPERATIONS if name == "Patient" else [])],
        }
        for name in sorted(resource_types())
    ]
    return {
        "resourceType": "CapabilityStatement",
        "id": "dhr",
        "url": f"{base}/metadata",
        "name": "DHR",
        "title": "DHR FHIR R4 server",
        "status": "active",
        "experimental": False,
        "date": "2026-11-25",
        "publisher": "DHR contributors",
        "kind": "instance",
        "software": {"name": "DHR", "version": __version__},
        "implementation": {"description": "DHR: one digital health record", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                ],
                "operation": [_IMPORT, _ACCESS_CHECK],
                **({"security": _security(base, auth_base)} if auth_base else {}),
            }
        ],
    }
