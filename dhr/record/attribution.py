"""Attribution of every write: ``meta.source`` and the joint controllers, from credentials.

ARCHITECTURE.md "Source systems" and "Controllers". What a registered source sends is stamped
``meta.source = urn:dhr:source:<id>`` (https://hl7.org/fhir/R4/resource.html#Meta: "a uri that
identifies the source system of the resource"); nothing in the request can claim a source, because
the source is found from the token's client id. Every resource carries its joint controllers as
``meta.tag`` codings of :data:`~dhr.record.vocab.CONTROLLER_SYSTEM` (code = ODS code): the
originating organisation (the source's organisation, else the writer's organisation, else the
controller the resource already had) and the national controller. Controller tags a client sends
are replaced, never trusted.

The server's own record service (master Patients, links, Provenance) writes ``meta.source`` and
controller tags as it composed them. A source may change only what it originated: its own
``meta.source`` must be on the stored resource (:func:`owned_by`).
"""

from __future__ import annotations

from typing import Any

from dhr.auth.model import Principal
from dhr.errors import FhirError
from dhr.fhir import jsonio
from dhr.record.sources import Source
from dhr.record.vocab import CONTROLLER_SYSTEM, SOURCE_URI_PREFIX

RECORD_SERVICE_ROLE = "record-service"


def is_record_service(principal: Principal) -> bool:
    return RECORD_SERVICE_ROLE in principal.roles


def controllers_of(meta: dict[str, Any] | None) -> list[str]:
    """The controller ODS codes in a resource's ``meta`` (in tag order)."""
    tags = (meta or {}).get("tag") or []
    return [
        str(t["code"])
        for t in tags
        if isinstance(t, dict) and t.get("system") == CONTROLLER_SYSTEM and t.get("code")
    ]


def controller_tags(originating: str | None, national: str) -> list[dict[str, str]]:
    codes = [c for c in (originating, national) if c]
    return [{"system": CONTROLLER_SYSTEM, "code": c} for c in dict.fromkeys(codes)]


def _with_controllers(meta: dict[str, Any], codes: list[dict[str, str]]) -> dict[str, Any]:
    kept = [
        t
        for t in meta.get("tag") or []
        if not (isinstance(t, dict) and t.get("system") == CONTROLLER_SYSTEM)
    ]
    return {**meta, "tag": kept + codes}


def stored_meta(data: bytes | None) -> dict[str, Any] | None:
    """``meta`` of stored bytes (None when there is no stored content)."""
    if data is None:
        return None
    meta = jsonio.loads(data).get("meta")
    return meta if isinstance(meta, dict) else {}


def attribute(
    body: dict[str, Any],
    principal: Principal,
    source: Source | None,
    previous_meta: dict[str, Any] | None,
    national: str,
) -> dict[str, Any]:
    """``body`` with ``meta.source`` and controller tags as the writer's credentials say."""
    meta = dict(body.get("meta") or {})
    if source is not None:
        meta["source"] = source.uri
        meta = _with_controllers(meta, controller_tags(source.ods_code, national))
        return {**body, "meta": meta}
    if is_record_service(principal):
        if national not in controllers_of(meta):
            meta = _with_controllers(
                meta, controller_tags(next(iter(controllers_of(meta)), None), national)
            )
        return {**body, "meta": meta}
    claimed = meta.get("source")
    before = (previous_meta or {}).get("source")
    if isinstance(claimed, str) and claimed.startswith(SOURCE_URI_PREFIX) and claimed != before:
        raise FhirError(
            403,
            "forbidden",
            f"meta.source {claimed[:100]!r} names a registered source system; only that "
            "source's own credentials can write as it",
            "forged-source",
            ("meta.source",),
        )
    if before is not None and claimed is None:
        meta["source"] = before  # an edit by someone else keeps where the data came from
    earlier = [c for c in controllers_of(previous_meta) if c != national]
    originating = earlier[0] if earlier else principal.organisation
    meta = _with_controllers(meta, controller_tags(originating, national))
    return {**body, "meta": meta}


def owned_by(meta: dict[str, Any] | None, source: Source) -> bool:
    """Whether stored content (its ``meta``) was sent by ``source``."""
    return (meta or {}).get("source") == source.uri
