"""The principal of the administrative command line (``dhr load``, the demo loader).

The CLI writes through the same enforcing repository as the HTTP API (no side door): it acts as
an explicit system principal holding ``system/*.cruds`` (SMART Backend Services scopes,
https://hl7.org/fhir/smart-app-launch/backend-services.html#scopes), named after the operating
system user who runs it so that audit can tell who loaded what.
"""

from __future__ import annotations

import getpass

from dhr.auth.model import ALL_ACTIONS, Principal, Scope

CLI_SCOPE = "system/*.cruds"


def cli_principal(os_user: str | None = None) -> Principal:
    """``cli:<os user>`` with ``system/*.cruds`` and the ``system`` role."""
    user = os_user or _os_user()
    scope = Scope("system", "*", ALL_ACTIONS, (), CLI_SCOPE)
    return Principal(
        subject=f"cli:{user}",
        client_id="dhr-cli",
        scopes=(scope,),
        scope_text=CLI_SCOPE,
        roles=("system",),
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return "unknown"


# Who a public endpoint (``GET /fhir/metadata``) runs as: no scopes, so any data access is a 403.
ANONYMOUS = Principal(subject="anonymous")
