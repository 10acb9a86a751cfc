"""Reference parameters (https://hl7.org/fhir/R4/search.html#reference).

A ``Reference.reference`` is indexed by its parts so both ``subject=Patient/1`` and
``subject=http://server/fhir/Patient/1`` can be answered:

* ``Type/id`` and ``Type/id/_history/v`` -> ``target_type``, ``target_id`` (``target_version``);
* an absolute RESTful URL ``http(s)://base/Type/id[/_history/v]`` -> the same parts **and**
  ``url`` (the whole URL without the history part), so the query compiler can decide whether
  ``base`` is this server;
* ``urn:uuid:`` / ``urn:oid:`` and other absolute URIs -> ``url`` only;
* ``#contained`` -> nothing (the target lives inside this resource, it is not searchable);
* canonical / uri values (https://hl7.org/fhir/R4/references.html#canonical) -> ``url`` with
  any ``|version`` split off into ``target_version`` (and type/id when RESTful as above).

``Reference.identifier`` (https://hl7.org/fhir/R4/search.html#modifiers, ``:identifier``) is
indexed as a :class:`TokenRow` under the parameter code suffixed ``:identifier``.
"""

from __future__ import annotations

import re
from typing import Any

from dhr.fhir.types import DROPPED_IN_R4B, resource_types
from dhr.search.rows import IndexRow, ReferenceRow, TokenRow

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_MAX_URL = 512
_MAX = 255
_KNOWN: set[str] = set()


def _is_type(name: str) -> bool:
    if not _KNOWN:
        _KNOWN.update(resource_types(), DROPPED_IN_R4B)
    return name in _KNOWN


def split(ref: str) -> tuple[str | None, str | None, str | None, str | None]:
    """``(target_type, target_id, target_version, url)`` of a reference string."""
    ref = ref.strip()
    version: str | None = None
    if "|" in ref:  # canonical with a version
        ref, _, version = ref.partition("|")
        version = version[:64] or None
    absolute = "://" in ref or ref.startswith(("urn:", "#"))
    if ref.startswith("#"):
        return None, None, None, None
    parts = ref.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        version = parts[-1][:64]
        parts = parts[:-2]
    url = "/".join(parts) if absolute else None
    if (
        len(parts) >= 2
        and _TYPE.fullmatch(parts[-2])
        and _ID.fullmatch(parts[-1])
        and _is_type(parts[-2])
    ):
        return parts[-2], parts[-1], version, url[:_MAX_URL] if url else None
    if absolute:
        return None, None, version, ref[:_MAX_URL]
    return None, None, version, ref[:_MAX_URL] or None


def target_type(value: Any, root: Any) -> str | None:
    """The type ``resolve()`` would find for ``value`` (a Reference or a reference string)."""
    ref = value.get("reference") if isinstance(value, dict) else value
    if isinstance(ref, str):
        if ref.startswith("#") and isinstance(root, dict):
            for res in root.get("contained") or ():
                if isinstance(res, dict) and res.get("id") == ref[1:]:
                    kind = res.get("resourceType")
                    return kind if isinstance(kind, str) else None
            return None
        kind = split(ref)[0]
        if kind is not None:
            return kind
    if isinstance(value, dict):
        declared = value.get("type")
        if isinstance(declared, str) and _TYPE.fullmatch(declared):
            return declared
    return None


def rows(code: str, value: Any, fhir_type: str | None, grp: int, comp: int) -> list[IndexRow]:
    """Rows for one Reference / canonical / uri value."""
    out: list[IndexRow] = []
    if isinstance(value, str):
        kind, rid, version, url = split(value)
        if kind or url:
            out.append(ReferenceRow(code, kind, rid, version, url, grp, comp))
        return out
    if not isinstance(value, dict) or "resourceType" in value:
        return out  # an embedded resource (Bundle.entry[0].resource) is not a reference
    ref = value.get("reference")
    if isinstance(ref, str):
        kind, rid, version, url = split(ref)
        if kind or url:
            out.append(ReferenceRow(code, kind, rid, version, url, grp, comp))
    ident = value.get("identifier")
    if isinstance(ident, dict) and isinstance(ident.get("value"), str):
        system = ident.get("system")
        out.append(
            TokenRow(
                f"{code}:identifier",
                system[:_MAX] if isinstance(system, str) else None,
                ident["value"][:_MAX],
                None,
                grp,
                comp,
            )
        )
    return out
