"""May this principal perform this interaction on this resource type? Pure SMART scope decisions.

SMART App Launch 2.2, "Scopes for requesting clinical data"
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-clinical-data)
maps each permission letter to FHIR interactions:

* ``c``: type-level create;
* ``r``: instance-level read, vread and history;
* ``u``: instance-level update (including an update that creates, "upsert") and patch;
* ``d``: instance-level delete;
* ``s``: type-level search and history, system-level search and history.

So this server asks ``r`` for ``GET [type]/[id]/_history`` and ``s`` for ``GET [type]/_history``
and ``GET /_history``, exactly as the specification words it; a conditional interaction asks
``s`` for its criteria on top of its own letter. A ``patient/`` scope is usable only with a patient
in context (the spec: "If the app has any patient-level scopes, they will be scoped to Patient
123"); a token whose only resource scopes are ``patient/`` scopes without a ``patient`` claim can
do nothing. v1 scopes (``patient/*.read``) arrive already mapped onto the same letters by
:mod:`dhr.auth.scopes`.

Decisions return ``True`` or the reason of the refusal (a sentence for the OperationOutcome).
"""

from __future__ import annotations

from typing import Literal

from dhr.auth.model import Principal, Scope
from dhr.auth.scopes import matching

ACTIONS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}

Decision = Literal[True] | str


def usable_scopes(principal: Principal) -> tuple[Scope, ...]:
    """The principal's resource scopes that can apply: ``patient/`` ones need a patient context."""
    if principal.patient:
        return principal.scopes
    return tuple(s for s in principal.scopes if s.context != "patient")


def granted(principal: Principal, res_type: str, action: str) -> list[Scope]:
    """The usable scopes allowing ``action`` on ``res_type`` (none for the open principal: it
    needs no scope)."""
    return matching(usable_scopes(principal), res_type, action)


def may(principal: Principal, res_type: str, action: str) -> Decision:
    """Does some granted scope allow ``action`` (c, r, u, d, s) on ``res_type`` at all?"""
    if principal.open or granted(principal, res_type, action):
        return True
    verb = ACTIONS[action]
    if principal.scopes and not usable_scopes(principal):
        return (
            f"The token's patient/ scopes cannot be used: it carries no patient context, "
            f"so it may not {verb} {res_type}"
        )
    held = principal.scope_text.strip() or "none"
    return (
        f"The token's scopes do not allow {verb} ({action}) on {res_type}; "
        f"granted scopes: {held[:300]}"
    )


def unrestricted(principal: Principal, res_type: str, action: str) -> bool:
    """Whether ``action`` on ``res_type`` needs no per-resource check: the open principal, or a
    matching ``user/``/``system/`` scope without search-parameter restrictions."""
    if principal.open:
        return True
    return any(
        s.context != "patient" and not s.params for s in granted(principal, res_type, action)
    )
