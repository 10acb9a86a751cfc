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


def cli_principal(os_user: str | None = None, organisation: str | None = None) -> Principal:
    """``cli:<os user>`` with ``system/*.cruds`` and the ``system`` role, acting for
    ``organisation`` (an ODS code) when given: what it writes is then that organisation's
    record (its originating controller) and, like any requester, it sees what the consent
    policy lets that organisation see."""
    user = os_user or _os_user()
    scope = Scope("system", "*", ALL_ACTIONS, (), CLI_SCOPE)
    return Principal(
        subject=f"cli:{user}",
        client_id="dhr-cli",
        scopes=(scope,),
        scope_text=CLI_SCOPE,
        roles=("system",),
        organisation=organisation,
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return "unknown"


# Who a public endpoint (``GET /fhir/metadata``) runs as: no scopes, so any data access is a 403.
ANONYMOUS = Principal(subject="anonymous")


def source_principal(client_id: str, os_user: str | None = None) -> Principal:
    """The CLI acting for the source system whose backend client is ``client_id``
    (``dhr load --source``, the demo): what it writes is attributed to that source, exactly as
    if the source had sent it, because attribution follows the principal's client id."""
    user = os_user or _os_user()
    cli = cli_principal(user)
    return Principal(
        subject=f"cli:{user}",
        client_id=client_id,
        scopes=cli.scopes,
        scope_text=cli.scope_text,
        roles=("system",),
        extra={"on_behalf_of": client_id},
    )


def record_service_principal() -> Principal:
    """The server itself maintaining the unified record (master Patients, links, Provenance):
    ``system/*.cruds`` and the ``record-service`` role, which the attribution rules trust to
    write ``meta.source`` and controller tags as given (:mod:`dhr.record.attribution`)."""
    scope = Scope("system", "*", ALL_ACTIONS, (), CLI_SCOPE)
    return Principal(
        subject="dhr:record-service",
        client_id="dhr-record-service",
        scopes=(scope,),
        scope_text=CLI_SCOPE,
        roles=("system", "record-service"),
    )
