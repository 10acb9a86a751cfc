"""The administrative CLI acts as an explicit system principal
(https://hl7.org/fhir/smart-app-launch/backend-services.html#scopes): ``dhr load`` and the demo
loader go through the same enforcement as any client, holding ``system/*.cruds``."""

from __future__ import annotations

from dhr.access.scope_check import may, unrestricted
from dhr.access.system import ANONYMOUS, cli_principal


def test_the_cli_principal_is_named_after_the_os_user_and_holds_system_scopes() -> None:
    who = cli_principal("alice")
    assert who.subject == "cli:alice"
    assert who.roles == ("system",)
    assert who.scope_text == "system/*.cruds"
    assert not who.open
    assert all(may(who, "Observation", a) is True for a in "cruds")
    assert unrestricted(who, "Observation", "r")
    assert cli_principal().subject.startswith("cli:")


def test_the_anonymous_principal_may_do_nothing() -> None:
    assert all(may(ANONYMOUS, "Patient", a) is not True for a in "cruds")
