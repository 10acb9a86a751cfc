"""Sign-in through an external OpenID Connect provider, instead of a local password.

OpenID Connect Core 1.0, authorisation code flow
(https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth), with Discovery 1.0
(https://openid.net/specs/openid-connect-discovery-1_0.html) and PKCE S256 (RFC 7636). An
organisation may trust a CIS2-like provider for staff
(https://digital.nhs.uk/services/care-identity-service/applications-and-services/cis2-authentication)
or an NHS login-like one for patients (https://nhsconnect.github.io/nhslogin/scopes-and-claims/).
This replaces only the password step of ``/auth/login``: once the provider has said who the
user is, they get an ordinary DHR login session and the SMART authorisation goes on exactly as
for a local user (code, tokens, scopes, role ceilings, patient context).

- **Configuration**: ``Settings.identity_providers`` (``DHR_IDENTITY_PROVIDERS``, JSON). The
  client authenticates at the provider's token endpoint with ``client_secret_basic`` or
  ``client_secret_post``. Default scopes: ``openid profile nationalrbacaccess`` for staff (CIS2
  gives national RBAC roles only with ``nationalrbacaccess``), ``openid profile`` for patients
  (NHS login's ``profile`` carries ``nhs_number``, ``family_name``, ``birthdate``).
- **Start** (``GET /auth/federate/{name}?next=``): random ``state``, ``nonce`` and PKCE verifier;
  ``auth_federation_state`` keeps the state's and nonce's SHA-256, the verifier, ``next`` (a
  local ``/auth/authorize`` URL or nothing, see :func:`dhr.auth.login.safe_next`) and the hash
  of a cookie secret binding the sign-in to this browser (login CSRF), for 10 minutes.
- **Callback** (``GET /auth/federate/{name}/callback``): the state is consumed (single use) and
  must come back to the browser that started it; an ``iss`` parameter (RFC 9207) must be the
  provider's. Code exchange, ID token checks and UserInfo: :mod:`dhr.auth.federation_provider`.
- **Who the user is in DHR**, found through the FHIR dispatcher (:func:`dhr.api.dispatch.handle`,
  so policy and audit see the look-up; no SQL side door) as ``federation:<name>``, a system
  principal that may only search Patient and Practitioner (narrower than the CLI principal):
  staff get the first national RBAC role of ``nhsid_nrbac_roles`` DHR knows (only the role the
  user selected, ``selected_roleid``, when the provider says one was), its ``org_code`` as
  organisation, else the provider's ``default_role``; their ``fhirUser`` is the one Practitioner
  with identifier ``https://fhir.nhs.uk/Id/sds-user-id|<nhsid_useruid or sub>``. Patients need a
  valid NHS number proven to an accepted ``identity_proofing_level`` (P9 by default) and exactly
  one Patient with it. No match, or more than one, is refused: never a guess.
- **The local row**: username ``<name>:<sub>`` (a hash of ``sub`` if that is too long), a
  password hash no password matches (``!federated``; local usernames cannot contain ``:``
  either), role, organisation, ``fhirUser`` and display refreshed at each sign-in. A row an
  administrator deactivated stays deactivated and cannot sign in.

Every failure is a :class:`FederationError` shown as a page: 4xx for what the provider or the
browser sent (and for identities DHR will not accept), 502 when the provider cannot be reached
or answers nonsense, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import State

from dhr.access.policy import IDENTITY_SERVICE_ROLE
from dhr.api import dispatch
from dhr.api.dispatch import Services
from dhr.api.message import FhirRequest
from dhr.auth import roles as rbac
from dhr.auth import users
from dhr.auth.federation_provider import (
    HTTP_TIMEOUT_SECONDS,
    FederationError,
    Provider,
    display_name,
    sha256_hex,
    staff_role,
    username_for,
    valid_nhs_number,
)
from dhr.auth.model import Principal
from dhr.auth.scopes import parse_scopes
from dhr.auth.users import User
from dhr.config import IdentityProviderConfig, Settings
from dhr.record.vocab import RECORD_ROLE_SYSTEM, ROLE_SOURCE_RECORD
from dhr.store import auth_federation_store as fed_store
from dhr.store import auth_user_store as user_store
from dhr.store.db import unit_of_work

FLOW_SECONDS = 600  # a sign-in at the provider must come back within 10 minutes
SDS_USER_ID = "https://fhir.nhs.uk/Id/sds-user-id"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
# Not a scrypt hash, so dhr.auth.passwords.verify_password never matches it.
FEDERATED_PASSWORD_HASH = "!federated"  # noqa: S105
LOOKUP_SCOPE = "system/Patient.rs system/Practitioner.rs"
_FHIR_HEADERS = {"accept": "application/fhir+json"}
_CALLBACK_FIELDS = ("state", "code", "error", "error_description", "iss")


@dataclass(frozen=True)
class Identity:
    """Who a provider's user is in DHR."""

    role: str
    fhir_user: str
    organisation: str | None
    display: str


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _escape(value: str) -> str:
    """A search value taken literally (FHIR R4 search 3.1.1.7: ``\\``, ``,``, ``|``, ``$``)."""
    for char in ("\\", ",", "|", "$"):
        value = value.replace(char, "\\" + char)
    return value


def _with_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"


class Federation:
    """The configured providers of one app and the sign-in flow through them."""

    def __init__(
        self,
        services: Services,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.services = services
        self.settings: Settings = services.settings
        self.engine: Engine = services.engine
        self.clock = clock
        self.http = httpx.Client(
            timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False, transport=transport
        )
        self.providers = {
            c.name: Provider(c, self.http, clock) for c in self.settings.identity_providers
        }

    def links(self, next_url: str) -> list[tuple[str, str]]:
        """``(display name, start URL)`` of each provider, carrying ``next_url``."""
        query = f"?{urlencode({'next': next_url})}" if next_url else ""
        base = self.settings.auth_base
        return [
            (p.config.display_name, f"{base}/federate/{name}{query}")
            for name, p in self.providers.items()
        ]

    def redirect_uri(self, name: str) -> str:
        """Where the provider sends the browser back (register it with the provider)."""
        return f"{self.settings.auth_base}/federate/{name}/callback"

    def provider(self, name: str) -> Provider:
        found = self.providers.get(name)
        if found is None:
            raise FederationError(404, "Unknown sign-in service", "DHR does not know that service.")
        return found

    def start(self, name: str, next_url: str, browser_secret: str) -> str:
        """The provider's authorisation URL for a new sign-in (remembered server-side)."""
        provider = self.provider(name)
        meta = provider.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        now = int(self.clock())
        with unit_of_work(self.engine, write=True) as conn:
            fed_store.purge_expired_states(conn, now)
            fed_store.insert_state(
                conn,
                state_hash=sha256_hex(state),
                provider=name,
                browser_hash=sha256_hex(browser_secret),
                nonce_hash=sha256_hex(nonce),
                code_verifier=verifier,
                next_url=next_url,
                expires_at=now + FLOW_SECONDS,
            )
        return _with_query(
            meta.authorization_endpoint,
            {
                "response_type": "code",
                "client_id": provider.config.client_id,
                "redirect_uri": self.redirect_uri(name),
                "scope": provider.config.request_scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": _pkce_challenge(verifier),
                "code_challenge_method": "S256",
            },
        )

    def finish(
        self, name: str, fields: list[tuple[str, str]], browser_secret: str | None
    ) -> tuple[User, str]:
        """The signed-in DHR user and the ``next`` URL of the sign-in the provider answered."""
        values: dict[str, str] = {}
        for key in _CALLBACK_FIELDS:
            found = [v for k, v in fields if k == key]
            if len(found) > 1:
                raise FederationError(400, "Sign-in failed", f"{key} was sent more than once.")
            values[key] = found[0] if found else ""
        if not values["state"]:
            raise FederationError(400, "Sign-in failed", "The answer carries no state.")
        with unit_of_work(self.engine, write=True) as conn:
            row = fed_store.take_state(conn, sha256_hex(values["state"]), int(self.clock()))
        if row is None or row["provider"] != name:
            raise FederationError(
                400, "Sign-in expired", "This sign-in has expired or was already used."
            )
        next_url = str(row["next_url"])
        if browser_secret is None or not hmac.compare_digest(
            sha256_hex(browser_secret), str(row["browser_hash"])
        ):
            raise FederationError(
                400, "Sign-in failed", "This sign-in was not started in this browser.", next_url
            )
        try:
            return self._complete(name, values, row["code_verifier"], row["nonce_hash"]), next_url
        except FederationError as exc:
            exc.next_url = next_url
            raise

    def _complete(self, name: str, values: dict[str, str], verifier: str, nonce: str) -> User:
        provider = self.provider(name)
        config = provider.config
        if values["iss"] and values["iss"] != provider.metadata().issuer:  # RFC 9207
            raise FederationError(400, "Sign-in failed", "The answer came from another issuer.")
        if values["error"]:
            description = values["error_description"][:300]
            status = 403 if values["error"] == "access_denied" else 400
            raise FederationError(
                status,
                f"{config.display_name} did not sign you in",
                f"{values['error']}: {description}" if description else values["error"],
            )
        if not values["code"]:
            raise FederationError(400, "Sign-in failed", "The answer carries no code.")
        tokens = provider.exchange(values["code"], verifier, self.redirect_uri(name))
        id_token, access_token = tokens.get("id_token"), tokens.get("access_token")
        if not isinstance(id_token, str):
            raise FederationError(
                502, "Sign-in failed", f"{config.display_name} sent no identity token."
            )
        claims = provider.verify_id_token(id_token, nonce)
        if isinstance(access_token, str) and access_token:
            extra = provider.userinfo(access_token)
            if extra and extra.get("sub") != claims["sub"]:
                raise FederationError(
                    400, "Sign-in failed", "The user information is about someone else (sub)."
                )
            claims = {**extra, **claims}
        if config.kind == "staff":
            identity = self._staff(config, claims)
        else:
            identity = self._patient(config, claims)
        return self._sign_in(username_for(name, claims["sub"]), identity)

    # --- who the user is in DHR ---------------------------------------------------------------

    def _find(
        self,
        config: IdentityProviderConfig,
        res_type: str,
        identifier: str,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> list[str]:
        """The ids of the ``res_type`` resources with ``identifier`` (through the dispatcher)."""
        principal = Principal(
            subject=f"federation:{config.name}",
            client_id="dhr-federation",
            scopes=parse_scopes(LOOKUP_SCOPE),
            scope_text=LOOKUP_SCOPE,
            roles=("system", IDENTITY_SERVICE_ROLE),
        )
        query = (("identifier", identifier), *extra, ("_count", "2"))
        resp = dispatch.handle(
            self.services, FhirRequest("GET", res_type, query, dict(_FHIR_HEADERS)), principal
        )
        bundle = resp.body_json() if resp.status == 200 else None
        if bundle is None:
            raise FederationError(503, "Sign-in failed", "DHR could not look you up; try later.")
        ids: list[str] = []
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            mode = (entry.get("search") or {}).get("mode", "match") if resource else None
            if (
                isinstance(resource, dict)
                and resource.get("resourceType") == res_type
                and mode == "match"
                and resource.get("active") is not False
            ):
                ids.append(str(resource.get("id")))
        return ids

    def _staff(self, config: IdentityProviderConfig, claims: dict[str, Any]) -> Identity:
        role, organisation = staff_role(claims, config.default_role)
        if role is None:
            raise FederationError(
                403, "No DHR role", "None of your national RBAC roles gives access to DHR."
            )
        if organisation is None and rbac.role(role).organisation_required:
            raise FederationError(
                403, "No organisation", "Your role is not held at an organisation (ODS code)."
            )
        uid = str(claims.get("nhsid_useruid") or claims["sub"])
        found = self._find(config, "Practitioner", f"{SDS_USER_ID}|{_escape(uid)}")
        if len(found) != 1:
            raise FederationError(
                403,
                "Not known to DHR",
                f"DHR has {'no' if not found else 'more than one'} practitioner record with "
                f"your SDS user id {uid}; ask your organisation to add you.",
            )
        return Identity(role, f"Practitioner/{found[0]}", organisation, display_name(claims))

    def _patient(self, config: IdentityProviderConfig, claims: dict[str, Any]) -> Identity:
        levels = config.identity_proofing_levels
        if levels and claims.get("identity_proofing_level") not in levels:
            raise FederationError(
                403,
                "Identity not proven",
                f"Your identity must be verified to level {' or '.join(levels)} for this.",
            )
        number = str(claims.get("nhs_number") or "").replace(" ", "")
        if not valid_nhs_number(number):
            raise FederationError(
                403, "No NHS number", f"{config.display_name} gave no valid NHS number."
            )
        # The person's master Patient (or their only record), never a source's linked record.
        not_linked = (("_tag:not", f"{RECORD_ROLE_SYSTEM}|{ROLE_SOURCE_RECORD}"),)
        found = self._find(config, "Patient", f"{NHS_NUMBER}|{number}", not_linked)
        if len(found) != 1:
            what = "no record" if not found else "more than one record"
            raise FederationError(
                403, "Record not found", f"DHR holds {what} with your NHS number; none was opened."
            )
        return Identity(
            rbac.role("patient").code, f"Patient/{found[0]}", None, display_name(claims)
        )

    def _sign_in(self, username: str, identity: Identity) -> User:
        """Create or refresh the local row of a federated user; refused if deactivated."""
        for attempt in (1, 2):
            try:
                with unit_of_work(self.engine, write=True) as conn:
                    row = user_store.get_user(conn, username)
                    if row is not None and not row["active"]:
                        raise FederationError(
                            403, "Account deactivated", "Your DHR account has been deactivated."
                        )
                    if row is None:
                        user_store.insert_user(
                            conn,
                            username=username,
                            password_hash=FEDERATED_PASSWORD_HASH,
                            role=identity.role,
                            fhir_user=identity.fhir_user,
                            organisation=identity.organisation,
                            display=identity.display,
                            created_at=int(self.clock()),
                        )
                    else:
                        fed_store.refresh_user(
                            conn,
                            username=username,
                            role=identity.role,
                            fhir_user=identity.fhir_user,
                            organisation=identity.organisation,
                            display=identity.display,
                        )
                break
            except IntegrityError:  # the same identity signing in twice at once
                if attempt == 2:
                    raise FederationError(503, "Sign-in failed", "Please try again.") from None
        user = users.get_user(self.engine, username)
        if user is None or not user.active:
            raise FederationError(403, "Account deactivated", "Your DHR account is not active.")
        return user


_CREATE_LOCK = threading.Lock()


def of(state: State) -> Federation:
    """The app's :class:`Federation` (``app.state.federation``), made on first use."""
    found: Federation | None = getattr(state, "federation", None)
    if found is None:
        with _CREATE_LOCK:
            found = getattr(state, "federation", None)
            if found is None:
                found = Federation(state.services)
                state.federation = found
    return found
